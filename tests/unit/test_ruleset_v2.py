"""Ruleset format version 2 (SPEC §10): what load refuses, naming the place; customer
attributes and team in conditions; scores; stability against an oracle written from the
SPEC's words."""

from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scorer.core import codec, rules
from services.scorer.core.declared import UNTRACKED
from services.scorer.core.rules import RulesetError
from services.scorer.core.scoring import (
    Change,
    EventCause,
    Standing,
    due_day,
    inputs,
    score_event,
)
from services.scorer.core.state import CustomerState, Fact, Profile, Windows

WINDOWS = Windows()
EXAMPLE = Path("services/scorer/rulesets/abc-value.yaml")
START = date(2026, 6, 1).toordinal()

HEAD = """
version: v2-test
features:
  spend_30d: {aggregate: sum, of: net, window_days: 30}
  meetings_90d: {aggregate: count, of: interaction, where: 'channel == "meeting"', window_days: 90}
"""


def tiers(*conditions: str) -> str:
    lines = ["tiers:"]
    for n, condition in enumerate(conditions):
        lines.append(
            f"  - {{id: t{n}, labels: {{zh: t{n}, en: t{n}}}, rank: {len(conditions) - n}, "
            f"high_value: false, condition: '{condition}'}}"
        )
    return "\n".join(lines) + "\n"


def problems(text: str) -> list[str]:
    with pytest.raises(RulesetError) as refused:
        rules.load(text)
    return refused.value.problems


def test_the_spec_example_loads() -> None:
    example = rules.load(EXAMPLE.read_text(encoding="utf-8"))
    assert [t.id for t in example.tiers] == ["A", "B", "C"]
    assert len(example.plan.features) == 8
    assert example.stability
    assert example.min_days_in_tier == 7


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            HEAD.replace("sum, of: net", "total, of: net") + tiers("true"),
            "feature 'spend_30d': aggregate: Input should be 'count', 'sum', 'avg', 'min', "
            "'max', 'days_active' or 'days_since'",
        ),
        (
            HEAD.replace("of: interaction", "of: meeting") + tiers("true"),
            "feature 'meetings_90d': of: Input should be",
        ),
        (
            HEAD.replace("of: net", "of: interaction") + tiers("true"),
            "feature 'spend_30d': sum of interaction: interactions have no amount",
        ),
        (
            HEAD.replace("sum, of: net", "avg, of: net") + tiers("true"),
            "feature 'spend_30d': of net is for sum only",
        ),
        (
            HEAD.replace('channel == "meeting"', "amount + 1.0") + tiers("true"),
            "feature 'meetings_90d': where is of type double, not bool",
        ),
        (
            HEAD.replace('channel == "meeting"', "channel") + tiers("true"),
            "feature 'meetings_90d': where gives 'meeting' for an event of kind interaction",
        ),
        (
            HEAD.replace('channel == "meeting"', "region == 1") + tiers("true"),
            "feature 'meetings_90d': where does not compile: <input>:1:1: undeclared "
            "reference to 'region'",
        ),
        (
            HEAD.replace("window_days: 30", "window_days: 400") + tiers("true"),
            "feature 'spend_30d': window_days 400 is beyond the retained span (365 days)",
        ),
        (
            HEAD.replace("spend_30d", "frequency") + tiers("true"),
            "feature 'frequency': the name shadows a built-in name",
        ),
        (HEAD + tiers("spend_total >= 1", "true"), "undeclared reference to 'spend_total'"),
        (
            HEAD
            + "scores:\n  s:\n    components:\n"
            + "      a: {feature: spend_30d, weight: 0.5, linear: {from: 0, to: 10}}\n"
            + "      b: {feature: frequency, weight: 0.4, linear: {from: 0, to: 10}}\n"
            + tiers("true"),
            "score 's': the weights sum to 0.9, not 1",
        ),
        (
            HEAD
            + "scores:\n  s:\n    components:\n"
            + "      a: {feature: spend_all, weight: 1, linear: {from: 0, to: 10}}\n"
            + tiers("true"),
            "score 's': component 'a': unknown feature 'spend_all'",
        ),
        (
            HEAD
            + "scores:\n  s:\n    components:\n"
            + "      a: {feature: recency_days, weight: 1, "
            + "bands: [{max: 90, points: 60}, {max: 30, points: 100}]}\n"
            + tiers("true"),
            "score 's': component 'a': bands out of order: max must increase",
        ),
        (
            HEAD
            + "scores:\n  s:\n    components:\n"
            + "      a: {feature: frequency, weight: 1, "
            + "bands: [{min: 1, points: 40}, {min: 10, points: 100}]}\n"
            + tiers("true"),
            "score 's': component 'a': bands out of order: min must decrease",
        ),
        (
            HEAD
            + "tiers:\n  - {id: t0, labels: {zh: a, en: a}, rank: 1, high_value: false, "
            + "stay_while: 'spend_30d > 1'}\n",
            "tier 't0': stay_while on a tier without a condition",
        ),
        (
            HEAD + tiers('attributes.industry == "finance"', "true"),
            "guard the read, e.g. has(attributes.industry)",
        ),
        (
            HEAD + tiers('meetings_90d >= 50 && attributes.region != "west"', "true"),
            "tier 't0': condition reads attributes.region without has(attributes.region)",
        ),
        (
            HEAD.replace("sum, of: net", "avg, of: purchase") + tiers("spend_30d >= 100", "true"),
            "features with no matching event: guard it",
        ),
    ],
)
def test_load_refuses_naming_the_place_and_the_problem(text: str, expected: str) -> None:
    found = problems(text)
    assert any(expected in problem for problem in found), found


