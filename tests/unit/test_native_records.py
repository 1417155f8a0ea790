"""The compiled core's tier-change records (native/src/records.rs) are held equal to the
publisher's (services/scorer/publisher.py `change_records`): for generated changes without
declared features and scores, the same keys, values and headers byte for byte, whenever
the compiled core writes them; and it declines (None, Python writes them) exactly where it
cannot be sure: a local midnight in a DST gap or fold or outside the zone table, or a span
between two standings whose float seconds it does not reproduce."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
import tierstream_native
from hypothesis import event, given, settings
from hypothesis import strategies as st

from services.effectively_once.record import Record
from services.scorer.compiled_zone import offsets
from services.scorer.core.rules import Thresholds, Tier, levels
from services.scorer.core.scoring import Change, ClockReason, EventCause, Standing
from services.scorer.core.state import Features
from services.scorer.publisher import change_records

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
MIN_US = (datetime(1, 1, 1, tzinfo=UTC) - EPOCH) // timedelta(microseconds=1)
MAX_US = (datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC) - EPOCH) // timedelta(
    microseconds=1
)
EXACT_SPAN_US = 2**53  # the compiled core's limit for previous_tier_seconds
I64 = st.integers(-(2**63), 2**63 - 1)
ORDINARY = (date(2000, 1, 1).toordinal(), date(2100, 1, 1).toordinal())
ZONES = ("UTC", "Asia/Shanghai", "Europe/Berlin", "America/New_York")
# zones that change their clocks at midnight, where the compiled core declines: São Paulo
# from 00:00 to 01:00 (a gap), Havana the same in spring and from 01:00 back to 00:00 in
# autumn (a fold: two midnights)
MIDNIGHT_ZONES = ("America/Sao_Paulo", "America/Havana")

TierRow = tuple[str, str, str, int, bool]
FeatureRow = tuple[int, int | None, int, int, int, int, int, int]


@dataclass(frozen=True)
class Case:
    change_id: str
    customer_id: str
    before: tuple[TierRow, int, str] | None  # tier, since µs, ruleset version
    after: tuple[TierRow, int]
    version: str
    features: FeatureRow
    cause: tuple[str, str] | str  # an event's (source, id), or a clock reason
    thresholds: tuple[int, int, int]
    mode: str
    zone: str


def instant(us: int) -> datetime:
    """As `services.scorer.compiled.instant`: what the engine's µs are to the core."""
    return EPOCH + timedelta(microseconds=us)


def tier(row: TierRow) -> Tier:
    return Tier(row[0], row[1], row[2], row[3], row[4], "", None)


def python_records(case: Case) -> tuple[Record, Record]:
    found = Features(*case.features)
    thresholds = Thresholds(*case.thresholds)
    cause: EventCause | ClockReason = (
        EventCause(*case.cause) if isinstance(case.cause, tuple) else case.cause  # type: ignore[assignment]
    )
    before = (
        None
        if case.before is None
        else Standing(tier(case.before[0]), instant(case.before[1]), case.before[2])
    )
    change = Change(
        case.change_id,
        case.customer_id,
        before,
        Standing(tier(case.after[0]), instant(case.after[1]), case.version),
        found,
        levels(found, thresholds),
        thresholds,
        case.mode,  # type: ignore[arg-type]
        cause,
    )
    return change_records(change, ZoneInfo(case.zone))


def rust_records(
    case: Case, repeat: int = 1
) -> tuple[bytes, bytes, bytes, list[tuple[str, bytes]], list[tuple[str, bytes]]] | None:
    table, until = offsets(ZoneInfo(case.zone))
    return tierstream_native.change_records_for_test(
        change_id=case.change_id,
        customer_id=case.customer_id,
        before=None if case.before is None else (case.before[0], case.before[1]),
        after=case.after,
        version=case.version,
        features=case.features,
        cause=case.cause,
        thresholds=case.thresholds,
        mode=case.mode,
        offsets=table,
        until=until,
        repeat=repeat,
    )


