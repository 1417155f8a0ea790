"""What the scorer puts in the outbox: tier changes, latest tiers and dead letters, as
CloudEvents Kafka binary-mode records (SPEC §5), keyed by customer id."""

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from schemas.v1 import tiers as contract
from schemas.v1.binding import attribute_headers
from schemas.v1.deadletter import DeadLetterV1
from services.kafka_io.record import Record
from services.scorer.scoring import Change, to_contract

SOURCE = "tierstream/scorer"


def change_records(change: Change, zone: ZoneInfo) -> tuple[Record, Record]:
    """The `tierstream.tier.changed` record and the customer's latest-tier record; both carry
    the change id as their CloudEvents id, so consumers dedupe redeliveries by it."""
    payload = to_contract(change, zone)
    key = change.customer_id.encode()
    changed = Record(
        key,
        payload.__pydantic_serializer__.to_json(payload),
        _headers(contract.TIER_CHANGED, change.change_id, change.customer_id, payload.changed_at),
    )
    latest = contract.CustomerTierV1(
        customer_id=change.customer_id,
        tier=payload.to_tier,
        since=payload.changed_at,
        ruleset_version=payload.ruleset_version,
        change_id=change.change_id,
    )
    return changed, Record(
        key,
        latest.__pydantic_serializer__.to_json(latest),
        _headers(contract.CUSTOMER_TIER, change.change_id, change.customer_id, latest.since),
    )


def dead_letter(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]], why: DeadLetterV1
) -> Record:
    """The original record unchanged, with the reason added as `dlq_*` headers."""
    return Record(key or b"", value or b"", [*headers, *why.to_headers()])


def _headers(kind: str, event_id: str, subject: str, time: datetime) -> list[tuple[str, bytes]]:
    return attribute_headers(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": SOURCE,
            "type": kind,
            "subject": subject,
            "time": time.isoformat(),
        }
    )