def test_guarded_attribute_and_team_reads_load_and_decide() -> None:
    ruleset = rules.load(
        HEAD
        + tiers(
            'has(attributes.industry) && attributes.industry == "finance" && spend_30d >= 10',
            'team == "east"',
            "meetings_90d >= 2 || frequency * 0.3 >= 1.0",
            "true",
        )
    )

    def tier_of(facts: list[Fact]) -> str:
        state, standing = None, None
        for n, fact in enumerate(facts):
            state, standing, _ = score_event(
                "c",
                state,
                standing,
                fact,
                EventCause("s", str(n)),
                ruleset=ruleset,
                thresholds=ruleset.thresholds,
                windows=WINDOWS,
                clock_day=fact.day,
                now=datetime(2026, 6, 1, tzinfo=UTC),
            )
        assert standing is not None
        return standing.tier.id

    buy = Fact(START, "purchase", 1500)
    meet = Fact(START, "interaction", 0, "meeting", "visit", "o1")

    def profile(n: int, team: str | None, industry: str | None) -> Fact:
        attributes = {} if industry is None else {"industry": industry}
        return Fact(START, "profile", profile=Profile((n, "crm", str(n)), team, attributes))

    assert tier_of([buy]) == "t3"
    assert tier_of([buy, meet, meet]) == "t2"
    assert tier_of([buy, buy, buy, buy]) == "t2"  # 4 * 0.3 >= 1.0: numbers mix
    assert tier_of([buy, profile(1, "east", None)]) == "t1"
    assert tier_of([buy, profile(1, "east", "finance")]) == "t0"
    # the latest profile by event time wins, whatever the order they arrive in
    assert tier_of([buy, profile(2, None, None), profile(1, "east", "finance")]) == "t3"
    assert tier_of([buy, profile(1, "east", "finance"), profile(2, None, None)]) == "t3"


