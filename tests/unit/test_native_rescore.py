"""The compiled re-tier and sweep (`Engine.rescore`, native/src/engine.rs) are held equal to
the Python core's (services/scorer/rescoring.py's Rescorer) on generated stored customers:
rows with their stored snapshot (covering the day or not, then sent with their state),
stored standings of this ruleset or an older one (or none), any stored due day, judged at
days around their history for each clock reason, with and without stability. The same rows
are written (tier moved, or due day and snapshot alone), the same counts move, and the same
tier changes are made, with the same records."""

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import tierstream_native
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.scorer_run import RULESETS
from services.scorer.compiled import build, change_of, micros
from services.scorer.core import codec, rules
from services.scorer.core.config import Scoring
from services.scorer.core.rules import Ruleset, Tier, placeholder
from services.scorer.core.scoring import Change, ClockReason, Standard
from services.scorer.core.snapshot import of_state
from services.scorer.core.state import Fact, Windows, apply_all
from services.scorer.publisher import change_records
from services.scorer.rescoring import Counts, Rescorer
from services.scorer.store.customers import Rescheduled, Rescored, StoredCustomer

WINDOWS = Windows(main=40, short=15, interactions=7, history=20)  # small: days leave often
DAY = 739_000
EPOCH_DAY = datetime(1970, 1, 1, tzinfo=UTC).toordinal()
SCORING = Scoring(ZoneInfo("Asia/Shanghai"), WINDOWS, "CNY", MappingProxyType({"USD": Decimal(7)}))
STABLE = """
version: stable-2
stability:
  min_days_in_tier: 9
tiers:
  - id: A
    labels: {zh: A, en: A}
    rank: 3
    high_value: true
    condition: monetary >= 300000 && frequency >= 3  # no recency: not daily, so dwells count
    stay_while: monetary >= 150000
  - id: B
    labels: {zh: B, en: B}
    rank: 2
    high_value: false
    condition: frequency >= 2 || interactions_30d >= 2
  - {id: C, labels: {zh: C, en: C}, rank: 1, high_value: false, condition: "true"}
"""
OLDER = rules.load(
    (RULESETS / "default.yaml").read_text().replace("rfm-segments-1", "rfm-segments-0")
)
RULESETS_UNDER_TEST = {
    "default": rules.load((RULESETS / "default.yaml").read_text()),
    "stable": rules.load(STABLE),
}

facts = st.lists(
    st.tuples(
        st.integers(DAY, DAY + 50),
        st.sampled_from(["purchase", "refund", "interaction"]),
        st.integers(1, 4000).map(lambda n: n * 100),
    ),
    min_size=1,
    max_size=12,
)
customers = st.lists(
    st.tuples(
        facts,
        st.integers(0, 2),  # the stored standing: none, this ruleset's, the older one's
        st.integers(0, 7),  # which tier
        st.integers(-30, 5),  # since: days before the day (the dwell ends between, often)
        st.integers(-3, 60),  # the stored due day, from the day
        st.booleans(),  # whether the stored snapshot is from an earlier day
    ),
    min_size=1,
    max_size=8,
)


def stored_row(
    n: int, raw: Any, ruleset: Ruleset, day: int
) -> tuple[StoredCustomer, tuple[Any, ...]]:
    """A stored customer as the Python rescoring reads it, and the same row as the engine's
    rescan reads it."""
    history, which, tier_at, since_days, due_days, earlier = raw
    state = apply_all(None, [Fact(d, k, a) for d, k, a in history], WINDOWS)
    assert state is not None
    encoded = codec.encode(state)
    scored = max(state.anchor, day - 6) if earlier else day
    snap = of_state(state, scored, WINDOWS)
    covers = snap.covers(day)
    tiers = (ruleset if which == 1 else OLDER).tiers
    tier = None if which == 0 else tiers[tier_at % len(tiers)].id
    version = None if which == 0 else (ruleset if which == 1 else OLDER).version
    since = datetime.fromordinal(day + since_days).replace(tzinfo=UTC) + timedelta(hours=5)
    customer = f"c-{n:03d}"
    stored = StoredCustomer(
        customer,
        None if covers else encoded,
        tier,
        None if tier is None else since,
        version,
        n % 3,
        day + due_days,
        None if tier is None else f"change-{n}",
        snap,
    )
    row = (
        customer,
        stored.state,
        tier,
        None if tier is None else micros(since),
        version,
        n % 3,
        day + due_days,
        stored.change_id,
        snap.day,
        snap.stable_until,
        snap.first_day,
        snap.last_purchase,
        snap.frequency,
        snap.monetary,
        snap.frequency_short,
        snap.monetary_short,
        snap.interactions,
    )
    return stored, row


