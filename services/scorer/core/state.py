"""Per-customer RFM state at day granularity: exact rolling windows, bounded, incremental.

Pure: facts in, state out; days are local calendar days (ordinals) in the business time
zone, and "today" is always a parameter. SPEC §4: an event on day d is inside a W-day window
at day t when t - W < d <= t.

The state keeps one `Day` per active day in the retained span (the largest window plus
`history` days for `as_of` queries in the past), the window totals at its `anchor` day
(the latest day it has seen, by event or by clock), and two scalars that outlive the
span: the first day and the last purchase. An event costs O(1) when it is on or before
the anchor, and moving the anchor costs O(active days retained), once per day; the state
never grows with the length of the history.
"""

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Literal

Kind = Literal["purchase", "refund", "interaction", "profile"]
Attribute = str | bool | int | float


class _Nothing(Mapping[str, Any]):
    """The empty mapping, immutable and hashable: a default for frozen dataclasses' fields
    (no factory call per object built)."""

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __hash__(self) -> int:
        return 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and not other


NOTHING: Mapping[str, Any] = _Nothing()
NO_ATTRIBUTES: Mapping[str, Attribute] = NOTHING


@dataclass(frozen=True, slots=True)
class Windows:
    main: int = 365
    short: int = 90
    interactions: int = 30
    history: int = 365  # how far before its anchor a state can answer `as_of`

    @property
    def retained(self) -> int:
        return max(self.main, self.short, self.interactions) + self.history


@dataclass(frozen=True, slots=True)
class Profile:
    """What the latest customer profile says that conditions may read (SPEC §10). `order` is
    (event time in microseconds since the epoch, source, id): the greatest is the latest, so
    the outcome does not depend on the order profiles arrive in."""

    order: tuple[int, str, str]
    team: str | None
    attributes: Mapping[str, Attribute]


@dataclass(frozen=True, slots=True)
class Fact:
    """An event reduced to what scoring needs; `amount` in minor units of the base currency.
    The event's fields that declared features filter on (`where`, SPEC §10) come along, and
    a profile's team and attributes."""

    day: int
    kind: Kind
    amount: int = 0
    channel: str | None = None
    action: str | None = None
    actor: str | None = None
    attributes: Mapping[str, Attribute] = NO_ATTRIBUTES
    profile: Profile | None = None


Aggregates = tuple[int, int, int, int]  # matching events, their total, least and greatest amount


@dataclass(frozen=True, slots=True)
class Track:
    """One declared stream of a customer (services/scorer/core/declared.py): per-day aggregates
    of the events that match it, like `days`. `epoch` is the activation it was started
    under; `since` the first day it covers exactly (None: all the customer's events, it was
    started with the customer); `dropped` the latest matching day no longer retained."""

    epoch: int
    since: int | None
    days: Mapping[int, Aggregates]
    dropped: int | None = None


@dataclass(frozen=True, slots=True)
class Day:
    purchases: int = 0
    purchased: int = 0
    refunded: int = 0
    interactions: int = 0

    def plus(self, fact: Fact) -> "Day":
        # constructors, not dataclasses.replace: this runs once per event
        kind = fact.kind
        if kind == "purchase":
            return Day(
                self.purchases + 1, self.purchased + fact.amount, self.refunded, self.interactions
            )
        if kind == "refund":
            return Day(
                self.purchases, self.purchased, self.refunded + fact.amount, self.interactions
            )
        if kind == "interaction":
            return Day(self.purchases, self.purchased, self.refunded, self.interactions + 1)
        return self


_EMPTY = Day()


@dataclass(frozen=True, slots=True)
class Totals:
    """Window sums at one day; money in minor units."""

    frequency: int = 0
    monetary: int = 0
    frequency_short: int = 0
    monetary_short: int = 0
    interactions: int = 0


@dataclass(frozen=True, slots=True)
class Features:
    """SPEC §4 features at `day`; money in minor units."""

    day: int
    recency_days: int | None
    frequency: int
    monetary: int
    frequency_90d: int
    monetary_90d: int
    interactions_30d: int
    tenure_days: int
    # a ruleset's declared features (None: null), money in minor units; those that count
    # only since a day (the stream started later than the customer), and the profile
    declared: Mapping[str, int | None] = NOTHING
    partial: Mapping[str, int] = NOTHING
    profile: Profile | None = None


NO_TRACKS: Mapping[str, Track] = NOTHING


@dataclass(frozen=True, slots=True)
class CustomerState:
    first_day: int
    anchor: int
    days: Mapping[int, Day]  # only days > anchor - windows.retained
    totals: Totals  # at `anchor`
    last_purchase: int | None  # over the whole history
    last_purchase_dropped: int | None  # latest purchase among the days no longer retained
    profile: Profile | None = None  # the latest profile
    tracks: Mapping[str, Track] = NO_TRACKS  # the active ruleset's declared streams, by key


class OutsideHistory(ValueError):
    """`as_of` is earlier than the state can answer exactly."""


