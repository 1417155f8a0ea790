"""The scoring decision: a change exactly when the tier moves, with a stable id, and the tier
after every event equals the ruleset applied to the batch oracle's features."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
from hypothesis import given
from hypothesis import strategies as st

from schemas.v1.tiers import TierChangedV1
from services.scorer import rules
from services.scorer.rfm import CustomerState, Fact, Windows
from services.scorer.scoring import (
    Change,
    EventCause,
    Standing,
    change_id,
    score_event,
    to_contract,
)
from tests.unit.test_rfm import START, oracle

RULESET = rules.load((Path(rules.__file__).parent / "rulesets" / "default.yaml").read_text())
WINDOWS = Windows()
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def run(facts: list[Fact], clock_day: int = START) -> list[tuple[Standing, Change | None]]:
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
            ruleset=RULESET,
            thresholds=RULESET.thresholds,
            windows=WINDOWS,
            clock_day=clock_day,
            now=NOW + timedelta(hours=i),
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
