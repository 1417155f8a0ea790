"""The business time zone as the compiled core reads it (native/src/zone.rs): the UTC
offsets of a `ZoneInfo` and the instants they begin, from Python's own tz database, so a
local day there is the one `local_day` gives here."""

from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

FROM = datetime(1900, 1, 1, tzinfo=UTC)
UNTIL = datetime(2200, 1, 1, tzinfo=UTC)
_DAY = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _offset(zone: ZoneInfo, moment: datetime) -> int:
    found = moment.astimezone(zone).utcoffset()
    assert found is not None  # noqa: S101 - a ZoneInfo always has one
    return int(found.total_seconds())


def _seconds(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(seconds=1)


@cache
def offsets(zone: ZoneInfo) -> tuple[tuple[tuple[int, int], ...], int]:
    """((first UTC second, offset in seconds), ...) from 1900 to 2200, and the end of that
    span. Sampled once a day, each change found to the second by bisection (two changes
    within one day that cancel out are not seen; no zone has them in this span)."""
    changes = [(_seconds(FROM), _offset(zone, FROM))]
    day = FROM
    while day < UNTIL:
        following = day + _DAY
        if _offset(zone, following) != changes[-1][1]:
            low, high = _seconds(day), _seconds(following)  # the change is in (low, high]
            while high - low > 1:
                middle = (low + high) // 2
                if _offset(zone, _EPOCH + timedelta(seconds=middle)) == changes[-1][1]:
                    low = middle
                else:
                    high = middle
            changes.append((high, _offset(zone, _EPOCH + timedelta(seconds=high))))
        day = following
    return tuple(changes), _seconds(UNTIL)
