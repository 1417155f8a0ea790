"""The core's configuration: what scoring needs to know about the business, built from
settings by the scorer's main and passed in (the core reads no settings itself)."""

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from services.scorer.core.state import Windows


@dataclass(frozen=True, slots=True)
class Scoring:
    """The business time zone (days are its local dates), the windows, and money: the base
    currency and the rates that convert others to it."""

    zone: ZoneInfo
    windows: Windows
    base_currency: str
    rates: Mapping[str, Decimal]
