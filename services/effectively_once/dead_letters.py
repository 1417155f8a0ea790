"""Dead letters: a record that cannot be processed is set aside unchanged, with why added as
headers the caller gives; the consumer puts it in its outbox and the partition moves on."""

from collections.abc import Sequence
from typing import Protocol

from services.effectively_once.record import Headers, Record


class Consumed(Protocol):
    """The fields of a consumed record (aiokafka's ConsumerRecord) a dead letter keeps."""

    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


def dead_letter(record: Consumed, why: Headers) -> Record:
    """The original key, value and headers, and `why` after them."""
    return Record(record.key or b"", record.value or b"", [*record.headers, *why])
