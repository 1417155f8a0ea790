"""CustomerState to bytes and back, compactly (one row per customer in PostgreSQL).

Version 1 layout (msgspec msgpack): [first_day, anchor, last_purchase, last_purchase_dropped,
[[day, purchases, purchased, refunded, interactions], ...]]. The window totals are not
stored: they follow from the days and the anchor, and are recomputed on decoding.

Version 2 (SPEC §10) appends the latest profile, [time µs, source, id, team, attributes] or
nil, and the declared streams' tracks, [[key, epoch, since, dropped, [[day, count, total,
least, greatest], ...]], ...]. A state with neither is written in version 1, so a
deployment without declared features stores what it always did; both versions load.
"""

from types import MappingProxyType
from typing import Any

import msgspec

from services.scorer.core.snapshot import Snapshot, of_rows
from services.scorer.core.state import (
    NO_TRACKS,
    Attribute,
    CustomerState,
    Day,
    Profile,
    Track,
    Windows,
    totals_at,
)

VERSION = b"\x01"
VERSION_2 = b"\x02"
_Row = tuple[int, int, int, int, int]
_Layout = tuple[int, int, int | None, int | None, list[_Row]]
_ProfileRow = tuple[int, str, str, str | None, dict[str, Attribute]]
_TrackRow = tuple[str, int, int | None, int | None, list[tuple[int, int, int, int, int]]]
_Layout2 = tuple[int, int, int | None, int | None, list[_Row], _ProfileRow | None, list[_TrackRow]]


# built once: a decoder per call costs more
_DECODER: msgspec.msgpack.Decoder[_Layout] = msgspec.msgpack.Decoder(_Layout)
_DECODER_2: msgspec.msgpack.Decoder[_Layout2] = msgspec.msgpack.Decoder(_Layout2)


class UnknownStateVersion(ValueError):
    pass


def encode(state: CustomerState) -> bytes:
    days = [
        (day, c.purchases, c.purchased, c.refunded, c.interactions)
        for day, c in sorted(state.days.items())
    ]
    head = (state.first_day, state.anchor, state.last_purchase, state.last_purchase_dropped)
    if state.profile is None and not state.tracks:
        return VERSION + msgspec.msgpack.encode((*head, days))
    profile = state.profile
    profile_row = (
        None if profile is None else (*profile.order, profile.team, dict(profile.attributes))
    )
    tracks = [
        (key, t.epoch, t.since, t.dropped, [(d, *a) for d, a in sorted(t.days.items())])
        for key, t in sorted(state.tracks.items())
    ]
    return VERSION_2 + msgspec.msgpack.encode((*head, days, profile_row, tracks))


def _layout(data: bytes) -> _Layout | _Layout2:
    version = data[:1]
    if version == VERSION:
        return _DECODER.decode(data[1:])
    if version == VERSION_2:
        return _DECODER_2.decode(data[1:])
    raise UnknownStateVersion(f"state version {version!r} is neither {VERSION!r} nor {VERSION_2!r}")


def decode(data: bytes, windows: Windows) -> CustomerState:
    layout: Any = _layout(data)
    first_day, anchor, last_purchase, dropped, rows = layout[:5]
    days = MappingProxyType({row[0]: Day(*row[1:]) for row in rows})
    profile = None
    tracks = NO_TRACKS
    if len(layout) > 5:
        profile_row, track_rows = layout[5], layout[6]
        if profile_row is not None:
            time, source, event_id, team, attributes = profile_row
            profile = Profile((time, source, event_id), team, MappingProxyType(attributes))
        if track_rows:
            tracks = MappingProxyType(
                {
                    key: Track(
                        epoch,
                        since,
                        MappingProxyType({r[0]: (r[1], r[2], r[3], r[4]) for r in rows_}),
                        gone,
                    )
                    for key, epoch, since, gone, rows_ in track_rows
                }
            )
    return CustomerState(
        first_day,
        anchor,
        days,
        totals_at(days, anchor, windows),
        last_purchase,
        dropped,
        profile,
        tracks,
    )


def snapshot(data: bytes, today: int, windows: Windows) -> Snapshot:
    """`snapshot.of_state(decode(data), today)` without building the state (the sweep's
    and the re-tier's path for customers whose stored snapshot no longer covers the day)."""
    layout: Any = _layout(data)
    first_day, anchor, last_purchase, _, rows = layout[:5]
    return of_rows(first_day, anchor, last_purchase, rows, today=today, windows=windows)
