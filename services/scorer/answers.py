"""The scorer API's answers (SPEC §3): frozen models of what the read side returns, and the
OpenAPI document describes."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from schemas.v1 import tiers as contract


class _Answer(BaseModel):
    model_config = ConfigDict(frozen=True)


class Why(_Answer):
    ruleset_version: str
    matched_rule: str
    features: contract.Features
    levels: contract.Levels
    thresholds: contract.Thresholds


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
    outbox_pending: int  # tier changes and dead letters written, not yet on Kafka
