"""From a contract event to an RFM `Fact`: its local calendar day and its money, exactly.

Pure. Days are local dates in the business time zone (SPEC §4), as ordinals. Money becomes
integer minor units of the base currency; a foreign amount is converted with the configured
rate and rounded half-to-even to the cent, once, here.
"""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

from schemas.v1.binding import Event
from schemas.v1.events import CustomerEvent, InteractionEvent, TransactionEvent
from services.scorer.core.state import NO_ATTRIBUTES, Fact, Profile

CENT = Decimal("0.01")


class UnknownCurrency(ValueError):
    """A currency that is neither the base currency nor has a rate."""


def local_day(moment: datetime, zone: ZoneInfo) -> int:
    return moment.astimezone(zone).date().toordinal()


def minor_units(amount: Decimal, currency: str, base: str, rates: Mapping[str, Decimal]) -> int:
    if currency != base:
        rate = rates.get(currency)
        if rate is None:
            raise UnknownCurrency(f"{currency} is not {base} and has no exchange rate")
        amount = amount * rate
    return int(amount.quantize(CENT, rounding=ROUND_HALF_EVEN) * 100)


def fact_of(event: Event, zone: ZoneInfo, base: str, rates: Mapping[str, Decimal]) -> Fact:
    day = local_day(event.time, zone)
    if isinstance(event, TransactionEvent):
        data = event.data
        money = minor_units(data.amount, data.currency, base, rates)
        return Fact(day, data.kind, money, attributes=data.attributes or NO_ATTRIBUTES)
    if isinstance(event, InteractionEvent):
        i = event.data
        return Fact(
            day, "interaction", 0, i.channel, i.action, i.actor, i.attributes or NO_ATTRIBUTES
        )
    assert isinstance(event, CustomerEvent)  # noqa: S101 - the union has three members
    order = ((event.time - _EPOCH) // _MICROSECOND, event.source, event.id)
    profile = Profile(order, event.data.team, event.data.attributes or NO_ATTRIBUTES)
    return Fact(day, "profile", profile=profile)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
