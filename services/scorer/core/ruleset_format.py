"""The ruleset file format (YAML): frozen pydantic models of what a file may say, and how a
validation error is named (the tier by position, then the field)."""

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ThresholdsSpec(_Spec):
    mode: Literal["fixed", "population"]
    recency_days: int = Field(ge=0)
    frequency: int = Field(ge=0)
    monetary: Decimal = Field(ge=0, decimal_places=2)


class LabelsSpec(_Spec):
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class TierSpec(_Spec):
    id: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    labels: LabelsSpec
    rank: int
    high_value: bool
    condition: str = Field(min_length=1)


class RulesetSpec(_Spec):
    version: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    thresholds: ThresholdsSpec
    tiers: list[TierSpec] = Field(min_length=1)


def describe(error: Any) -> str:
    location = list(error["loc"])
    where = "ruleset"
    if len(location) >= 2 and location[0] == "tiers" and isinstance(location[1], int):
        where = f"tier #{location[1] + 1}"
        location = location[2:]
    field = ".".join(str(part) for part in location)
    return f"{where}: {field or 'value'}: {error['msg']}"
