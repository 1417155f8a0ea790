"""A snapshot gives the batch oracle's features on every day it covers, its `stable_until`
is the first day they would differ (not later: a later one would hide a change from the
sweep), and reading it from the stored bytes gives the same as from the state."""

from hypothesis import given
from hypothesis import strategies as st

from harness.oracle import oracle
from services.scorer.core import codec
from services.scorer.core.snapshot import FOREVER, of_state
from services.scorer.core.state import Fact, apply_all, features
from tests.unit.test_rfm import WINDOWS, facts_strategy, offsets

histories = st.lists(facts_strategy, min_size=1, max_size=40)
ahead = offsets.map(abs)  # days after the anchor


@given(facts=histories, clock=ahead, probes=st.lists(st.integers(0, 800), max_size=8))
def test_covered_days_give_the_oracle_features(
    facts: list[Fact], clock: int, probes: list[int]
) -> None:
    state = apply_all(None, facts, WINDOWS)
    assert state is not None
    snap = of_state(state, state.anchor + clock, WINDOWS)
    assert snap.day == state.anchor + clock
    assert snap.stable_until > snap.day
    for probe in [0, *probes]:
        today = snap.day + probe
        if snap.covers(today):
            assert snap.features(today) == oracle(facts, today)


@given(facts=histories, clock=ahead)
def test_stable_until_is_the_first_day_the_totals_move(facts: list[Fact], clock: int) -> None:
    state = apply_all(None, facts, WINDOWS)
    assert state is not None
    snap = of_state(state, state.anchor + clock, WINDOWS)
    if snap.stable_until == FOREVER:
        return
    last_covered = snap.features(snap.stable_until - 1)
    moved = features(state, snap.stable_until, WINDOWS)
    windowed = ("frequency", "monetary", "frequency_90d", "monetary_90d", "interactions_30d")
    assert any(getattr(moved, n) != getattr(last_covered, n) for n in windowed)


@given(facts=histories, clock=ahead)
def test_the_stored_bytes_give_the_same_snapshot(facts: list[Fact], clock: int) -> None:
    state = apply_all(None, facts, WINDOWS)
    assert state is not None
    today = state.anchor + clock
    encoded = codec.encode(state)
    assert codec.snapshot(encoded, today, WINDOWS) == of_state(state, today, WINDOWS)


@given(facts=histories, before=st.integers(1, 400))
def test_a_day_before_the_anchor_is_read_at_the_anchor(facts: list[Fact], before: int) -> None:
    state = apply_all(None, facts, WINDOWS)
    assert state is not None
    snap = of_state(state, state.anchor - before, WINDOWS)
    assert snap == of_state(state, state.anchor, WINDOWS)
    assert not snap.covers(state.anchor - before)
