"""The scoring decision: a change exactly when the tier moves, with a stable id, and the tier
after every event equals the ruleset applied to the batch oracle's features."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from harness.oracle import oracle
from schemas.v1.tiers import TierChangedV1
from services.scorer.core import rules
from services.scorer.core.scoring import (
    Change,
    EventCause,
    Standard,
    Standing,
    change_id,
    due_day,
    label_of,
    rescore,
    score_event,
)
from services.scorer.core.state import CustomerState, Fact, Features, Windows, apply_all
from services.scorer.settings import DEFAULT_RULESET
from tests.contract_oracle import to_contract
from tests.unit.test_rfm import START

RULESET = rules.load(DEFAULT_RULESET.read_text())
WINDOWS = Windows()
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def run(
    facts: list[Fact],
    clock_day: int = START,
    now: datetime = NOW,
    ruleset: rules.Ruleset = RULESET,
) -> list[tuple[Standing, Change | None]]:
    state: CustomerState | None = None
    standing: Standing | None = None
    out = []
    for i, fact in enumerate(facts):
        state, standing, change = score_event(
            "C-1",
            state,
            standing,
            fact,
            EventCause("erp", f"e{i}"),
            ruleset=ruleset,
            thresholds=ruleset.thresholds,
            windows=WINDOWS,
            clock_day=clock_day,
            now=now + timedelta(hours=i, microseconds=i * 7),
        )
        out.append((standing, change))
    return out


def test_the_first_event_is_an_initial_change() -> None:
    [(standing, change)] = run([Fact(START, "interaction")])
    assert change is not None
    assert standing.tier.id == "general_winback"
    payload = to_contract(change, ZoneInfo("Asia/Shanghai"))
    assert payload.direction == "initial"
    assert payload.from_tier is None
    assert payload.cause.kind == "event"
    TierChangedV1.model_validate_json(payload.model_dump_json())  # the contract holds


def test_no_change_while_the_tier_stays() -> None:
    results = run([Fact(START, "interaction"), Fact(START, "interaction")])
    assert results[1][1] is None


def test_climbing_to_important_value_goes_up_with_durations() -> None:
    purchases = [Fact(START, "purchase", 500_000) for _ in range(3)]  # 3 x 5000.00
    results = run(purchases)
    tiers = [standing.tier.id for standing, _ in results]
    # 5000 (M low), 10000 (M high, F=2 low), 15000 with F=3: every level high
    assert tiers == ["general_develop", "important_develop", "important_value"]
    last = results[-1][1]
    assert last is not None
    payload = to_contract(last, ZoneInfo("UTC"))
    assert payload.direction == "up"
    assert payload.previous_tier_seconds == 3600  # important_develop since the 2nd event
    assert payload.features.monetary == payload.features.monetary_90d
    assert str(payload.features.monetary) == "15000"
    assert orjson.loads(payload.model_dump_json())["features"]["monetary"] == "15000"


def test_change_ids_are_stable_and_distinct() -> None:
    first = [change.change_id for _, change in run([Fact(START, "interaction")]) if change]
    again = [change.change_id for _, change in run([Fact(START, "interaction")]) if change]
    assert first == again == [change_id("C-1", EventCause("erp", "e0"))]
    assert change_id("C-1", EventCause("erp", "e0")) != change_id("C-2", EventCause("erp", "e0"))
    assert change_id("C-1", "time_passed", "2026-11-20") != change_id(
        "C-1", "time_passed", "2026-11-21"
    )


facts = st.builds(
    Fact,
    day=st.integers(START - 400, START),
    kind=st.sampled_from(["purchase", "refund", "interaction", "profile"]),
    amount=st.integers(1, 2_000_000),
).map(lambda f: f if f.kind in ("purchase", "refund") else Fact(f.day, f.kind))


@given(history=st.lists(facts, min_size=1, max_size=25), clock=st.integers(0, 200))
def test_the_tier_after_every_event_is_the_rules_on_the_oracle(
    history: list[Fact], clock: int
) -> None:
    results = run(history, clock_day=START + clock)
    previous = None
    for i, (standing, change) in enumerate(results):
        seen = history[: i + 1]
        today = max(START + clock, *(f.day for f in seen))
        expected = rules.evaluate(RULESET, oracle(seen, today), RULESET.thresholds)
        assert expected is not None
        assert standing.tier.id == expected.tier.id
        assert (change is not None) == (standing.tier.id != previous)
        previous = standing.tier.id


ACTIVE = rules.load("""
version: busy-1
thresholds: {mode: fixed, recency_days: 30, frequency: 2, monetary: "500.00"}
tiers:
  - id: engaged
    labels: {zh: 活跃, en: Engaged}
    rank: 3
    high_value: true
    condition: interactions_30d >= 2 && monetary_90d > 1000
  - id: steady
    labels: {zh: 稳定, en: Steady}
    rank: 2
    high_value: false
    condition: f == "high" || frequency_90d >= 3
  - id: rest
    labels: {zh: 其他, en: Rest}
    rank: 1
    high_value: false
    condition: "true"
