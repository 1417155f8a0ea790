"""The one wall clock of the services. Everything else takes `now` as a parameter (a callable
in the shells, a value in the cores), so tests and the replay mode control time."""

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)