def lookup(version: str, tier_id: str) -> Tier:
    ruleset = OLDER if version == OLDER.version else None
    for one in RULESETS_UNDER_TEST.values():
        if one.version == version:
            ruleset = one
    found = None if ruleset is None else ruleset.tier(tier_id)
    return found or placeholder(tier_id)


def columns_of(
    moved: list[Rescored | Rescheduled],
) -> tuple[tuple[list[Any], ...], tuple[list[Any], ...]]:
    """The Python rescoring's rows as the engine's two column sets."""
    rescored: list[list[Any]] = [[] for _ in range(15)]
    rescheduled: list[list[Any]] = [[] for _ in range(11)]
    for one in moved:
        snap = one.snapshot
        tail = (
            snap.frequency,
            snap.monetary,
            snap.frequency_short,
            snap.monetary_short,
            snap.interactions,
            snap.first_day,
            snap.last_purchase,
            snap.day,
            snap.stable_until,
        )
        if isinstance(one, Rescored):
            head: tuple[Any, ...] = (
                one.customer_id,
                one.tier,
                micros(one.tier_since),
                one.ruleset_version,
                one.change_id,
                one.due_day,
            )
            target = rescored
        else:
            head = (one.customer_id, one.due_day)
            target = rescheduled
        for column, value in zip(target, head + tail, strict=True):
            column.append(value)
    return tuple(rescored), tuple(rescheduled)


EVERY_RECORD = {"ce_specversion", "ce_source", "ce_type", "content-type"}


def engine_changes(engine: tierstream_native.Engine, standard: Standard) -> list[tuple[Any, ...]]:
    """(partition, change id, key, changed value, latest value, changed headers, latest
    headers) of the engine's changes."""
    out = []
    pairs: dict[tuple[str, bytes], int] = {}  # the pairs of every record, by identity
    for item in engine.changes():
        if item[0]:
            _, partition, change_id, _, _, key, value, headers, latest, latest_headers = item[:10]
            out.append((partition, change_id, key, value, latest, headers, latest_headers))
            own: dict[tuple[str, bytes], int] = {}
            for pair in [*headers, *latest_headers]:
                kept = pairs if pair[0] in EVERY_RECORD else own
                kept.setdefault(pair, id(pair))
                assert id(pair) == kept[pair]  # equal pairs are one shared tuple
        else:
            change = change_of(item[2:], standard, lookup)
            out.append(python_change((item[1], change)))
    return out


def python_change(numbered: tuple[int, Change]) -> tuple[Any, ...]:
    partition, change = numbered
    changed, latest = change_records(change, SCORING.zone)
    return (
        partition,
        change.change_id,
        changed.key,
        changed.value,
        latest.value,
        changed.headers,
        latest.headers,
    )


@pytest.mark.parametrize("name", sorted(RULESETS_UNDER_TEST))
@settings(max_examples=150, deadline=None)
@given(
    rows=customers,
    offset=st.integers(-5, 60),
    cause=st.sampled_from(["time_passed", "ruleset_activated", "thresholds_refreshed"]),
)
def test_rescore_equals_the_python_rescoring(
    name: str, rows: list[Any], offset: int, cause: ClockReason
) -> None:
    ruleset = RULESETS_UNDER_TEST[name]
    standard = Standard(ruleset, ruleset.thresholds, 1)
    day = DAY + offset
    now = datetime.fromordinal(day).replace(tzinfo=UTC) + timedelta(hours=3)
    pairs = [stored_row(n, raw, ruleset, day) for n, raw in enumerate(rows)]
    changes: list[tuple[int, Change]] = []
    counts: Counts = Counter()
    rescorer = Rescorer(
        None,  # type: ignore[arg-type]  # the rows are given; nothing is read or written
        scoring=SCORING,
        standard=standard,
        tiers=lookup,
        newer=(),
        changes=changes,
        counts=counts,
    )
    expected = rescorer._rows([p for p, _ in pairs], day, now, cause, str(day))
    engine = build(SCORING, standard, {OLDER.version: OLDER, ruleset.version: ruleset})
    engine.begin()
    moved, rescheduled, deltas = engine.rescore(
        [r for _, r in pairs], day, micros(now), cause, str(day)
    )
    assert (tuple(moved), tuple(rescheduled)) == columns_of(expected)
    assert {(p, t): d for p, t, d in deltas} == {k: v for k, v in counts.items() if v}
    assert engine_changes(engine, standard) == [python_change(c) for c in changes]
