"""CustomerState to bytes and back, compactly (one row per customer in PostgreSQL).

Version 1 layout (msgspec msgpack): [first_day, anchor, last_purchase, last_purchase_dropped,
[[day, purchases, purchased, refunded, interactions], ...]]. The window totals are not
stored: they follow from the days and the anchor, and are recomputed on decoding.
"""

from types import MappingProxyType

import msgspec

from services.scorer.core.snapshot import Snapshot, of_rows
from services.scorer.core.state import CustomerState, Day, Windows, totals_at

VERSION = b"\x01"
_Row = tuple[int, int, int, int, int]
_Layout = tuple[int, int, int | None, int | None, list[_Row]]


# built once: a decoder per call costs more
_DECODER: msgspec.msgpack.Decoder[_Layout] = msgspec.msgpack.Decoder(_Layout)


class UnknownStateVersion(ValueError):
    pass


def encode(state: CustomerState) -> bytes:
    days = [
        (day, c.purchases, c.purchased, c.refunded, c.interactions)
        for day, c in sorted(state.days.items())
    ]
    layout: _Layout = (
        state.first_day,
        state.anchor,
        state.last_purchase,
        state.last_purchase_dropped,
        days,
    )
    return VERSION + msgspec.msgpack.encode(layout)


def _layout(data: bytes) -> _Layout:
    if data[:1] != VERSION:
        raise UnknownStateVersion(f"state version {data[:1]!r} is not {VERSION!r}")
    return _DECODER.decode(data[1:])


def decode(data: bytes, windows: Windows) -> CustomerState:
    first_day, anchor, last_purchase, dropped, rows = _layout(data)
    days = MappingProxyType({row[0]: Day(*row[1:]) for row in rows})
    return CustomerState(
        first_day, anchor, days, totals_at(days, anchor, windows), last_purchase, dropped
    )


def snapshot(data: bytes, today: int, windows: Windows) -> Snapshot:
    """`snapshot.of_state(decode(data), today)` without building the state (the sweep's
    and the re-tier's path for customers whose stored snapshot no longer covers the day)."""
    first_day, anchor, last_purchase, _, rows = _layout(data)
    return of_rows(first_day, anchor, last_purchase, rows, today=today, windows=windows)