""")


SHORT_R = rules.load(
    DEFAULT_RULESET.read_text()
    .replace("version: rfm-segments-1", "version: short-r")
    .replace("recency_days: 90", "recency_days: 30")
)

recent = st.builds(
    Fact,
    day=st.integers(START - 100, START),
    kind=st.sampled_from(["purchase", "refund", "interaction"]),
    amount=st.sampled_from([1, 50_000, 100_000, 600_000, 2_000_000]),
).map(lambda f: f if f.kind in ("purchase", "refund") else Fact(f.day, f.kind))


@settings(max_examples=500)
@given(
    history=st.one_of(st.lists(recent, min_size=1, max_size=6), st.lists(facts, max_size=25)),
    start=st.integers(0, 120),
    ruleset=st.sampled_from([RULESET, ACTIVE, SHORT_R]),
)
@example(  # money leaves the 90-day window while the interactions are still recent
    history=[
        Fact(START - 80, "purchase", 600_000),
        Fact(START - 10, "interaction"),
        Fact(START - 5, "interaction"),
    ],
    start=0,
    ruleset=ACTIVE,
)
@example(  # the interactions leave their 30-day window first
    history=[
        Fact(START - 25, "interaction"),
        Fact(START - 20, "interaction"),
        Fact(START - 5, "purchase", 600_000),
    ],
    start=0,
    ruleset=ACTIVE,
)
@example(history=[Fact(START - 3, "purchase", 2_000_000)], start=0, ruleset=SHORT_R)
def test_nothing_changes_before_the_due_day(
    history: list[Fact], start: int, ruleset: rules.Ruleset
) -> None:
    """The sweep only looks at customers whose due day has come: between today and that
    day, the tier must not move (the oracle's tier, day by day)."""
    state = apply_all(None, history, WINDOWS)
    if state is None:
        return
    today = max(START + start, state.anchor)
    due = due_day(state, today, ruleset=ruleset, thresholds=ruleset.thresholds, windows=WINDOWS)
    assert due > today
    tier_then = rules.evaluate(ruleset, oracle(history, today), ruleset.thresholds)
    for day in range(today + 1, min(due, today + 800)):
        tier = rules.evaluate(ruleset, oracle(history, day), ruleset.thresholds)
        assert tier is not None
        assert tier_then is not None
        assert tier.tier.id == tier_then.tier.id, f"moved on day {day - today} before due"


def test_a_ruleset_reading_recency_is_due_every_day() -> None:
    reader = rules.load(
        ACTIVE_TEXT_WITH_RECENCY := """
version: r-1
thresholds: {mode: fixed, recency_days: 30, frequency: 2, monetary: "500.00"}
tiers:
  - {id: fresh, labels: {zh: 新, en: Fresh}, rank: 2, high_value: false,
     condition: "recency_days != null && recency_days < 7"}
  - {id: rest, labels: {zh: 其他, en: Rest}, rank: 1, high_value: false, condition: "true"}
"""
    )
    assert "recency_days" in ACTIVE_TEXT_WITH_RECENCY
    state = apply_all(None, [Fact(START, "purchase", 100)], WINDOWS)
    assert state is not None
    assert due_day(state, START, ruleset=reader, thresholds=reader.thresholds, windows=WINDOWS) == (
        START + 1
    )


@given(
    features=st.lists(
        st.builds(
            Features,
            day=st.just(START),
            recency_days=st.one_of(st.none(), st.integers(0, 400)),
            frequency=st.integers(0, 6),
            monetary=st.integers(-100_000, 2_000_000),
            frequency_90d=st.integers(0, 6),
            monetary_90d=st.integers(-100_000, 2_000_000),
            interactions_30d=st.integers(0, 4),
            tenure_days=st.integers(0, 900),
        ),
        max_size=30,
    )
)
def test_memoized_evaluation_equals_evaluating_every_condition(features: list[Features]) -> None:
    for found in features:
        for ruleset in (RULESET, ACTIVE):
            memoized = rules.evaluate(ruleset, found, ruleset.thresholds)
            data = rules.activation(found, rules.levels(found, ruleset.thresholds))
            direct = next(t for t in ruleset.tiers if t.program.eval(data=data).value() is True)
            assert memoized is not None
            assert memoized.tier.id == direct.id


def test_references_ignore_names_inside_string_literals() -> None:
    assert rules.references(['segment == "recency_days"', "'tenure_days' != r"]) == {
        "segment",
        "r",
    }
    assert ACTIVE.references == {"interactions_30d", "monetary_90d", "f", "frequency_90d"}


def test_rescoring_after_time_passed_names_the_day() -> None:
    [(standing, _)] = run([Fact(START, "purchase", 2_000_000)])
    state = apply_all(None, [Fact(START, "purchase", 2_000_000)], WINDOWS)
    assert state is not None
    assert standing.tier.id == "important_develop"
    same, nothing = rescore(
        "C-1",
        state,
        standing,
        day=START + 90,
        cause="time_passed",
        detail=str(START + 90),
        ruleset=RULESET,
        thresholds=RULESET.thresholds,
        windows=WINDOWS,
        now=NOW,
    )
    assert nothing is None
    assert same == standing
    after, change = rescore(
        "C-1",
        state,
        standing,
        day=START + 91,
        cause="time_passed",
        detail=str(START + 91),
        ruleset=RULESET,
        thresholds=RULESET.thresholds,
        windows=WINDOWS,
        now=NOW,
    )
    assert change is not None
    assert after.tier.id == "important_winback"
    assert change.change_id == change_id("C-1", "time_passed", str(START + 91))
    assert to_contract(change, ZoneInfo("UTC")).direction == "down"


@given(history=st.lists(facts, min_size=1, max_size=25), clock=st.integers(0, 200))
def test_every_change_payload_is_valid_under_the_contract(history: list[Fact], clock: int) -> None:
    """to_contract builds without validating: the contract must accept what it builds."""
    for _, change in run(history, clock_day=START + clock):
        if change is not None:
            payload = to_contract(change, ZoneInfo("Asia/Shanghai"))
            raw = payload.__pydantic_serializer__.to_json(payload)
            assert TierChangedV1.model_validate_json(raw) == TierChangedV1.model_validate(
                payload.model_dump()
            )
            assert TierChangedV1.model_validate_json(raw).model_dump_json().encode() == raw


def test_every_activation_and_thresholds_generation_has_a_key_of_its_own() -> None:
    """SPEC §11: a standard's key never comes back, so re-tier changes never reuse an id."""
    population = rules.load(
        DEFAULT_RULESET.read_text()
        .replace("version: rfm-segments-1", "version: pop-1")
        .replace("mode: fixed", "mode: population")
    )
    t = population.thresholds
    first, again = (
        Standard(RULESET, RULESET.thresholds, 1),
        Standard(RULESET, RULESET.thresholds, 3),
    )
    assert first.key != again.key
    assert first.label == again.label == first.legacy_key == "rfm-segments-1"
    ids = {change_id("C-1", "ruleset_activated", s.key) for s in (first, again)}
    assert len(ids) == 2
    # thresholds A -> B -> A within one activation: three generations, three keys
    keys = [Standard(population, t, 2, generation).key for generation in (1, 2, 3)]
    assert len(set(keys)) == 3
    assert Standard(population, t, 2, 3).same_activation(keys[0])
    assert not Standard(population, t, 4, 3).same_activation(keys[0])
    for standard in (first, Standard(population, t, 2, 3)):
        assert label_of(standard.key) == standard.label
    assert Standard(population, t, 2, 1).label == (
        f"pop-1@r{t.recency_days}f{t.frequency}m{t.monetary}"
    )
