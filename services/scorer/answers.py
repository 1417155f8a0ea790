"""The scorer API's answers (SPEC §3): frozen models of what the read side returns, and the
OpenAPI document describes."""

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.v1 import tiers as contract
from services.scorer.lifecycle_answers import ProgressAnswer


class _Answer(BaseModel):
    model_config = ConfigDict(frozen=True)


class Held(_Answer):
    """Stability kept the customer in their tier instead of `candidate` (SPEC §10)."""

    by: Literal["stay_while", "min_days_in_tier"]
    candidate: str = Field(description="The tier whose condition matched first.")
    until: date | None = Field(
        description="min_days_in_tier: the first day a move down may happen."
    )
    note: str = Field(description='"held by stay_while" or "held until 2026-12-08".')


class Why(_Answer):
    ruleset_version: str
    matched_rule: str
    features: contract.Features
    levels: contract.Levels
    thresholds: contract.Thresholds
    scores: dict[str, contract.Score] = Field(default_factory=dict)
    held: Held | None = None
    team: str | None = Field(None, description="The latest profile's team.")
    attributes: dict[str, Any] = Field(
        default_factory=dict, description="The latest profile's attributes."
    )


class CustomerAnswer(_Answer):
    customer_id: str
    tier: contract.Tier
    since: datetime
    change_id: str | None
    why: Why


class CustomerPage(_Answer):
    tier: str
    customers: list[dict[str, Any]]
    next_cursor: str | None


class PartitionStatus(_Answer):
    partition: int
    committed_offset: int | None
    end_offset: int | None
    lag: int | None
    last_event_time: datetime | None
    processed_at: datetime | None


class Status(_Answer):
    ruleset_version: str
    clock: Literal["wall", "event"]
    partitions: list[PartitionStatus]
    last_event_time: datetime | None
    outbox_pending: int  # records written, not yet on Kafka (2 per tier change, dead letters)
    retier: ProgressAnswer | None = Field(
        None, description="The active ruleset's re-tier: customers done of all, per partition."
    )
