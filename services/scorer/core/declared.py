"""Declared features (SPEC §10): a ruleset's own aggregates over the customer's events,
incremental and exact like the built-in ones.

Pure. Features that count the same events share a *stream*: one per distinct (`of`,
`where`). A customer's state holds, per stream, the aggregates of the matching events per
local day (a `Track`: count, total, least and greatest amount), bounded by the retained span
as the built-in days are, plus the latest matching day no longer retained (for `days_since`).
A feature is then a pass over its stream's days in its window: late and out-of-order events
land in their own day, refunds in a `net` stream count negatively, and `as_of` a past day
only counts the days up to it.

A stream the state did not track from the customer's first event (a ruleset activated after
the customer arrived declares it) covers the days from the day after the customer's latest
day when it started (`Track.since`): a feature whose window reaches before that day counts
only what the stream saw and is reported as partial, "since" that day, in the why and the
tier change. Which streams are tracked, and since which activation, is the deployment's
(`Tracking`, kept in the `feature_streams` table): a stream that a later ruleset stopped
using and an even later one uses again restarts, so a track never has a gap.

A `where` is CEL over the event: `amount` (a number in the base currency; null for
interactions), `channel`, `action`, `actor` (null for transactions) and `attributes` (a
map). A `where` that errors for an event (it reads an attribute the event does not have)
does not match it. Its results are memoized on the fields it reads.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from types import MappingProxyType
from typing import Any

from cel_expr_python import cel

from services.scorer.core.cel_text import clean, names, reals
from services.scorer.core.ruleset_format import Aggregate, FeatureSpec
from services.scorer.core.state import (
    NO_TRACKS,
    Aggregates,
    Attribute,
    CustomerState,
    Fact,
    Track,
    Windows,
)

EVENT_FIELDS = ("amount", "channel", "action", "actor", "attributes")
MONEY = frozenset({"sum", "avg", "min", "max"})  # aggregates whose value is an amount
_KINDS: Mapping[str, frozenset[str]] = {
    "purchase": frozenset({"purchase"}),
    "refund": frozenset({"refund"}),
    "net": frozenset({"purchase", "refund"}),
    "interaction": frozenset({"interaction"}),
    "any": frozenset({"purchase", "refund", "interaction"}),
}
MEMO_SIZE = 100_000


@dataclass(frozen=True, slots=True)
class Stream:
    key: str  # "of|where": the same events, the same stream, in every ruleset
    of: str
    where: str | None
    program: Any  # the compiled `where`, or None
    reads: tuple[str, ...]  # the event fields the `where` reads (its memo key)
    memo: dict[tuple[object, ...], bool] = field(default_factory=dict, compare=False)

    def matches(self, fact: Fact) -> bool:
        if fact.kind not in _KINDS[self.of]:
            return False
        if self.program is None:
            return True
        key = tuple(_field(fact, name) for name in self.reads)
        found = self.memo.get(key)
        if found is None:
            found = _holds(self.program, event_data(fact))
            if len(self.memo) >= MEMO_SIZE:
                self.memo.clear()
            self.memo[key] = found
        return found


@dataclass(frozen=True, slots=True)
class Declared:
    name: str
    aggregate: Aggregate
    stream: str  # its stream's key
    window: (
        int | None
    )  # days (the whole retained history when the file says none); None: days_since

    @property
    def money(self) -> bool:
        return self.aggregate in MONEY


@dataclass(frozen=True, slots=True)
class Plan:
    """What a ruleset declares: its features, and the streams they count."""

    features: tuple[Declared, ...] = ()
    streams: tuple[Stream, ...] = ()

    @property
    def names(self) -> frozenset[str]:
        return frozenset(f.name for f in self.features)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(s.key for s in self.streams)

    @property
    def aggregates(self) -> Mapping[str, Aggregate]:
        return {f.name: f.aggregate for f in self.features}

    @property
    def money(self) -> frozenset[str]:
        """The features whose values are amounts (minor units in the state)."""
        return frozenset(f.name for f in self.features if f.money)


NO_PLAN = Plan()


@dataclass(frozen=True, slots=True)
class Tracking:
    """The deployment's streams: `since[key]` is the activation from which the stream has
    been tracked without a gap; `activation` the one in force (new tracks carry it)."""

    activation: int = 0
    since: Mapping[str, int] = field(default_factory=dict)

    def current(self, key: str, track: Track) -> bool:
        return track.epoch >= self.since.get(key, 0)


UNTRACKED = Tracking()


class FeatureError(ValueError):
    pass


def compile_plan(
    specs: Mapping[str, FeatureSpec], *, max_window: int, retained: int
) -> tuple[Plan, list[str]]:
    """The plan of a ruleset's `features`, and the problems that refuse it (each naming the
    feature)."""
    problems: list[str] = []
    streams: dict[str, Stream] = {}
    features = []
    environment = _environment()
    for name, spec in specs.items():
        where = f"feature {name!r}"
        if spec.aggregate in MONEY and spec.of in ("interaction", "any"):
            problems.append(
                f"{where}: {spec.aggregate} of {spec.of}: interactions have no amount "
                "(sum, avg, min and max are of purchase, refund or net)"
            )
        if spec.of == "net" and spec.aggregate != "sum":
            problems.append(f"{where}: of net is for sum only (purchases minus refunds)")
        if spec.aggregate == "days_since" and spec.window_days is not None:
            problems.append(f"{where}: days_since has no window (it looks at the whole history)")
        if spec.window_days is not None and spec.window_days > max_window:
            problems.append(
                f"{where}: window_days {spec.window_days} is beyond the retained span "
                f"({max_window} days)"
            )
        text = None if spec.where is None else spec.where.strip()
        if text == "":
            problems.append(f"{where}: where is blank (leave it out to count every event)")
            continue
        key = f"{spec.of}|{text or ''}"
        if key not in streams:
            try:
                streams[key] = _stream(environment, key, spec.of, text)
            except FeatureError as error:
                problems.append(f"{where}: {error}")
                continue
        window = None if spec.aggregate == "days_since" else spec.window_days or retained
        features.append(Declared(name, spec.aggregate, key, window))
    return Plan(tuple(features), tuple(streams.values())), problems


def _environment() -> Any:
    return cel.NewEnv(variables=dict.fromkeys(EVENT_FIELDS, cel.Type.DYN))


def _stream(environment: Any, key: str, of: str, where: str | None) -> Stream:
    if where is None:
        return Stream(key, of, None, None, ())
    try:
        program = environment.compile(reals(where))
    except Exception as error:  # cel-cpp's status errors carry the position
        raise FeatureError(
            f"where does not compile: {clean(str(error))} (it may read {', '.join(EVENT_FIELDS)})"
        ) from error
    kind = program.return_type()
    if kind not in (cel.Type.BOOL, cel.Type.DYN):
        raise FeatureError(f"where is of type {kind.name().lower()}, not bool")
    reads = tuple(n for n in EVENT_FIELDS if n in names(where))
    stream = Stream(key, of, where, program, reads)
    for probe in _PROBES:  # a where that is not a boolean for some event is refused
        if probe.kind not in _KINDS[of]:
            continue
        data = event_data(probe)
        try:
            value = program.eval(data=data)
        except Exception as error:  # cel-cpp's own errors: an error is no match
            del error
            continue
        if value.type() != cel.Type.ERROR and not isinstance(value.value(), bool):
            raise FeatureError(
                f"where gives {value.value()!r} for an event of kind {probe.kind}, not a bool"
            )
    return stream


_PROBES = (
    Fact(0, "purchase", 1000),
    Fact(0, "refund", 1000),
    Fact(0, "interaction", 0, "meeting", "visit", "someone"),
)


def _field(fact: Fact, name: str) -> object:
    if name == "attributes":  # bool and int are equal as dict keys: keep the type apart
        return tuple(sorted((k, type(v).__name__, v) for k, v in fact.attributes.items()))
    if name == "amount":
        return (fact.kind, fact.amount)
    return getattr(fact, name)


def event_data(fact: Fact) -> dict[str, object]:
    interaction = fact.kind == "interaction"
    return {
        "amount": None if interaction else fact.amount / 100,
        "channel": fact.channel,
        "action": fact.action,
        "actor": fact.actor,
        "attributes": cel_attributes(fact.attributes),
    }


def cel_attributes(attributes: Mapping[str, Attribute]) -> dict[str, object]:
    """Attributes as CEL sees them: numbers are reals (numbers mix, SPEC §4)."""
    return {
        k: float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
        for k, v in attributes.items()
    }


def _holds(program: Any, data: Mapping[str, object]) -> bool:
    try:
        value = program.eval(data=data)
    except Exception:  # cel-cpp's own errors for bad input: no match
        return False
    return value.type() != cel.Type.ERROR and value.value() is True


def observe(
    state: CustomerState,
    before: CustomerState | None,
    fact: Fact,
    *,
    plan: Plan,
    tracking: Tracking,
    windows: Windows,
) -> CustomerState:
    """`state` (= `before` with `fact` applied) with the fact in the plan's streams; streams
    the plan does not use are dropped, and streams not yet tracked (or no longer current)
    start with it."""
    if not plan.streams:
        return state if not state.tracks else _with(state, NO_TRACKS)
    horizon = state.anchor - windows.retained
    tracks = {}
    for stream in plan.streams:
        track = state.tracks.get(stream.key)
        if track is None or not tracking.current(stream.key, track):
            since = None if before is None else before.anchor + 1
            track = Track(tracking.activation, since, MappingProxyType({}))
        if stream.matches(fact):
            track = _plus(track, stream.of, fact, horizon)
        tracks[stream.key] = track
    return _with(state, MappingProxyType(tracks))


def _with(state: CustomerState, tracks: Mapping[str, Track]) -> CustomerState:
    return CustomerState(
        state.first_day,
        state.anchor,
        state.days,
        state.totals,
        state.last_purchase,
        state.last_purchase_dropped,
        state.profile,
        tracks,
    )


def _plus(track: Track, of: str, fact: Fact, horizon: int) -> Track:
    day = fact.day
    if day <= horizon:
        dropped = day if track.dropped is None else max(track.dropped, day)
        return Track(track.epoch, track.since, track.days, dropped)
    amount = fact.amount
    signed = -amount if of == "net" and fact.kind == "refund" else amount
    found = track.days.get(day)
    if found is None:
        aggregates: Aggregates = (1, signed, amount, amount)
    else:
        count, total, low, high = found
        aggregates = (count + 1, total + signed, min(low, amount), max(high, amount))
    days = dict(track.days)
    days[day] = aggregates
    return Track(track.epoch, track.since, MappingProxyType(days), track.dropped)


def values(
    state: CustomerState, today: int, plan: Plan, tracking: Tracking
) -> tuple[dict[str, int | None], dict[str, int]]:
    """The declared features at `today` (money in minor units; an average rounded half to
    even to the cent), and those that are partial, with the day they count from."""
    found: dict[str, int | None] = {}
    partial: dict[str, int] = {}
    for feature in plan.features:
        track = state.tracks.get(feature.stream)
        if track is None or not tracking.current(feature.stream, track):
            track = Track(tracking.activation, state.anchor + 1, MappingProxyType({}))
        value, exact = _value(feature, track, today)
        found[feature.name] = value
        if not exact and track.since is not None:
            partial[feature.name] = track.since
    return found, partial


def _value(feature: Declared, track: Track, today: int) -> tuple[int | None, bool]:
    """The feature's value from its stream at `today`, and whether it is exact."""
    aggregate = feature.aggregate
    since = track.since
    if aggregate == "days_since":
        latest = max((d for d, a in track.days.items() if d <= today and a[0]), default=None)
        if latest is None and track.dropped is not None and track.dropped <= today:
            latest = track.dropped
        exact = since is None or (latest is not None and latest >= since)
        return (None if latest is None else today - latest), exact
    start = today - (feature.window or 0)  # the days after `start` count
    exact = since is None or start + 1 >= since
    count = total = active = 0
    low: int | None = None
    high: int | None = None
    for day, (n, amount, least, greatest) in track.days.items():
        if day > today or day <= start or not n:
            continue
        count += n
        total += amount
        active += 1
        low = least if low is None else min(low, least)
        high = greatest if high is None else max(high, greatest)
    if aggregate == "avg":
        if not count:
            return None, exact
        average = (Decimal(total) / count).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
        return int(average), exact
    results = {"count": count, "sum": total, "days_active": active, "min": low, "max": high}
    return results[aggregate], exact


def next_leave(state: CustomerState, today: int, plan: Plan) -> int | None:
    """The first day after `today` on which a retained day leaves a declared window (a
    declared feature may then change with no new event)."""
    due: int | None = None
    for feature in plan.features:
        if feature.window is None:
            continue
        track = state.tracks.get(feature.stream)
        if track is None:
            continue
        for day, aggregates in track.days.items():
            leaves = day + feature.window
            if aggregates[0] and leaves > today and (due is None or leaves < due):
                due = leaves
    return due
