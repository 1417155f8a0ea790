"""Declared features (SPEC §10) equal a literal batch recomputation from the plain list of
facts, whatever the order, the lateness, the refunds, the pruning and the clock; empty
windows give null or zero; the stored form round-trips; a stream started after the
customer's first events says since when it counts."""

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from random import Random
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scorer.core import codec
from services.scorer.core.declared import (
    NO_PLAN,
    UNTRACKED,
    Plan,
    Tracking,
    compile_plan,
    next_leave,
    observe,
    values,
)
from services.scorer.core.ruleset_format import Aggregate, FeatureSpec, Of
from services.scorer.core.state import (
    Attribute,
    CustomerState,
    Fact,
    Profile,
    Windows,
    advance,
    apply,
)

WINDOWS = Windows()
RETAINED = WINDOWS.retained  # 730
MAX_WINDOW = WINDOWS.main  # the longest built-in window: as far as a declared one may reach
START = 739_000  # an ordinal day in 2024

# ---------------------------------------------------------------------------------------------
# The SPEC's words, written out again: which events each `of` counts, which aggregates are
# amounts, and the `where`s the tests use, each with what it means as plain Python.

KINDS: Mapping[str, frozenset[str]] = {
    "purchase": frozenset({"purchase"}),
    "refund": frozenset({"refund"}),
    "net": frozenset({"purchase", "refund"}),  # purchases minus refunds
    "interaction": frozenset({"interaction"}),
    "any": frozenset({"purchase", "refund", "interaction"}),  # profiles never count
}
OFS: tuple[Of, ...] = ("purchase", "refund", "net", "interaction", "any")
AGGREGATES: tuple[Aggregate, ...] = (
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "days_active",
    "days_since",
)
AMOUNTS = frozenset({"sum", "avg", "min", "max"})
NULL_WHEN_EMPTY = frozenset({"avg", "min", "max", "days_since"})


def allowed(aggregate: str, of: str) -> bool:
    """SPEC §10: sum, avg, min and max are of the amount (interactions have none); net is
    for sum only."""
    if of == "net":
        return aggregate == "sum"
    return aggregate not in AMOUNTS or of in ("purchase", "refund")