def test_scores_are_exact_and_explained() -> None:
    example = rules.load(EXAMPLE.read_text(encoding="utf-8"))
    state = None
    for n, fact in enumerate(
        [Fact(START, "purchase", 2_000_000), Fact(START + 10, "refund", 500_050)]
    ):
        state, _, _ = score_event(
            "c",
            state,
            None,
            fact,
            EventCause("s", str(n)),
            ruleset=example,
            thresholds=example.thresholds,
            windows=WINDOWS,
            clock_day=START + 20,
            now=datetime(2026, 6, 1, tzinfo=UTC),
        )
    assert state is not None
    found = inputs(state, START + 20, WINDOWS, example, UNTRACKED)
    [value] = rules.scored(example, found)
    parts = {p.name: p for p in value.parts}
    assert parts["recency"].value == 20
    assert parts["recency"].points == 100  # max 30: at most
    assert parts["frequency"].points == 40  # 1 order: min 1
    assert parts["monetary"].value == Decimal("14999.50")  # net: 20000 - 5000.50
    assert parts["monetary"].points == Decimal("30.00")  # 14999.50 / 50000 = 29.999 %
    assert parts["monetary"].contribution == Decimal("9.00")
    assert value.value == Decimal("40.0") + Decimal("12.0") + Decimal("9.00")
    assert value.value == sum(p.contribution for p in value.parts)


# Stability, against an oracle: one feature (net spend in 30 days), three tiers.
STABLE = """
version: stable-1
features:
  spend_30d: {aggregate: sum, of: net, window_days: 30}
stability: {min_days_in_tier: 5}
tiers:
  - {id: gold, labels: {zh: g, en: g}, rank: 3, high_value: true,
     condition: 'spend_30d >= 1000', stay_while: 'spend_30d >= 800'}
  - {id: silver, labels: {zh: s, en: s}, rank: 2, high_value: false,
     condition: 'spend_30d >= 300'}
  - {id: bronze, labels: {zh: b, en: b}, rank: 1, high_value: false, condition: 'true'}
"""
RULESET = rules.load(STABLE)
RANK = {"gold": 3, "silver": 2, "bronze": 1}

steps = st.lists(
    st.tuples(
        st.integers(0, 4),  # days after the previous event
        st.sampled_from(["purchase", "refund"]),
        st.sampled_from([100_00, 250_00, 500_00, 900_00]),
    ),
    min_size=1,
    max_size=25,
)


def _moment(day: int) -> datetime:
    return datetime.combine(date.fromordinal(day), time(12), UTC)


def _run(
    facts: list[Fact], *, reload_after: frozenset[int] = frozenset()
) -> list[tuple[int, str, str | None]]:
    """(day, tier, tier before) of every change; the state goes through the codec after the
    events in `reload_after` (as between two batches)."""
    state: CustomerState | None = None
    standing: Standing | None = None
    changes = []
    for n, fact in enumerate(facts):
        state, standing, change = score_event(
            "c",
            state,
            standing,
            fact,
            EventCause("s", str(n)),
            ruleset=RULESET,
            thresholds=RULESET.thresholds,
            windows=WINDOWS,
            clock_day=fact.day,
            now=_moment(fact.day),
        )
        if change is not None:
            changes.append(_summary(fact.day, change))
        if n in reload_after:
            state = codec.decode(codec.encode(state), WINDOWS)
    return changes


def _summary(day: int, change: Change) -> tuple[int, str, str | None]:
    return day, change.after.tier.id, None if change.before is None else change.before.tier.id


def _oracle(facts: list[Fact]) -> list[tuple[int, str, str | None]]:
    """SPEC §10 in its own words: the candidate is the first tier whose condition holds; one
    ranked above the current tier is taken at once; otherwise the customer stays while the
    current tier's stay_while (default: its condition) holds, and does not move to a lower
    rank before min_days_in_tier days in the current one."""
    current: str | None = None
    entered = 0
    changes = []
    for n, fact in enumerate(facts):
        spend = sum(
            (f.amount if f.kind == "purchase" else -f.amount)
            for f in facts[: n + 1]
            if fact.day - 30 < f.day <= fact.day
        )
        candidate = "gold" if spend >= 100_000 else "silver" if spend >= 30_000 else "bronze"
        target = candidate
        if current is not None and RANK[candidate] <= RANK[current]:
            stays = {
                "gold": spend >= 80_000,
                "silver": spend >= 30_000,
                "bronze": True,
            }[current]
            if stays or (RANK[candidate] < RANK[current] and fact.day - entered < 5):
                target = current
        if target != current:
            changes.append((fact.day, target, current))
            current, entered = target, fact.day
    return changes