def apply(state: CustomerState | None, fact: Fact, windows: Windows) -> CustomerState:
    """The state after one more fact (in any order: late facts land in their own day)."""
    if state is None:
        state = CustomerState(fact.day, fact.day, MappingProxyType({}), Totals(), None, None)
    elif fact.day > state.anchor:
        state = advance(state, fact.day, windows)
    profile = fact.profile
    if profile is not None and (state.profile is None or profile.order > state.profile.order):
        state = replace(state, profile=profile)
    is_purchase = fact.kind == "purchase"
    first_day = min(state.first_day, fact.day)
    last_purchase = _latest(state.last_purchase, fact.day if is_purchase else None)
    dropped = state.last_purchase_dropped
    if fact.day <= state.anchor - windows.retained:
        if is_purchase:
            dropped = _latest(dropped, fact.day)
        return CustomerState(
            first_day,
            state.anchor,
            state.days,
            state.totals,
            last_purchase,
            dropped,
            state.profile,
            state.tracks,
        )
    days = dict(state.days)
    days[fact.day] = days.get(fact.day, _EMPTY).plus(fact)
    totals = _add(state.totals, state.anchor - fact.day, fact, windows)
    return CustomerState(
        first_day,
        state.anchor,
        MappingProxyType(days),
        totals,
        last_purchase,
        dropped,
        state.profile,
        state.tracks,
    )


def apply_all(
    state: CustomerState | None, facts: Iterable[Fact], windows: Windows
) -> CustomerState | None:
    for fact in facts:
        state = apply(state, fact, windows)
    return state


def advance(state: CustomerState, today: int, windows: Windows) -> CustomerState:
    """Moves the anchor forward to `today`: days leave windows, old days are dropped."""
    if today <= state.anchor:
        return state
    horizon = today - windows.retained
    kept = {day: counts for day, counts in state.days.items() if day > horizon}
    dropped = [day for day, counts in state.days.items() if day <= horizon and counts.purchases]
    return CustomerState(
        state.first_day,
        today,
        MappingProxyType(kept),
        totals_at(kept, today, windows),
        state.last_purchase,
        _latest(state.last_purchase_dropped, max(dropped, default=None)),
        state.profile,
        _pruned(state.tracks, horizon),
    )


def _pruned(tracks: Mapping[str, Track], horizon: int) -> Mapping[str, Track]:
    """The tracks without their days at or before `horizon` (their latest is kept)."""
    if not tracks:
        return tracks
    pruned = {}
    for key, track in tracks.items():
        old = [day for day in track.days if day <= horizon]
        if old:
            days = MappingProxyType({d: a for d, a in track.days.items() if d > horizon})
            pruned[key] = Track(track.epoch, track.since, days, _latest(track.dropped, max(old)))
        else:
            pruned[key] = track
    return MappingProxyType(pruned)


def features(state: CustomerState, today: int, windows: Windows) -> Features:
    """The features at `today`: at or after the anchor from the totals, before it (as far
    back as `windows.history`) from the retained days."""
    if today < state.first_day:
        raise OutsideHistory(f"day {today} is before the customer's first event")
    if today < state.anchor - windows.history:
        raise OutsideHistory(
            f"day {today} is more than {windows.history} days before the "
            f"latest day seen ({state.anchor})"
        )
    if today == state.anchor:
        totals = state.totals
        last_purchase = state.last_purchase
    elif today > state.anchor:  # the days a move of the anchor would drop count nowhere
        totals = totals_at(state.days, today, windows)
        last_purchase = state.last_purchase
    else:
        totals = totals_at(state.days, today, windows)
        last_purchase = _latest(
            state.last_purchase_dropped,
            max((d for d, c in state.days.items() if d <= today and c.purchases), default=None),
        )
    return Features(
        day=today,
        recency_days=None if last_purchase is None else today - last_purchase,
        frequency=totals.frequency,
        monetary=totals.monetary,
        frequency_90d=totals.frequency_short,
        monetary_90d=totals.monetary_short,
        interactions_30d=totals.interactions,
        tenure_days=today - state.first_day,
    )


def _add(totals: Totals, age: int, fact: Fact, windows: Windows) -> Totals:
    """`age` = anchor - day: the fact is inside a W-day window when age < W."""
    frequency, monetary, frequency_short, monetary_short, interactions = (
        totals.frequency,
        totals.monetary,
        totals.frequency_short,
        totals.monetary_short,
        totals.interactions,
    )
    if fact.kind == "interaction":
        if age >= windows.interactions:
            return totals
        interactions += 1
    elif fact.kind in ("purchase", "refund"):
        count = 1 if fact.kind == "purchase" else 0
        money = fact.amount if fact.kind == "purchase" else -fact.amount
        if age < windows.main:
            frequency += count
            monetary += money
        if age < windows.short:
            frequency_short += count
            monetary_short += money
    else:
        return totals
    return Totals(frequency, monetary, frequency_short, monetary_short, interactions)


def totals_at(days: Mapping[int, Day], today: int, windows: Windows) -> Totals:
    """The window sums at `today` over the given days (days after `today` do not count)."""
    frequency = monetary = frequency_short = monetary_short = interactions = 0
    for day, counts in days.items():
        age = today - day
        if age < 0:  # after `today` (an `as_of` in the past)
            continue
        if age < windows.main:
            frequency += counts.purchases
            monetary += counts.purchased - counts.refunded
        if age < windows.short:
            frequency_short += counts.purchases
            monetary_short += counts.purchased - counts.refunded
        if age < windows.interactions:
            interactions += counts.interactions
    return Totals(frequency, monetary, frequency_short, monetary_short, interactions)


def _latest(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else max(a, b)