def midnight_unclear(day: int, zone: str) -> bool:
    """Whether the local day's midnight is not one instant (a gap or a fold), or is not
    within the zone table by a day either side."""
    table, until = offsets(ZoneInfo(zone))
    local = (day - EPOCH_ORDINAL) * 86_400
    if local - 86_400 < table[0][0] or local + 86_400 >= until:
        return True
    midnight = datetime.combine(date.fromordinal(day), time(0), ZoneInfo(zone))
    return midnight.utcoffset() != midnight.replace(fold=1).utcoffset()


def declines(case: Case) -> bool:
    """Where the compiled core must give None."""
    span_too_long = case.before is not None and abs(case.after[1] - case.before[1]) > EXACT_SPAN_US
    return span_too_long or midnight_unclear(case.features[0], case.zone)


def check(case: Case) -> bool:
    """The two equal where the compiled core writes; whether it did."""
    built = rust_records(case)
    assert (built is None) == declines(case)
    if built is None:
        return False
    key, changed_value, latest_value, changed_headers, latest_headers = built
    changed, latest = python_records(case)
    assert (key, changed_value, changed_headers) == (changed.key, changed.value, changed.headers)
    assert (key, latest_value, latest_headers) == (latest.key, latest.value, latest.headers)
    return True


@cache
def transition_days(zone: str) -> tuple[int, ...]:
    """The local days the zone's offset changes on (either side of the change)."""
    table, _ = offsets(ZoneInfo(zone))
    days = set()
    for (_, previous), (start, offset) in pairwise(table):
        days.add((start + previous) // 86_400 + EPOCH_ORDINAL)
        days.add((start + offset) // 86_400 + EPOCH_ORDINAL)
    return tuple(sorted(days))


# ---------------------------------------------------------------- strategies

awkward = st.sampled_from(
    ['"', "\\", "\x00", "\x08", "\t", "\n", "\x0b", "\x0c", "\r", "\x1f", " ", "\x7f"]
)
unusual = st.sampled_from(["\u2028", "\u2029", "é", "中", "金", "\U0001f600", "\ufeff", "/", "'"])
texts = st.text(st.one_of(st.characters(codec="utf-8"), awkward, unusual), max_size=10)
ids = st.text(st.one_of(st.characters(codec="utf-8"), awkward, unusual), min_size=1, max_size=12)
tiers = st.tuples(
    ids,
    texts,
    texts,
    st.one_of(st.integers(-3, 6), I64),
    st.booleans(),
)
micros = st.one_of(st.sampled_from([0, 0, 1, 10, 500_000, 999_999]), st.integers(0, 999_999))
seconds = st.one_of(
    st.integers(0, 4_102_444_800),  # 1970 to 2100
    st.integers(MIN_US // 1_000_000, MAX_US // 1_000_000),
    st.sampled_from([MIN_US // 1_000_000, MAX_US // 1_000_000]),
)
instants = st.builds(lambda s, u: s * 1_000_000 + u, seconds, micros)
spans = st.one_of(
    st.integers(-(10**9), 10**14),  # up to about 3 years, either way
    st.integers(-(2**63), 2**63 - 1),
    st.builds(
        lambda d, sign: sign * (EXACT_SPAN_US + d), st.integers(-3, 3), st.sampled_from([1, -1])
    ),
    st.builds(
        lambda s, d: s * 1_000_000 + d,
        st.integers(2**33 - 10, 2**34 + 10),  # where float seconds lose the µs
        st.integers(-999_999, 999_999),
    ),
)


@st.composite
def days(draw: st.DrawFn, zone: str) -> int:
    near = transition_days(zone) or (ORDINARY[0],)
    return draw(
        st.one_of(
            st.integers(*ORDINARY),
            st.builds(lambda d, k: d + k, st.sampled_from(near), st.integers(-2, 2)),
            st.integers(date(1899, 12, 25).toordinal(), date(1900, 1, 6).toordinal()),
            st.integers(date(2199, 12, 25).toordinal(), date(2200, 1, 6).toordinal()),
        )
    )


@st.composite
def features(draw: st.DrawFn, zone: str) -> FeatureRow:
    small = st.integers(-(10**6), 10**9)
    number = st.one_of(small, I64)
    return (
        draw(days(zone)),
        draw(st.one_of(st.none(), st.integers(0, 5000), I64)),
        draw(number),
        draw(st.one_of(st.sampled_from([0, 5, 150, 100, 12345, -5, -150, -100]), number)),
        draw(number),
        draw(number),
        draw(number),
        draw(number),
    )


@st.composite
def cases(draw: st.DrawFn, zones: tuple[str, ...] = (*ZONES, *MIDNIGHT_ZONES)) -> Case:
    zone = draw(st.sampled_from(zones))
    after_since = draw(instants)
    before = None
    if draw(st.booleans()):
        since = after_since - draw(spans)
        if not MIN_US <= since <= MAX_US:
            since = draw(instants)
        before = (draw(tiers), since, draw(texts))
    cause = draw(
        st.one_of(
            st.tuples(ids, ids),
            st.sampled_from(["time_passed", "ruleset_activated", "thresholds_refreshed"]),
        )
    )
    return Case(
        change_id=draw(ids),
        customer_id=draw(ids),
        before=before,
        after=(draw(tiers), after_since),
        version=draw(texts),
        features=draw(features(zone)),
        cause=cause,
        thresholds=draw(
            st.tuples(
                st.one_of(st.integers(0, 400), I64),
                st.one_of(st.integers(0, 20), I64),
                st.one_of(st.integers(0, 10**8), I64),
            )
        ),
        mode=draw(st.sampled_from(["fixed", "population"])),
        zone=zone,
    )


# ---------------------------------------------------------------- tests


@settings(max_examples=3000)
@given(cases())
def test_the_compiled_records_are_the_publishers(case: Case) -> None:
    event(f"{case.zone}: {'written' if check(case) else 'declined'}")


@settings(max_examples=500)
@given(
    cases(zones=("UTC", "Asia/Shanghai")),
    st.integers(*ORDINARY),
    st.integers(1_600_000_000_000_000, 2_500_000_000_000_000),
    st.integers(-(3 * 10**15), 3 * 10**15),
)
def test_ordinary_changes_are_always_written_by_the_compiled_core(
    case: Case, day: int, since: int, span: int
) -> None:
    """Days of this century in zones without a midnight change, standings up to about 95
    years apart: the compiled core never declines."""
    ordinary = Case(
        **{
            **case.__dict__,
            "before": None if case.before is None else (case.before[0], since - span, "v"),
            "after": (case.after[0], since),
            "features": (day, *case.features[1:]),
        }
    )
    assert check(ordinary)


TIER: TierRow = ("gold", "金牌", "Gold", 3, True)
SILVER: TierRow = ("silver", 'S"\\\x00\x1f\x7f\u2028\u2029', "Silver\n\t\r\b\f", 2, False)
BASE = Case(
    change_id="0" * 32,
    customer_id="C-1",
    before=(SILVER, 1_764_000_000_000_000, "v1"),
    after=(TIER, 1_764_870_600_000_000),  # 2025-12-04T17:50:00Z
    version="v2",
    features=(date(2025, 12, 4).toordinal(), 3, 4, 12345, 2, -5, 7, 400),
    cause=("erp/a", "e-1"),
    thresholds=(30, 3, 100_000),
    mode="population",
    zone="Asia/Shanghai",
)
CONTROLS = "".join(chr(c) for c in range(0x20)) + '\x7f"\\\u2028\u2029/é'


@pytest.mark.parametrize(
    "case",
    [
        BASE,
        Case(**{**BASE.__dict__, "before": None, "cause": "time_passed", "mode": "fixed"}),
        Case(**{**BASE.__dict__, "customer_id": CONTROLS, "change_id": CONTROLS}),
        Case(**{**BASE.__dict__, "after": ((CONTROLS, CONTROLS, CONTROLS, -1, False), 1)}),
        Case(**{**BASE.__dict__, "after": (TIER, MAX_US)}),
        Case(**{**BASE.__dict__, "after": (TIER, MIN_US + 999_999), "before": None}),
        Case(**{**BASE.__dict__, "after": (TIER, 1_764_870_600_000_001)}),
        Case(**{**BASE.__dict__, "after": (TIER, 1_764_870_600_500_000)}),
        Case(**{**BASE.__dict__, "before": (SILVER, 1_764_870_600_000_000 - EXACT_SPAN_US, "v")}),
        Case(**{**BASE.__dict__, "before": (SILVER, 1_764_870_600_000_000 + EXACT_SPAN_US, "v")}),
        Case(
            **{**BASE.__dict__, "before": (SILVER, 1_764_870_600_000_000 - EXACT_SPAN_US - 1, "v")}
        ),
        Case(**{**BASE.__dict__, "before": (SILVER, 1_764_870_600_000_001, "v")}),  # -0.000001 s
        Case(**{**BASE.__dict__, "before": (SILVER, 1_764_870_598_500_000, "v")}),  # 1.5 s
        Case(**{**BASE.__dict__, "before": (TIER, 0, "v")}),  # lateral
        Case(**{**BASE.__dict__, "before": (("x", "", "", 9, True), 0, "v")}),  # down
        Case(**{**BASE.__dict__, "features": (BASE.features[0], None, 0, 0, 0, 0, 0, 0)}),
        Case(
            **{
                **BASE.__dict__,
                "features": (BASE.features[0], *(2**63 - 1,) * 7),
                "thresholds": (-(2**63), 2**63 - 1, -(2**63)),
            }
        ),
        Case(**{**BASE.__dict__, "features": (BASE.features[0], *(-(2**63),) * 7)}),
        # the days Berlin and New York spring forward and fall back (at 02:00 or 03:00)
        Case(
            **{
                **BASE.__dict__,
                "zone": "Europe/Berlin",
                "features": (date(2025, 3, 30).toordinal(), *BASE.features[1:]),
            }
        ),
        Case(
            **{
                **BASE.__dict__,
                "zone": "Europe/Berlin",
                "features": (date(2025, 10, 26).toordinal(), *BASE.features[1:]),
            }
        ),
        Case(
            **{
                **BASE.__dict__,
                "zone": "America/New_York",
                "features": (date(2025, 3, 9).toordinal(), *BASE.features[1:]),
            }
        ),
        Case(
            **{
                **BASE.__dict__,
                "zone": "America/New_York",
                "features": (date(2025, 11, 2).toordinal(), *BASE.features[1:]),
            }
        ),
        # São Paulo's clocks went from 00:00 to 01:00 on 2018-11-04: no midnight that day
        Case(
            **{
                **BASE.__dict__,
                "zone": "America/Sao_Paulo",
                "features": (date(2018, 11, 4).toordinal(), *BASE.features[1:]),
            }
        ),
        Case(
            **{
                **BASE.__dict__,
                "zone": "America/Sao_Paulo",
                "features": (date(2019, 2, 17).toordinal(), *BASE.features[1:]),
            }
        ),
    ],
)
def test_edges(case: Case) -> None:
    check(case)


@pytest.mark.parametrize(
    ("zone", "day"),
    [
        ("America/Sao_Paulo", date(2018, 11, 4)),  # a gap
        ("America/Havana", date(2025, 3, 9)),  # a gap
        ("America/Havana", date(2025, 11, 2)),  # a fold
    ],
)
def test_a_midnight_in_a_gap_or_fold_is_left_to_python(zone: str, day: date) -> None:
    case = Case(
        **{**BASE.__dict__, "zone": zone, "features": (day.toordinal(), *BASE.features[1:])}
    )
    assert midnight_unclear(day.toordinal(), zone)
    assert rust_records(case) is None
    for other in (day - timedelta(days=1), day + timedelta(days=1)):
        assert check(Case(**{**case.__dict__, "features": (other.toordinal(), *case.features[1:])}))