def _number(value: Attribute | None) -> float | None:
    """An attribute as CEL compares it (ints and floats mix), None for a string or a bool."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _more_than(value: Attribute | None, bound: float) -> bool:
    """`value > bound` in CEL: for a number; anything else errors."""
    number = _number(value)
    return number is not None and number > bound


def _equal(value: Attribute | None, number: float) -> bool:
    """`value == number` in CEL: a string or a bool is never equal to a number."""
    return _number(value) == number


@dataclass(frozen=True)
class Where:
    text: str | None
    holds: Callable[[Fact], bool]  # the same condition, read by hand (an error: no match)


WHERES: tuple[Where, ...] = (
    Where(None, lambda f: True),
    # an interaction's amount is null: comparing it errors, so no interaction matches; the
    # integer literal is a real (numbers mix)
    Where("amount >= 50", lambda f: f.kind != "interaction" and f.amount >= 5_000),
    Where('channel == "meeting"', lambda f: f.channel == "meeting"),
    # a missing attribute is an error: no match
    Where('attributes.line == "software"', lambda f: f.attributes.get("line") == "software"),
    # CEL's `||` absorbs an error when the other side is true
    Where(
        'action == "visit" || attributes.line == "software"',
        lambda f: f.action == "visit" or f.attributes.get("line") == "software",
    ),
    Where(
        "has(attributes.size) && attributes.size > 2",
        lambda f: _more_than(f.attributes.get("size"), 2),
    ),
    # below: an interaction (amount null, no match) and a purchase of 0 differ
    Where("amount < 50", lambda f: f.kind != "interaction" and f.amount < 5_000),
    # a bool is not a number: true is not 1 (nor 1.0)
    Where("attributes.size == 1", lambda f: _equal(f.attributes.get("size"), 1)),
)
WINDOW_DAYS: tuple[int | None, ...] = (1, 7, 30, 90, MAX_WINDOW, None)  # None: all retained


@dataclass(frozen=True)
class Feature:
    name: str
    aggregate: Aggregate
    of: Of
    where: Where
    window: int | None

    @property
    def spec(self) -> FeatureSpec:
        return FeatureSpec(
            aggregate=self.aggregate, of=self.of, where=self.where.text, window_days=self.window
        )


def declare(ofs: Iterable[Of], wheres: Iterable[Where]) -> tuple[Feature, ...]:
    """Every allowed aggregate of each `of` and `where`, in every window, named
    `{aggregate}_{of}_w{the where's position in wheres}_{window_days or "all"}`."""
    found = []
    for w, where in enumerate(wheres):
        for of in ofs:
            for aggregate in AGGREGATES:
                if not allowed(aggregate, of):
                    continue
                for window in (None,) if aggregate == "days_since" else WINDOW_DAYS:
                    name = f"{aggregate}_{of}_w{w}_{window or 'all'}"
                    found.append(Feature(name, aggregate, of, where, window))
    return tuple(found)


def plan_of(features: Iterable[Feature]) -> Plan:
    plan, problems = compile_plan(
        {f.name: f.spec for f in features}, max_window=MAX_WINDOW, retained=RETAINED
    )
    assert problems == []
    return plan


FEATURES = declare(OFS, WHERES)
PLAN = plan_of(FEATURES)
BY_NAME = {f.name: f for f in FEATURES}

# ---------------------------------------------------------------------------------------------
# The literal batch oracle


def oracle(facts: list[Fact], feature: Feature, today: int, anchor: int) -> int | None:
    """A feature at `today` from every fact the state was given, as SPEC §10 reads: the
    matching events (of the feature's kinds, its `where` holding) inside its window, an event
    on day d inside a W-day window at t when t - W < d <= t, and no window meaning the whole
    retained history: the days after anchor - retained (as_of a past day too: the days up to
    it; a window_days is at most 365, so inside what is retained); days_since over the whole
    history."""
    matching = [
        f
        for f in facts
        if f.kind in KINDS[feature.of] and feature.where.holds(f) and f.day <= today
    ]
    if feature.aggregate == "days_since":
        return today - max(f.day for f in matching) if matching else None
    width = RETAINED if feature.window is None else feature.window
    inside = [f for f in matching if today - width < f.day and f.day > anchor - RETAINED]
    amounts = [f.amount for f in inside]
    if feature.aggregate == "avg":  # to the cent (a whole minor unit), half to even: round
        return round(Fraction(sum(amounts), len(amounts))) if amounts else None
    net = feature.of == "net"
    by_aggregate: dict[str, int | None] = {
        "count": len(inside),
        "days_active": len({f.day for f in inside}),
        "sum": sum(-f.amount if net and f.kind == "refund" else f.amount for f in inside),
        "min": min(amounts, default=None),
        "max": max(amounts, default=None),
    }
    return by_aggregate[feature.aggregate]


def expected_values(
    facts: list[Fact], features: Iterable[Feature], today: int, anchor: int
) -> dict[str, int | None]:
    return {f.name: oracle(facts, f, today, anchor) for f in features}


# ---------------------------------------------------------------------------------------------
# Facts as the scorer makes them: a transaction carries attributes only, an interaction a
# channel, action and actor too, a profile its own.

WINDOW_EDGES = sorted({w + d for w in (1, 7, 30, 90, 365, 730) for d in (-1, 0, 1)})
# Days as ages before START, which is mostly the latest day (the anchor): facts on window
# edges often, and far enough back for the retained span to drop some.
ages = st.one_of(
    st.sampled_from([0, *WINDOW_EDGES]),
    st.integers(0, 3),
    st.integers(0, 2 * RETAINED + 100),
)
days = ages.map(lambda age: START - age)
amounts = st.one_of(
    st.sampled_from([0, 1, 2, 3, 5, 15, 25, 4_999, 5_000, 5_001]),
    st.integers(1, 10_000_000),
)
attribute_values: st.SearchStrategy[Attribute] = st.one_of(
    st.sampled_from(["software", "hardware", "", True, False, 2.5, 1.0]),
    st.integers(0, 4),
)
attributes = st.dictionaries(
    st.sampled_from(["line", "size", "region"]), attribute_values, max_size=3
).map(MappingProxyType)
transactions = st.builds(
    Fact,
    day=days,
    kind=st.sampled_from(["purchase", "refund"]),
    amount=amounts,
    attributes=attributes,
)
interactions = st.builds(
    Fact,
    day=days,
    kind=st.just("interaction"),
    channel=st.sampled_from(["meeting", "phone", "email"]),
    action=st.sampled_from(["visit", "call", "demo"]),
    actor=st.sampled_from(["ann", "bo"]),
    attributes=attributes,
)
profiles_ = st.builds(
    Profile,
    order=st.tuples(st.integers(0, 2**53), st.sampled_from(["crm", "erp"]), st.text(max_size=4)),
    team=st.one_of(st.none(), st.sampled_from(["north", "south"])),
    attributes=st.dictionaries(
        st.text(max_size=6),
        st.one_of(
            st.text(max_size=6),
            st.booleans(),
            st.integers(-(2**63), 2**63 - 1),
            st.floats(allow_nan=False, allow_infinity=False),
        ),
        max_size=4,
    ).map(MappingProxyType),
)
profile_facts = st.builds(lambda d, p: Fact(d, "profile", profile=p), days, profiles_)
facts_strategy = st.one_of(transactions, transactions, interactions, profile_facts)
# the day the clock moves to after an event, if it does (nothing when the anchor is later);
# sometimes beyond every event
clock_moves = st.lists(
    st.one_of(st.none(), st.none(), days, st.integers(1, RETAINED + 100).map(START.__add__)),
    max_size=5,
)
# past days to ask about (`as_of`, up to `history` before the anchor) and future ones
past = st.one_of(
    st.sampled_from([e for e in WINDOW_EDGES if e <= WINDOWS.history]),
    st.integers(0, WINDOWS.history),
)
future = st.one_of(st.sampled_from(WINDOW_EDGES), st.integers(1, 2 * RETAINED))

# ---------------------------------------------------------------------------------------------
# Running the state as scoring.score_event does


def step(
    state: CustomerState | None,
    fact: Fact,
    plan: Plan = PLAN,
    tracking: Tracking = UNTRACKED,
) -> CustomerState:
    after = apply(state, fact, WINDOWS)
    if plan.streams or after.tracks:
        after = observe(after, state, fact, plan=plan, tracking=tracking, windows=WINDOWS)
    return after


def run(
    facts: list[Fact],
    clock: Sequence[int | None] = (),
    plan: Plan = PLAN,
    tracking: Tracking = UNTRACKED,
) -> tuple[CustomerState, int]:
    """The state after the facts, the clock moving to day clock[i] after the i-th; and the
    anchor it should have (the latest day of an event or the clock)."""
    state: CustomerState | None = None
    anchor = max(f.day for f in facts)
    for i, fact in enumerate(facts):
        state = step(state, fact, plan, tracking)
        move = clock[i] if i < len(clock) else None
        if move is not None:
            state = advance(state, move, WINDOWS)
            anchor = max(anchor, move)
    assert state is not None
    return state, anchor


# ---------------------------------------------------------------------------------------------
# 1. Every aggregate of every `of`, every window, with and without a `where`


@settings(max_examples=150)
@given(
    facts=st.lists(facts_strategy, min_size=1, max_size=30),
    clock=clock_moves,
    back=st.lists(past, max_size=3),
    ahead=st.lists(future, max_size=2),
)
def test_declared_features_equal_the_batch_oracle(
    facts: list[Fact], clock: list[int | None], back: list[int], ahead: list[int]
) -> None:
    state, anchor = run(facts, clock)
    assert state.anchor == anchor
    # bounded like the built-in days: only the retained span, the rest in `dropped`
    for track in state.tracks.values():
        assert all(anchor - RETAINED < day <= anchor for day in track.days)
        assert track.dropped is None or track.dropped <= anchor - RETAINED
    probes = {anchor, *(anchor - b for b in back), *(anchor + a for a in ahead)}
    for today in sorted(probes):
        found, partial = values(state, today, PLAN, UNTRACKED)
        assert partial == {}  # tracked from the customer's first event: nothing partial
        assert found == expected_values(facts, FEATURES, today, anchor), today


def test_window_edges_follow_the_spec() -> None:
    plan = plan_of(declare(["purchase"], WHERES[:1]))
    state = step(None, Fact(START, "purchase", 1_000), plan)
    for width in (1, 7, 90, MAX_WINDOW, RETAINED):
        name = f"count_purchase_w0_{'all' if width == RETAINED else width}"
        assert values(state, START + width - 1, plan, UNTRACKED)[0][name] == 1  # t - W < d
        assert values(state, START + width, plan, UNTRACKED)[0][name] == 0
    assert values(state, START - 1, plan, UNTRACKED)[0]["count_purchase_w0_1"] == 0  # d <= t
    assert values(state, START + 1_000, plan, UNTRACKED)[0]["days_since_purchase_w0_all"] == 1_000


def test_net_is_purchases_minus_refunds_and_avg_rounds_half_to_even() -> None:
    plan = plan_of(declare(["purchase", "refund", "net"], WHERES[:1]))
    facts = [
        Fact(START, "purchase", 1),
        Fact(START, "purchase", 2),  # avg 1.5 -> 2
        Fact(START + 1, "refund", 5),
        Fact(START + 1, "refund", 6),  # avg 5.5 -> 6
        Fact(START + 2, "refund", 2),  # refunds avg 13 / 3 -> 4
        Fact(START + 2, "purchase", 3),  # purchases avg 6 / 3 = 2
    ]
    state, _ = run(facts, plan=plan)
    at = values(state, START + 1, plan, UNTRACKED)[0]
    assert (at["avg_purchase_w0_7"], at["avg_refund_w0_7"]) == (2, 6)
    assert at["sum_net_w0_7"] == 3 - 11  # refunds count negatively
    at = values(state, START + 2, plan, UNTRACKED)[0]
    assert (at["avg_purchase_w0_7"], at["avg_refund_w0_7"]) == (2, 4)
    assert (at["sum_net_w0_7"], at["sum_net_w0_1"], at["sum_refund_w0_1"]) == (-7, 1, 2)
    # half to even, not half up: 2 and 3 average to 2.5 -> 2
    state, _ = run([Fact(START, "purchase", 2), Fact(START, "purchase", 3)], plan=plan)
    assert values(state, START, plan, UNTRACKED)[0]["avg_purchase_w0_1"] == 2


@pytest.mark.parametrize("late", [False, True])
def test_the_retained_span_ends_exactly_at_its_edge(late: bool) -> None:
    """A day at anchor - retained is no longer retained, whether it arrives late or the
    anchor moves past it; only days_since remembers it."""
    plan = plan_of(declare(["purchase"], WHERES[:1]))
    edge = Fact(START - RETAINED, "purchase", 100)
    inside = Fact(START - RETAINED + 1, "purchase", 200)
    latest = Fact(START, "interaction")
    state, _ = run([latest, edge, inside] if late else [edge, inside, latest], plan=plan)
    [track] = state.tracks.values()
    assert (sorted(track.days), track.dropped) == ([START - RETAINED + 1], START - RETAINED)
    found = values(state, START, plan, UNTRACKED)[0]
    assert (found["count_purchase_w0_all"], found["sum_purchase_w0_all"]) == (1, 200)
    found = values(state, START + 1, plan, UNTRACKED)[0]
    assert (found["count_purchase_w0_all"], found["days_since_purchase_w0_all"]) == (0, RETAINED)


def test_a_where_is_not_answered_for_a_look_alike_event() -> None:
    """The memo of a `where`'s answers tells apart what CEL tells apart: a bool from a
    number, an interaction's null amount from a transaction's 0."""
    small, one = WHERES[6], WHERES[7]
    plan = plan_of(declare(["any"], [small, one]))
    facts = [
        Fact(START, "interaction", 0, "phone", "call", "bo", {"size": True}),
        Fact(START, "purchase", 0, attributes={"size": 1}),
        Fact(START, "refund", 0, attributes={"size": 1.0}),
    ]
    state, _ = run(facts, plan=plan)
    found = values(state, START, plan, UNTRACKED)[0]
    assert (found["count_any_w0_1"], found["count_any_w1_1"]) == (2, 2)


def test_a_where_that_errors_does_not_match() -> None:
    line, size = WHERES[3], WHERES[5]
    plan = plan_of(declare(["purchase", "interaction", "any"], [line, size]))
    facts = [
        Fact(START, "purchase", 100, attributes={"line": "software"}),
        Fact(START, "purchase", 200),  # no line: reading it errors
        Fact(START, "purchase", 400, attributes={"line": 7, "size": "big"}),
        Fact(START, "interaction", 0, "meeting", "visit", "ann", {"size": 3}),
    ]
    state, _ = run(facts, plan=plan)
    found = values(state, START, plan, UNTRACKED)[0]
    assert (found["sum_purchase_w0_1"], found["count_any_w0_1"]) == (100, 1)
    assert (found["count_purchase_w1_1"], found["count_any_w1_1"]) == (0, 1)


# ---------------------------------------------------------------------------------------------
# 2. Empty windows: null for avg, min, max and days_since; zero for the counts and sums


def _empty(feature: Feature) -> int | None:
    return None if feature.aggregate in NULL_WHEN_EMPTY else 0


@settings(max_examples=40)
@given(facts=st.lists(facts_strategy, min_size=1, max_size=20), later=st.integers(1, 400))
def test_empty_windows_are_null_or_zero(facts: list[Fact], later: int) -> None:
    state, anchor = run(facts)
    # long after the last event every window is empty; days_since still counts
    today = anchor + RETAINED + later
    found, _ = values(state, today, PLAN, UNTRACKED)
    for feature in FEATURES:
        if feature.aggregate == "days_since":
            assert found[feature.name] == oracle(facts, feature, today, anchor)
        else:
            assert found[feature.name] == _empty(feature), feature.name
    # before the first event (as far back as `as_of` may go) there is nothing at all
    first = min(f.day for f in facts)
    if first - 1 >= anchor - WINDOWS.history:
        found, _ = values(state, first - 1, PLAN, UNTRACKED)
        assert found == {f.name: _empty(f) for f in FEATURES}


def test_no_matching_event_gives_null_or_zero() -> None:
    facts = [
        Fact(START, "profile", profile=Profile((1, "crm", "p"), None, {"line": "software"})),
        Fact(START, "interaction", 0, "phone", "call", "bo"),
    ]
    state, _ = run(facts)
    found, partial = values(state, START, PLAN, UNTRACKED)
    assert partial == {}
    for feature in FEATURES:
        if feature.of in ("interaction", "any") and feature.where.holds(facts[1]):
            assert found[feature.name] == (0 if feature.aggregate == "days_since" else 1)
        else:  # profiles never count
            assert found[feature.name] == _empty(feature), feature.name


# ---------------------------------------------------------------------------------------------
# 3. The stored form


@settings(max_examples=60)
@given(
    facts=st.lists(facts_strategy, min_size=1, max_size=25),
    clock=clock_moves,
    ofs=st.sets(st.sampled_from(OFS), min_size=1),
)
def test_the_stored_form_round_trips(
    facts: list[Fact], clock: list[int | None], ofs: set[Of]
) -> None:
    plan = plan_of(declare(sorted(ofs), WHERES[:3]))
    state, _ = run(facts, clock, plan)
    assert state.tracks  # the plan's streams are tracked, matching or not
    data = codec.encode(state)
    assert data[:1] == b"\x02"
    assert codec.decode(data, WINDOWS) == state
    # without the declared streams (a ruleset that declares none) only a profile needs 2
    bare = step(state, Fact(state.anchor, "interaction"), NO_PLAN)
    assert not bare.tracks
    data = codec.encode(bare)
    assert data[:1] == (b"\x01" if bare.profile is None else b"\x02")
    assert codec.decode(data, WINDOWS) == bare


@given(facts=st.lists(st.one_of(transactions, interactions), min_size=1, max_size=20))
def test_a_state_without_tracks_or_profile_stays_in_version_1(facts: list[Fact]) -> None:
    state, _ = run(facts, plan=NO_PLAN)
    assert state.profile is None
    assert not state.tracks
    data = codec.encode(state)
    assert data[:1] == b"\x01"
    assert codec.decode(data, WINDOWS) == state


def test_tracks_with_a_since_and_dropped_days_round_trip() -> None:
    plan = plan_of(declare(["net"], WHERES[:1]))
    state = step(None, Fact(START, "interaction"), NO_PLAN)
    state = step(state, Fact(START + 1, "refund", 700), plan)  # starts since START + 1
    state = step(state, Fact(START - RETAINED, "purchase", 300), plan)  # dropped at once
    [track] = state.tracks.values()
    assert (track.since, track.dropped, dict(track.days)) == (
        START + 1,
        START - RETAINED,
        {START + 1: (1, -700, 700, 700)},
    )
    assert codec.encode(state)[:1] == b"\x02"
    assert codec.decode(codec.encode(state), WINDOWS) == state


# ---------------------------------------------------------------------------------------------
# 4. Order independence


@settings(max_examples=80)
@given(facts=st.lists(facts_strategy, min_size=1, max_size=30), seed=st.integers())
def test_order_does_not_matter(facts: list[Fact], seed: int) -> None:
    shuffled = list(facts)
    Random(seed).shuffle(shuffled)
    first, anchor = run(facts)
    second, _ = run(shuffled)
    assert first.tracks == second.tracks
    for today in (anchor, anchor - 1, anchor - MAX_WINDOW, anchor + 1):
        assert values(first, today, PLAN, UNTRACKED) == values(second, today, PLAN, UNTRACKED)


# ---------------------------------------------------------------------------------------------
# 5. Streams started after the customer's first events


def expected_partial(
    observed: list[Fact], features: Iterable[Feature], today: int, since: int
) -> dict[str, int]:
    """A windowed feature is partial when its window reaches before `since`; days_since when
    the stream saw no matching event on or after `since` (an earlier one may be later than
    what it saw)."""
    partial = {}
    for feature in features:
        if feature.aggregate == "days_since":
            seen = [
                f.day
                for f in observed
                if f.kind in KINDS[feature.of] and feature.where.holds(f) and f.day <= today
            ]
            if not seen or max(seen) < since:
                partial[feature.name] = since
        else:
            width = RETAINED if feature.window is None else feature.window
            if today - width + 1 < since:
                partial[feature.name] = since
    return partial


PARTIAL_FEATURES = declare(OFS, WHERES[:2])
PARTIAL_PLAN = plan_of(PARTIAL_FEATURES)


@settings(max_examples=80)
@given(
    facts=st.lists(facts_strategy, min_size=2, max_size=30),
    data=st.data(),
    clock=clock_moves,
    restart=st.booleans(),
)
def test_a_stream_started_later_is_partial_since_its_start(
    facts: list[Fact], data: st.DataObject, clock: list[int | None], restart: bool
) -> None:
    """The first `k` facts are seen without the stream (no ruleset used it, or one that used
    it before an activation restarted it); from the k-th on it counts."""
    k = data.draw(st.integers(1, len(facts) - 1), label="k")
    old, new = Tracking(1, {}), Tracking(3, dict.fromkeys(PARTIAL_PLAN.keys, 3))
    state: CustomerState | None = None
    anchor = max(f.day for f in facts)
    since = 0
    for i, fact in enumerate(facts):
        if i == k:
            assert state is not None
            since = state.anchor + 1
            if restart:  # the stale tracks do not count: all partial, nothing seen
                assert values(state, state.anchor, PARTIAL_PLAN, new) == (
                    {f.name: _empty(f) for f in PARTIAL_FEATURES},
                    {f.name: state.anchor + 1 for f in PARTIAL_FEATURES},
                )
        if i < k:
            state = step(state, fact, PARTIAL_PLAN if restart else NO_PLAN, old)
        else:
            state = step(state, fact, PARTIAL_PLAN, new)
        move = clock[i] if i < len(clock) else None
        if move is not None:
            state = advance(state, move, WINDOWS)
            anchor = max(anchor, move)
    assert state is not None
    assert {t.since for t in state.tracks.values()} == {since}
    observed = facts[k:]
    for today in (anchor, anchor - 1, anchor - 90, anchor - WINDOWS.history, anchor + 30):
        found, partial = values(state, today, PARTIAL_PLAN, new)
        assert partial == expected_partial(observed, PARTIAL_FEATURES, today, since), today
        # it counts what it saw; and where it is not partial, that is everything
        assert found == expected_values(observed, PARTIAL_FEATURES, today, anchor)
        exact = {n: v for n, v in found.items() if n not in partial}
        whole = expected_values(facts, (BY_NAME[n] for n in exact), today, anchor)
        assert exact == whole


def test_a_stream_never_tracked_is_partial_from_the_next_day() -> None:
    state = step(None, Fact(START, "purchase", 100), NO_PLAN)
    found, partial = values(state, START, PARTIAL_PLAN, UNTRACKED)
    assert found == {f.name: _empty(f) for f in PARTIAL_FEATURES}
    assert partial == {f.name: START + 1 for f in PARTIAL_FEATURES}
    state = step(state, Fact(START + 3, "purchase", 100), PARTIAL_PLAN)
    found, partial = values(state, START + 3, PARTIAL_PLAN, UNTRACKED)
    assert found["count_purchase_w0_1"] == 1
    assert "count_purchase_w0_1" not in partial  # its one day is after the stream started
    assert partial["count_purchase_w0_7"] == START + 1
    assert "days_since_purchase_w0_all" not in partial  # it saw a purchase since


# ---------------------------------------------------------------------------------------------
# What the plan refuses, and when a value can next change with no event


@pytest.mark.parametrize("of", OFS)
@pytest.mark.parametrize("aggregate", AGGREGATES)
def test_the_plan_refuses_what_the_spec_refuses(of: Of, aggregate: Aggregate) -> None:
    window = None if aggregate == "days_since" else 30
    spec = FeatureSpec(aggregate=aggregate, of=of, window_days=window)
    _, problems = compile_plan({"f": spec}, max_window=MAX_WINDOW, retained=RETAINED)
    assert (problems == []) == allowed(aggregate, of)
    assert all("'f'" in problem for problem in problems)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        (FeatureSpec(aggregate="days_since", of="purchase", window_days=30), "no window"),
        (FeatureSpec(aggregate="count", of="purchase", window_days=366), "beyond"),
        (FeatureSpec(aggregate="count", of="purchase", where="amount"), "not a bool"),
        (FeatureSpec(aggregate="count", of="purchase", where="amount +"), "does not compile"),
        (FeatureSpec(aggregate="count", of="purchase", where="tier == 1"), "does not compile"),
    ],
)
def test_the_plan_refuses_windows_and_wheres(spec: FeatureSpec, problem: str) -> None:
    _, problems = compile_plan({"f": spec}, max_window=MAX_WINDOW, retained=RETAINED)
    assert len(problems) == 1
    assert problem in problems[0]


def test_a_blank_where_is_refused_whatever_the_order() -> None:
    plain = FeatureSpec(aggregate="count", of="purchase")
    blank = FeatureSpec(aggregate="count", of="purchase", where="  ")
    for specs in ({"blank": blank, "plain": plain}, {"plain": plain, "blank": blank}):
        _, problems = compile_plan(specs, max_window=MAX_WINDOW, retained=RETAINED)
        assert [p for p in problems if "'blank'" in p], list(specs)


@settings(max_examples=40)
@given(facts=st.lists(facts_strategy, min_size=1, max_size=20), gaps=st.lists(past, max_size=3))
def test_nothing_changes_before_the_next_leave(facts: list[Fact], gaps: list[int]) -> None:
    state, anchor = run(facts)
    windowed = [f for f in FEATURES if f.aggregate != "days_since"]
    due = next_leave(state, anchor, PLAN)
    now = expected_values(facts, windowed, anchor, anchor)
    if due is None:
        assert now == {f.name: _empty(f) for f in windowed}
        return
    assert due > anchor
    for gap in gaps:  # any day before the due one: the same values
        if anchor + gap < due:
            assert expected_values(facts, windowed, anchor + gap, anchor) == now
    assert expected_values(facts, windowed, due - 1, anchor) == now
    assert expected_values(facts, windowed, due, anchor) != now
