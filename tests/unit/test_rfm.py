"""The incremental RFM state equals a straightforward batch recomputation from the full
history, whatever the order, the gaps, the refunds and the clock."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.oracle import oracle
from services.scorer.core import codec
from services.scorer.core.state import (
    CustomerState,
    Fact,
    OutsideHistory,
    Windows,
    advance,
    apply,
    apply_all,
    features,
)

WINDOWS = Windows()


START = 739_000  # an ordinal day in 2024
# Offsets around every window edge (30, 90, 365, and the retained span 730), so that facts,
# clock moves and probes land exactly on boundaries often, not by luck.
EDGES = sorted({e + d for e in (0, 30, 90, 365, 730) for d in (-1, 0, 1)})
offsets = st.one_of(st.sampled_from(EDGES), st.integers(0, 120), st.integers(0, 5 * 365))
facts_strategy = st.builds(
    Fact,
    day=st.one_of(offsets.map(lambda o: START + o), offsets.map(lambda o: START - o)),
    kind=st.sampled_from(["purchase", "refund", "interaction", "profile"]),
    amount=st.integers(1, 10_000_000),
).map(lambda f: f if f.kind in ("purchase", "refund") else Fact(f.day, f.kind))
probe_offsets = st.one_of(st.sampled_from([-e for e in EDGES] + EDGES), st.integers(-400, 900))


@settings(max_examples=600)
@given(
    facts=st.lists(facts_strategy, min_size=1, max_size=40),
    clock=st.lists(offsets, max_size=4),
    probes=st.lists(probe_offsets, min_size=1, max_size=8),
)
def test_features_equal_the_batch_oracle(
    facts: list[Fact], clock: list[int], probes: list[int]
) -> None:
    state: CustomerState | None = None
    for position, fact in enumerate(facts):  # the given order is arbitrary: late, early
        state = apply(state, fact, WINDOWS)
        if position < len(clock):  # the clock may move on between events
            state = advance(state, state.anchor + clock[position], WINDOWS)
    assert state is not None
    for offset in probes:
        today = state.anchor + offset
        if today < state.first_day or today < state.anchor - WINDOWS.history:
            continue  # outside what the state promises; checked below
        assert features(state, today, WINDOWS) == oracle(facts, today)


@given(facts=st.lists(facts_strategy, min_size=1, max_size=30), seed=st.randoms())
def test_order_does_not_matter(facts: list[Fact], seed: object) -> None:
    shuffled = list(facts)
    seed.shuffle(shuffled)  # type: ignore[attr-defined]
    first, second = apply_all(None, facts, WINDOWS), apply_all(None, shuffled, WINDOWS)
    assert first is not None
    assert second is not None
    today = max(first.anchor, second.anchor)
    assert features(first, today, WINDOWS) == features(second, today, WINDOWS)


@given(facts=st.lists(facts_strategy, min_size=1, max_size=60))
def test_state_stays_bounded(facts: list[Fact]) -> None:
    state = apply_all(None, facts, WINDOWS)
    assert state is not None
    assert all(day > state.anchor - WINDOWS.retained for day in state.days)
    assert len(state.days) <= WINDOWS.retained


def test_window_edges_follow_the_spec() -> None:
    day = START
    state = apply(None, Fact(day, "purchase", 100), WINDOWS)
    assert features(state, day + 364, WINDOWS).frequency == 1  # t - 365 < d
    assert features(state, day + 365, WINDOWS).frequency == 0
    assert features(state, day + 89, WINDOWS).frequency_90d == 1
    assert features(state, day + 90, WINDOWS).frequency_90d == 0
    assert features(state, day + 365, WINDOWS).recency_days == 365


def test_refunds_reduce_money_not_frequency() -> None:
    state = apply_all(
        None, [Fact(START, "purchase", 10_000), Fact(START + 1, "refund", 2_500)], WINDOWS
    )
    assert state is not None
    found = features(state, START + 1, WINDOWS)
    assert (found.frequency, found.monetary) == (1, 7_500)


def test_questions_outside_the_history_are_refused() -> None:
    state = apply(None, Fact(START, "purchase", 1), WINDOWS)
    state = advance(state, START + 1000, WINDOWS)
    for today in (START - 1, START + 1000 - WINDOWS.history - 1):
        try:
            features(state, today, WINDOWS)
        except OutsideHistory:
            continue
        raise AssertionError(f"day {today} should be refused")


@given(facts=st.lists(facts_strategy, min_size=1, max_size=40), clock=offsets)
def test_the_stored_form_round_trips(facts: list[Fact], clock: int) -> None:
    state = apply_all(None, facts, WINDOWS)
    assert state is not None
    state = advance(state, state.anchor + clock, WINDOWS)
    assert codec.decode(codec.encode(state), WINDOWS) == state


def test_an_unknown_stored_version_is_refused() -> None:
    state = apply(None, Fact(START, "purchase", 1), WINDOWS)
    with pytest.raises(codec.UnknownStateVersion):
        codec.decode(b"\x07" + codec.encode(state)[1:], WINDOWS)
