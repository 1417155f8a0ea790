"""A tier change as the contract's pydantic models build it, for the tests to compare the
scorer's fast serialization with."""

from decimal import Decimal
from zoneinfo import ZoneInfo

from schemas.v1 import tiers as contract
from services.scorer.core.scoring import (
    Change,
    EventCause,
    direction,
    tier_contract,
    to_features,
    to_scores,
)


def to_contract(change: Change, zone: ZoneInfo) -> contract.TierChangedV1:
    """The `tierstream.tier.changed` payload (SPEC §5) built with the contract's own models
    (without validation; tests/unit/test_scoring.py validates it on generated histories): the
    oracle that the publisher's direct serialization (`publisher.change_json`) is held to."""
    before = change.before
    cause: contract.EventCause | contract.ClockCause = (
        contract.EventCause.model_construct(
            kind="event", event_id=change.cause.id, event_source=change.cause.source
        )
        if isinstance(change.cause, EventCause)
        else contract.ClockCause.model_construct(kind="clock", reason=change.cause)
    )
    return contract.TierChangedV1.model_construct(
        change_id=change.change_id,
        customer_id=change.customer_id,
        from_tier=None if before is None else tier_contract(before.tier),
        to_tier=tier_contract(change.after.tier),
        direction=direction(before, change.after),
        changed_at=change.after.since,
        previous_tier_seconds=None
        if before is None
        else int((change.after.since - before.since).total_seconds()),
        features=to_features(change.features, zone, change.aggregates),
        levels=contract.Levels.model_construct(
            recency=change.levels.recency,
            frequency=change.levels.frequency,
            monetary=change.levels.monetary,
            segment=change.levels.segment,
        ),
        thresholds=contract.Thresholds.model_construct(
            mode=change.threshold_mode,
            recency_days=Decimal(change.thresholds.recency_days),
            frequency=Decimal(change.thresholds.frequency),
            monetary=Decimal(change.thresholds.monetary) / 100,
        ),
        ruleset_version=change.after.ruleset_version,
        matched_rule=change.after.tier.id,
        cause=cause,
        scores=to_scores(change.scores),
    )
