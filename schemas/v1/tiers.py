"""Tier changes and latest tiers (SPEC §5): `tierstream.tier.changed` and the compacted record."""

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from schemas.v1.money import Money

TIER_CHANGED: Final = "tierstream.tier.changed"
CUSTOMER_TIER: Final = "tierstream.customer.tier"

Level = Literal["high", "low"]
Direction = Literal["up", "down", "lateral", "initial"]
TierId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")]
Aggregate = Literal["count", "sum", "avg", "min", "max", "days_active", "days_since"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TierLabels(_Frozen):
    zh: str
    en: str


class Tier(_Frozen):
    """A tier of the active ruleset, as subscribers need it without reading the ruleset."""

    id: TierId
    labels: TierLabels
    rank: int = Field(description="Higher rank is a better tier; compares tiers for `direction`.")
    high_value: bool


class DeclaredFeature(_Frozen):
    """A feature the ruleset declares (SPEC §10), at `as_of`."""

    aggregate: Aggregate
    value: int | Money | None = Field(
        description="sum, avg, min, max: an amount (a decimal string; avg rounded to the "
        "cent); count, days_active, days_since: an integer; null: avg, min, max or "
        "days_since with no matching event."
    )
    counts_since: date | None = Field(
        None,
        description="Set when the value counts only the events from this local date on (the "
        "ruleset declared the feature after the customer's history began, and its window "
        "reaches before this date); null when the value is exact.",
    )


class Features(_Frozen):
    """The features of SPEC §4 at the instant `as_of`, in the business time zone, and the
    active ruleset's declared features (SPEC §10; empty when it declares none)."""

    as_of: AwareDatetime
    recency_days: int | None = Field(ge=0, description="null: never purchased")
    frequency: int = Field(ge=0)
    monetary: Money
    frequency_90d: int = Field(ge=0)
    monetary_90d: Money
    interactions_30d: int = Field(ge=0)
    tenure_days: int = Field(ge=0)
    declared: dict[str, DeclaredFeature] = Field(default_factory=dict)


class ScoreComponent(_Frozen):
    """One component of a score: the feature's value, the points it gave (0..100), the
    component's weight and its contribution to the score (weight x points)."""

    feature: str
    value: Decimal | None = Field(description="Amounts in the base currency; null: no value.")
    points: Decimal
    weight: Decimal
    contribution: Decimal


class Score(_Frozen):
    """A weighted score of the ruleset (SPEC §10): the sum of its components' contributions."""

    value: Decimal = Field(description="0..100")
    components: dict[str, ScoreComponent]


class Thresholds(_Frozen):
    """What each of R, F, M was compared to; `mode` says where the numbers came from."""

    mode: Literal["fixed", "population"]
    recency_days: Decimal = Field(description="R is high when recency_days <= this.")
    frequency: Decimal = Field(description="F is high when frequency >= this.")
    monetary: Money = Field(description="M is high when monetary >= this.")


class Levels(_Frozen):
    recency: Level
    frequency: Level
    monetary: Level
    segment: str = Field(description="The RFM segment id, e.g. important_value.")


class EventCause(_Frozen):
    kind: Literal["event"]
    event_id: str
    event_source: str


class ClockCause(_Frozen):
    kind: Literal["clock"]
    reason: Literal["time_passed", "ruleset_activated", "thresholds_refreshed"]


class TierChangedV1(_Frozen):
    """Payload of `tierstream.tier.changed`; keyed by customer id, consumers dedupe by change_id."""

    change_id: str = Field(description="Stable id: the same change always has the same id.")
    customer_id: str
    from_tier: Tier | None = Field(description="null when direction is initial")
    to_tier: Tier
    direction: Direction
    changed_at: AwareDatetime = Field(description="The instant the new tier took effect.")
    previous_tier_seconds: int | None = Field(
        ge=0, description="How long the customer was in from_tier; null when initial."
    )
    features: Features
    levels: Levels
    thresholds: Thresholds
    ruleset_version: str
    matched_rule: str = Field(description="Id of the tier whose condition matched (first match).")
    cause: EventCause | ClockCause = Field(discriminator="kind")
    scores: dict[str, Score] = Field(
        default_factory=dict,
        description="The ruleset's scores with every component (SPEC §10); empty when it "
        "declares none.",
    )


class CustomerTierV1(_Frozen):
    """Latest tier of one customer, on the compacted topic (key = customer id)."""

    customer_id: str
    tier: Tier
    since: datetime
    ruleset_version: str
    change_id: str = Field(description="The change that put the customer in this tier.")
