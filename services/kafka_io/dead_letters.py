"""Dead letters (SPEC §5): the original record unchanged, with why it could not be processed
added as `dlq_*` headers; the consumer puts it in its outbox and the partition moves on."""

from datetime import datetime

from aiokafka import ConsumerRecord

from schemas.v1.deadletter import DeadLetterV1, Reason
from services.kafka_io.record import Record


def dead_letter(
    record: ConsumerRecord[bytes, bytes], reason: Reason, error: str, service: str, at: datetime
) -> Record:
    why = DeadLetterV1(
        reason=reason,
        error=error[:2000],
        service=service,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        failed_at=at,
    )
    return Record(record.key or b"", record.value or b"", [*record.headers, *why.to_headers()])
