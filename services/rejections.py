"""A record the product rejects, as the dead-letter topic carries it (SPEC §5): the original
record unchanged, with why it could not be processed as `dlq_*` headers."""

from datetime import datetime
from typing import Protocol

from schemas.v1.deadletter import DeadLetterV1, Reason
from services.effectively_once.dead_letters import Consumed, dead_letter
from services.effectively_once.record import Record


class Located(Consumed, Protocol):
    """A consumed record and where it was read."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


def rejected(record: Located, reason: Reason, error: str, service: str, at: datetime) -> Record:
    why = DeadLetterV1(
        reason=reason,
        error=error[:2000],
        service=service,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        failed_at=at,
    )
    return dead_letter(record, why.to_headers())
