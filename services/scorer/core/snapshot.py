"""What a customer's features are made of, at one day and for as long as time alone leaves
them be: the re-tier and the day-boundary sweep evaluate customers from it without
decoding their state.

Pure. At any day t at or after the anchor, the window totals only change when a retained
day leaves a window (a day d is in a W-day window while t < d + W); `stable_until` is the
first such day after the snapshot's day. On every day in [day, stable_until) the totals are
the snapshot's, and recency and tenure follow from the last purchase and the first day.
The snapshot does not depend on the ruleset, so it stays good across activations.
"""

from collections.abc import Iterable
from datetime import date
from typing import NamedTuple

from services.scorer.core.state import CustomerState, Features, Windows

FOREVER = date.max.toordinal()  # no retained day will leave a window
# (day, purchases, purchased, refunded, interactions): one retained day, as the codec stores it
DayRow = tuple[int, int, int, int, int]


class Snapshot(NamedTuple):
    """Immutable; a tuple, so that a stored row becomes one without a copy per field (the
    re-tier reads a million of them). Money in minor units; windows as in `Windows`."""

    day: int
    stable_until: int
    first_day: int
    last_purchase: int | None
    frequency: int
    monetary: int
    frequency_short: int
    monetary_short: int
    interactions: int

    def covers(self, today: int) -> bool:
        return self.day <= today < self.stable_until

    def features(self, today: int) -> Features:
        """The features at `today`; only meaningful when `covers(today)`."""
        return Features(
            today,
            None if self.last_purchase is None else today - self.last_purchase,
            self.frequency,
            self.monetary,
            self.frequency_short,
            self.monetary_short,
            self.interactions,
            today - self.first_day,
        )


def of_state(state: CustomerState, today: int, windows: Windows) -> Snapshot:
    """The snapshot at `today` (the later of it and the state's anchor)."""
    rows = [
        (day, c.purchases, c.purchased, c.refunded, c.interactions) for day, c in state.days.items()
    ]
    return of_rows(
        state.first_day, state.anchor, state.last_purchase, rows, today=today, windows=windows
    )


def of_rows(
    first_day: int,
    anchor: int,
    last_purchase: int | None,
    rows: Iterable[DayRow],
    *,
    today: int,
    windows: Windows,
) -> Snapshot:
    """The same from the stored layout (services/scorer/core/codec.py), in one pass."""
    today = max(today, anchor)
    main, short, contacts = windows.main, windows.short, windows.interactions
    frequency = monetary = frequency_short = monetary_short = interactions = 0
    until = FOREVER
    for day, purchases, purchased, refunded, touched in rows:
        if purchases or refunded:
            net = purchased - refunded
            if today < day + short:
                frequency_short += purchases
                monetary_short += net
                until = min(until, day + short)
            if today < day + main:
                frequency += purchases
                monetary += net
                until = min(until, day + main)
        if touched and today < day + contacts:
            interactions += touched
            until = min(until, day + contacts)
    return Snapshot(
        today,
        until,
        first_day,
        last_purchase,
        frequency,
        monetary,
        frequency_short,
        monetary_short,
        interactions,
    )
