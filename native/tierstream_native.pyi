"""Types of the compiled scorer core (native/src)."""

from collections.abc import Callable, Sequence
from typing import Any

VERSION: str

_Features = tuple[int, int | None, int, int, int, int, int, int]
_Standing = tuple[str, int, str]
_Part = tuple[int, int | None, int | None, int | None]

class Engine:
    """One transaction's work on the compiled path (native/src/engine.rs)."""

    def __init__(
        self,
        *,
        windows: tuple[int, int, int, int],
        offsets: list[tuple[int, int]],
        until: int,
        base_currency: str,
        rates: list[tuple[str, str]],
        version: str,
        tiers: list[str],
        numbers: list[str],
        levels: bool,
        thresholds: tuple[int, int, int],
        decide: Callable[[_Features], int],
        hold: Callable[[_Features, str, int, int], bool] | None,
        min_days_in_tier: int,
        daily: bool,
        recency_edges: list[int],
        tenure_edges: list[int],
        records: tuple[
            str,
            list[tuple[str, str, str, int, bool]],
            list[tuple[str, list[tuple[str, str, str, int, bool]]]],
        ]
        | None = None,
    ) -> None: ...
    def begin(self) -> None: ...
    def decode(self, records: Sequence[Any]) -> list[int]: ...
    def put(
        self,
        index: int,
        partition: int,
        source: str,
        id: str,
        subject: str,
        time_us: int,
        digest: bytes,
        day: int,
        kind: str,
        amount: int,
        channel: str | None,
        action: str | None,
        actor: str | None,
        attributes: list[tuple[str, str | bool | int | float]],
        profile: tuple[int, str, str, str | None, list[tuple[str, str | bool | int | float]]]
        | None,
    ) -> None: ...
    def identities(self) -> tuple[list[bytes], list[bytes]]: ...
    def seen(self, statuses: list[int]) -> list[tuple[int, str, str]]: ...
    def subjects(self) -> tuple[list[str], list[int]]: ...
    def spans(self) -> dict[int, tuple[int, int, int]]: ...
    def load(self, rows: Sequence[Any]) -> None: ...
    def score(self, parts: list[_Part], wall_us: int, event_clock: bool) -> list[_Part]: ...
    def rescore(
        self, rows: Sequence[Any], day: int, now_us: int, reason: str, detail: str
    ) -> tuple[tuple[list[Any], ...], tuple[list[Any], ...], list[tuple[int, str, int]]]: ...
    def rows(self) -> tuple[tuple[list[Any], ...], list[tuple[int, str, int]]]: ...
    def changes(self) -> list[Any]: ...

def event_key_for_test(source: str, id: str) -> bytes: ...
def partition_of(key: bytes, count: int) -> int: ...
def pg_array(values: list[Any]) -> str: ...
def reencode(data: bytes, windows: tuple[int, int, int, int]) -> bytes: ...
def replay(
    facts: list[tuple[int, str, int, Any]], windows: tuple[int, int, int, int], today: int
) -> tuple[bytes, _Features | None, tuple[int, int, int, int | None, int, int, int, int, int]]: ...

_Tier = tuple[str, str, str, int, bool]
_Header = tuple[str, bytes]

def change_records_for_test(
    *,
    change_id: str,
    customer_id: str,
    before: tuple[_Tier, int] | None,
    after: tuple[_Tier, int],
    version: str,
    features: _Features,
    cause: tuple[str, str] | str,
    thresholds: tuple[int, int, int],
    mode: str,
    offsets: Sequence[tuple[int, int]],
    until: int,
    repeat: int = 1,
) -> tuple[bytes, bytes, bytes, list[_Header], list[_Header]] | None:
    """`publisher.change_records` for a change without declared features and scores
    (native/src/records.rs): (key, changed value, latest value, their headers), or None
    where Python must write them; built `repeat` times."""

class Decoder:
    """The scorer's decoding of one record, exact or refused (native/src/event.rs): None
    when Python's `services.scorer.decoding.decode` has to decide."""

    def __init__(
        self,
        offsets: Sequence[tuple[int, int]],
        until: int,
        base_currency: str,
        rates: dict[str, str],
    ) -> None: ...
    def decode(
        self, key: bytes | None, headers: list[tuple[str, bytes]], value: bytes | None
    ) -> (
        tuple[
            str,
            str,
            str,
            int,
            int,
            str,
            int,
            str | None,
            str | None,
            str | None,
            list[tuple[str, str | bool | int | float]],
            tuple[int, str, str, str | None, list[tuple[str, str | bool | int | float]]] | None,
            bytes,
        ]
        | None
    ): ...
    def count(
        self, records: Sequence[tuple[bytes | None, list[tuple[str, bytes]], bytes | None]]
    ) -> int: ...
