"""The ruleset file format (YAML): frozen pydantic models of what a file may say, and how a
validation error is named (the tier or feature by name or position, then the field).

Version 2 of the format (SPEC §10) adds `features`, `scores`, `stability` and a tier's
`stay_while`; a file without them means what it meant before.
"""

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Number = Decimal  # YAML numbers and strings alike, exactly (pydantic reads 0.3 as "0.3")


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ThresholdsSpec(_Spec):
    mode: Literal["fixed", "population"]
    recency_days: int = Field(ge=0)
    frequency: int = Field(ge=0)
    monetary: Decimal = Field(ge=0, decimal_places=2)


# the R/F/M thresholds of a ruleset that does not say (the default ruleset's)
DEFAULT_THRESHOLDS = ThresholdsSpec(
    mode="fixed", recency_days=90, frequency=3, monetary=Decimal("10000.00")
)


class LabelsSpec(_Spec):
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class TierSpec(_Spec):
    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")]
    labels: LabelsSpec
    rank: int
    high_value: bool
    condition: str | None = Field(default=None, min_length=1)
    stay_while: str | None = Field(default=None, min_length=1)


Aggregate = Literal["count", "sum", "avg", "min", "max", "days_active", "days_since"]
Of = Literal["purchase", "refund", "net", "interaction", "any"]


class FeatureSpec(_Spec):
    aggregate: Aggregate
    of: Of
    where: str | None = Field(default=None, min_length=1)
    window_days: int | None = Field(default=None, ge=1)


class BandSpec(_Spec):
    min: Number | None = None
    max: Number | None = None
    points: Number = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _one_bound(self) -> "BandSpec":
        if (self.min is None) == (self.max is None):
            raise ValueError("a band has exactly one of min (at least) and max (at most)")
        return self


class LinearSpec(_Spec):
    from_: Number = Field(alias="from")
    to: Number


class ComponentSpec(_Spec):
    feature: str = Field(min_length=1)
    weight: Number = Field(gt=0, le=1)
    bands: list[BandSpec] | None = Field(default=None, min_length=1)
    otherwise: Number = Field(default=Decimal(0), ge=0, le=100)
    linear: LinearSpec | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> "ComponentSpec":
        if (self.bands is None) == (self.linear is None):
            raise ValueError("a component has exactly one of bands and linear")
        return self


class ScoreSpec(_Spec):
    components: dict[Name, ComponentSpec] = Field(min_length=1)


class StabilitySpec(_Spec):
    min_days_in_tier: int = Field(default=0, ge=0)


class RulesetSpec(_Spec):
    version: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    thresholds: ThresholdsSpec = DEFAULT_THRESHOLDS
    features: dict[Name, FeatureSpec] = Field(default_factory=dict)
    scores: dict[Name, ScoreSpec] = Field(default_factory=dict)
    stability: StabilitySpec | None = None
    tiers: list[TierSpec] = Field(min_length=1)


def describe(error: Any, spec: Any = None) -> str:
    """A validation error as `where: field: problem`; a tier is named by its id when the
    file gives one (else by position), a feature or score by its name."""
    location = list(error["loc"])
    where = "ruleset"
    if len(location) >= 2 and location[0] == "tiers" and isinstance(location[1], int):
        where = f"tier #{location[1] + 1}"
        tiers = spec.get("tiers") if isinstance(spec, dict) else None
        if isinstance(tiers, list) and location[1] < len(tiers):
            tier = tiers[location[1]]
            if isinstance(tier, dict) and isinstance(tier.get("id"), str):
                where = f"tier {tier['id']!r}"
        location = location[2:]
    elif len(location) >= 2 and location[0] in ("features", "scores"):
        where = f"{location[0][:-1]} {location[1]!r}"
        location = location[2:]
    field = ".".join(str(part) for part in location)
    return f"{where}: {field or 'value'}: {error['msg']}"
