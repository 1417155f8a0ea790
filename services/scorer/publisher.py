"""What the scorer publishes: tier changes and latest tiers (from the tier history,
services/scorer/history_relay.py) and dead letters (through the outbox), as CloudEvents
Kafka binary-mode records (SPEC §5), keyed by customer id."""

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import orjson

from schemas.v1 import tiers as contract
from schemas.v1.binding import CONTENT_TYPE
from services.effectively_once.record import Record
from services.scorer.core.rules import Tier
from services.scorer.core.scoring import (
    Change,
    EventCause,
    day_start,
    declared_value,
    direction,
)

SOURCE = "tierstream/scorer"
_SOURCE = SOURCE.encode()


def change_records(change: Change, zone: ZoneInfo) -> tuple[Record, Record]:
    """The `tierstream.tier.changed` record and the customer's latest-tier record; both carry
    the change id as their CloudEvents id, so consumers dedupe redeliveries by it."""
    key = change.customer_id.encode()
    since = change.after.since
    changed = Record(
        key,
        change_json(change, zone),
        _headers(contract.TIER_CHANGED, change.change_id, change.customer_id, since),
    )
    latest = {
        "customer_id": change.customer_id,
        "tier": _tier(change.after.tier),
        "since": since,
        "ruleset_version": change.after.ruleset_version,
        "change_id": change.change_id,
    }
    return changed, Record(
        key,
        orjson.dumps(latest, option=orjson.OPT_UTC_Z),
        _headers(contract.CUSTOMER_TIER, change.change_id, change.customer_id, since),
    )


def history_records(customer_id: str, change_id: str, payload: bytes) -> tuple[Record, Record]:
    """`change_records` again from the change's history row (its published payload), byte
    for byte: a relay that publishes after a restart has the history, not the change."""
    found = orjson.loads(payload)
    changed_at = found["changed_at"]
    since = datetime.fromisoformat(changed_at)
    key = customer_id.encode()
    latest = {
        "customer_id": customer_id,
        "tier": found["to_tier"],
        "since": changed_at,
        "ruleset_version": found["ruleset_version"],
        "change_id": change_id,
    }
    return Record(
        key, payload, _headers(contract.TIER_CHANGED, change_id, customer_id, since)
    ), Record(
        key,
        orjson.dumps(latest),
        _headers(contract.CUSTOMER_TIER, change_id, customer_id, since),
    )


def change_json(change: Change, zone: ZoneInfo) -> bytes:
    """The contract's `tierstream.tier.changed` payload, serialized byte for byte as the
    pydantic models would (tests/contract_oracle.py builds them), without building them:
    this runs for every change; tests/unit/test_publisher.py holds the two equal."""
    before, after, found = change.before, change.after, change.features
    t = change.thresholds
    cause = change.cause
    payload = {
        "change_id": change.change_id,
        "customer_id": change.customer_id,
        "from_tier": None if before is None else _tier(before.tier),
        "to_tier": _tier(after.tier),
        "direction": direction(before, after),
        "changed_at": after.since,
        "previous_tier_seconds": None
        if before is None
        else int((after.since - before.since).total_seconds()),
        "features": {
            "as_of": day_start(found.day, zone),
            "recency_days": found.recency_days,
            "frequency": found.frequency,
            "monetary": _money(found.monetary),
            "frequency_90d": found.frequency_90d,
            "monetary_90d": _money(found.monetary_90d),
            "interactions_30d": found.interactions_30d,
            "tenure_days": found.tenure_days,
            "declared": _declared(change) if found.declared else {},
        },
        "levels": {
            "recency": change.levels.recency,
            "frequency": change.levels.frequency,
            "monetary": change.levels.monetary,
            "segment": change.levels.segment,
        },
        "thresholds": {
            "mode": change.threshold_mode,
            "recency_days": str(t.recency_days),
            "frequency": str(t.frequency),
            "monetary": _money(t.monetary),
        },
        "ruleset_version": after.ruleset_version,
        "matched_rule": after.tier.id,
        "cause": {"kind": "event", "event_id": cause.id, "event_source": cause.source}
        if isinstance(cause, EventCause)
        else {"kind": "clock", "reason": cause},
        "scores": {}
        if not change.scores
        else {
            s.name: {
                "value": str(s.value),
                "components": {
                    p.name: {
                        "feature": p.feature,
                        "value": None if p.value is None else str(p.value),
                        "points": str(p.points),
                        "weight": str(p.weight),
                        "contribution": str(p.contribution),
                    }
                    for p in s.parts
                },
            }
            for s in change.scores
        },
    }
    return orjson.dumps(payload, option=orjson.OPT_UTC_Z)


def _declared(change: Change) -> dict[str, object]:
    found, aggregates = change.features, change.aggregates
    result: dict[str, object] = {}
    for name, raw in found.declared.items():
        aggregate = aggregates[name]
        value = declared_value(raw, aggregate)
        since = found.partial.get(name)
        result[name] = {
            "aggregate": aggregate,
            "value": str(value) if isinstance(value, Decimal) else value,
            "counts_since": None if since is None else date.fromordinal(since).isoformat(),
        }
    return result


def _tier(tier: Tier) -> dict[str, object]:
    return {
        "id": tier.id,
        "labels": {"zh": tier.label_zh, "en": tier.label_en},
        "rank": tier.rank,
        "high_value": tier.high_value,
    }


def _money(minor: int) -> str:
    return str(Decimal(minor) / 100)


def _headers(kind: str, event_id: str, subject: str, time: datetime) -> list[tuple[str, bytes]]:
    """What `schemas.v1.binding.attribute_headers` gives for these attributes."""
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", event_id.encode()),
        ("ce_source", _SOURCE),
        ("ce_type", kind.encode()),
        ("ce_subject", subject.encode()),
        ("ce_time", time.isoformat().encode()),
        CONTENT_TYPE,
    ]