def _facts(plan: list[tuple[int, str, int]]) -> list[Fact]:
    day, facts = START, []
    for gap, kind, amount in plan:
        day += gap
        facts.append(Fact(day, kind, amount))  # type: ignore[arg-type]
    return facts


@settings(max_examples=300)
@given(plan=steps, cuts=st.frozensets(st.integers(0, 24)))
def test_stability_equals_the_oracle_whatever_the_batches(
    plan: list[tuple[int, str, int]], cuts: frozenset[int]
) -> None:
    facts = _facts(plan)
    changes = _run(facts)
    assert changes == _oracle(facts)
    assert _run(facts, reload_after=cuts) == changes


@settings(max_examples=300)
@given(plan=steps)
def test_never_down_before_the_dwell_and_up_at_once(plan: list[tuple[int, str, int]]) -> None:
    facts = _facts(plan)
    changes = _run(facts)
    entered: dict[str, int] = {}
    for day, after, before in changes:
        if before is not None and RANK[after] < RANK[before]:
            assert day - entered[before] >= 5
        entered[after] = day
    # upgrades immediate: whenever the first matching tier ranks above the current one, the
    # customer is in it after that event
    state = None
    standing = None
    for n, fact in enumerate(facts):
        state, standing, _ = score_event(
            "c",
            state,
            standing,
            fact,
            EventCause("s", str(n)),
            ruleset=RULESET,
            thresholds=RULESET.thresholds,
            windows=WINDOWS,
            clock_day=fact.day,
            now=_moment(fact.day),
        )
        match = rules.evaluate(
            RULESET, inputs(state, fact.day, WINDOWS, RULESET, UNTRACKED), RULESET.thresholds
        )
        assert match is not None
        assert standing is not None
        assert RANK[standing.tier.id] >= RANK[match.tier.id]


EXAMPLE_RULESET = rules.load(EXAMPLE.read_text(encoding="utf-8"))
histories = st.lists(
    st.tuples(
        st.integers(-400, 0),
        st.sampled_from(["purchase", "purchase", "refund", "interaction"]),
        st.integers(1, 6_000_000),
        st.sampled_from(["meeting", "call"]),
        st.sampled_from([{}, {"line": "software"}]),
    ),
    min_size=1,
    max_size=15,
)


@settings(max_examples=200)
@given(history=histories, later=st.integers(0, 60))
def test_the_example_is_due_before_time_alone_moves_its_candidate(
    history: list[tuple[int, str, int, str, dict[str, str]]], later: int
) -> None:
    """The example reads recency only through its score's bands (30, 90, 180 days) and its
    declared windows: it is not due every day, and no day before its due day gives another
    candidate tier."""
    assert not EXAMPLE_RULESET.daily
    state: CustomerState | None = None
    for n, (offset, kind, amount, channel, attributes) in enumerate(history):
        if kind == "interaction":
            fact = Fact(START + offset, "interaction", 0, channel, "visit", "o", attributes)
        else:
            fact = Fact(START + offset, kind, amount, attributes=attributes)  # type: ignore[arg-type]
        state, _, _ = score_event(
            "c",
            state,
            None,
            fact,
            EventCause("s", str(n)),
            ruleset=EXAMPLE_RULESET,
            thresholds=EXAMPLE_RULESET.thresholds,
            windows=WINDOWS,
            clock_day=START,
            now=datetime(2026, 6, 1, tzinfo=UTC),
        )
    assert state is not None
    today = max(START, state.anchor) + later
    due = due_day(
        state,
        today,
        ruleset=EXAMPLE_RULESET,
        thresholds=EXAMPLE_RULESET.thresholds,
        windows=WINDOWS,
    )
    assert due > today

    def candidate(day: int) -> str:
        found = inputs(state, day, WINDOWS, EXAMPLE_RULESET, UNTRACKED)
        match = rules.evaluate(EXAMPLE_RULESET, found, EXAMPLE_RULESET.thresholds)
        assert match is not None
        return match.tier.id

    then = candidate(today)
    for day in range(today + 1, min(due, today + 400)):
        assert candidate(day) == then, f"moved {day - today} days on, due {due - today}"
