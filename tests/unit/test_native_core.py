"""The compiled core's state (native/src/state.rs, codec.rs) is held equal to the Python core
(services/scorer/core/state.py, codec.py, snapshot.py) on generated facts: the same state
bytes, the same features at any day the state can answer, the same snapshot; and the
compiled codec reads back every state the Python one writes, byte for byte."""

from dataclasses import replace
from types import MappingProxyType
from typing import Any

import tierstream_native
from hypothesis import example, given, settings
from hypothesis import strategies as st

from services.scorer.core import codec
from services.scorer.core.snapshot import of_state
from services.scorer.core.state import (
    Fact,
    Features,
    OutsideHistory,
    Profile,
    Track,
    Windows,
    apply_all,
    features,
)

WINDOWS = Windows(main=40, short=15, interactions=7, history=20)  # small: days leave often
SPANS = (WINDOWS.main, WINDOWS.short, WINDOWS.interactions, WINDOWS.history)
DAY = 739_000

attribute = st.one_of(
    st.text(max_size=5), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats()
)
profiles = st.builds(
    lambda t, s, i, team, a: (t, s, i, team, list(a.items())),
    st.integers(0, 2**53),
    st.sampled_from(["erp/a", "erp/b"]),
    st.text(min_size=1, max_size=3),
    st.none() | st.text(max_size=4),
    st.dictionaries(st.text(min_size=1, max_size=4), attribute, max_size=3),
)
raw_facts = st.lists(
    st.tuples(
        st.integers(DAY, DAY + 60),
        st.sampled_from(["purchase", "refund", "interaction", "profile"]),
        st.integers(1, 10**9),
        profiles,
    ).map(
        lambda f: (
            (f[0], f[1], f[2] if f[1] in ("purchase", "refund") else 0)
            + ((f[3],) if f[1] == "profile" else (None,))
        )
    ),
    min_size=1,
    max_size=40,
)


def python_fact(raw: tuple[int, str, int, Any]) -> Fact:
    day, kind, amount, profile = raw
    if profile is None:
        return Fact(day, kind, amount)  # type: ignore[arg-type]
    time, source, event_id, team, attributes = profile
    return Fact(day, "profile", profile=Profile((time, source, event_id), team, dict(attributes)))


def feature_row(found: Features) -> tuple[int, int | None, int, int, int, int, int, int]:
    return (
        found.day,
        found.recency_days,
        found.frequency,
        found.monetary,
        found.frequency_90d,
        found.monetary_90d,
        found.interactions_30d,
        found.tenure_days,
    )


@settings(max_examples=400)
@example([(DAY, "interaction", 0, None)], 7)  # the day an interaction leaves its window
@given(raw_facts, st.integers(-25, 45))
def test_state_features_and_snapshot_equal_the_python_core(
    raw: list[tuple[int, str, int, Any]], offset: int
) -> None:
    state = apply_all(None, [python_fact(f) for f in raw], WINDOWS)
    assert state is not None
    today = state.anchor + offset
    encoded, found, snap = tierstream_native.replay(raw, SPANS, today)
    assert encoded == codec.encode(state)
    try:
        expected = feature_row(features(state, today, WINDOWS))
    except OutsideHistory:
        assert found is None
    else:
        assert found == expected
    s = of_state(state, today, WINDOWS)
    assert snap == (
        s.day,
        s.stable_until,
        s.first_day,
        s.last_purchase,
        s.frequency,
        s.monetary,
        s.frequency_short,
        s.monetary_short,
        s.interactions,
    )


@given(raw_facts)
def test_the_compiled_codec_reads_back_what_python_writes(
    raw: list[tuple[int, str, int, Any]],
) -> None:
    state = apply_all(None, [python_fact(f) for f in raw], WINDOWS)
    assert state is not None
    encoded = codec.encode(state)
    assert tierstream_native.reencode(encoded, SPANS) == encoded


def test_a_state_with_declared_tracks_reads_back_byte_for_byte() -> None:
    """Version 2 with tracks (written by the Python core under a ruleset with declared
    features) survives the compiled codec unchanged."""
    state = apply_all(None, [Fact(DAY, "purchase", 500), Fact(DAY + 3, "refund", 20)], WINDOWS)
    assert state is not None
    tracked = replace(
        state,
        tracks=MappingProxyType(
            {"k1": Track(3, DAY + 1, MappingProxyType({DAY + 2: (1, 500, 500, 500)}), DAY - 9)}
        ),
    )
    encoded = codec.encode(tracked)
    assert encoded[:1] == b"\x02"
    assert tierstream_native.reencode(encoded, SPANS) == encoded
