"""Events become facts on their local calendar day, with exact money."""

from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from schemas.v1.events import event_adapter
from services.scorer.core.facts import UnknownCurrency, fact_of, minor_units
from services.scorer.core.state import Fact
from tests.events import changed, customer, interaction, transaction

SHANGHAI, UTC = ZoneInfo("Asia/Shanghai"), ZoneInfo("UTC")
RATES = {"USD": Decimal("7.1234")}


def fact(raw: dict[str, object], zone: ZoneInfo = UTC) -> Fact:
    return fact_of(event_adapter().validate_python(raw), zone, "CNY", RATES)


def test_the_day_is_the_local_date_in_the_business_time_zone() -> None:
    late_evening_utc = transaction(time="2026-11-20T17:30:00Z")  # 01:30 on the 21st in Shanghai
    assert fact(late_evening_utc, UTC).day == date(2026, 11, 20).toordinal()
    assert fact(late_evening_utc, SHANGHAI).day == date(2026, 11, 21).toordinal()


def test_money_is_exact_minor_units() -> None:
    assert fact(transaction(amount="1299.99")) == Fact(
        date(2026, 11, 20).toordinal(), "purchase", 129_999
    )
    assert fact(transaction(amount="0.01", kind="refund")).amount == 1


def test_foreign_money_is_converted_once_and_rounded_half_even() -> None:
    assert minor_units(Decimal("10.00"), "USD", "CNY", RATES) == 7123  # 71.234 -> 71.23
    assert minor_units(Decimal("0.05"), "USD", "CNY", {"USD": Decimal("0.5")}) == 2  # .025 -> .02
    assert minor_units(Decimal("0.07"), "USD", "CNY", {"USD": Decimal("0.5")}) == 4  # .035 -> .04


def test_a_currency_without_a_rate_is_refused() -> None:
    with pytest.raises(UnknownCurrency, match="EUR"):
        fact(changed(transaction(), "data.currency", "EUR"))


def test_interactions_and_profiles_carry_no_money() -> None:
    assert fact(interaction()).kind == "interaction"
    assert fact(interaction()).amount == fact(customer()).amount == 0
    assert fact(customer()).kind == "profile"


def test_facts_carry_what_declared_features_and_conditions_read() -> None:
    """SPEC §10: `where` reads channel, action, actor and attributes; conditions read the
    latest profile's team and attributes (the latest by event time, then source and id)."""
    sale = fact(changed(transaction(), "data.attributes", {"line": "software", "seats": 12}))
    assert sale.attributes == {"line": "software", "seats": 12}
    talk = fact(changed(interaction(), "data.actor", "owner-7"))
    assert (talk.channel, talk.actor) == (interaction()["data"]["channel"], "owner-7")
    assert talk.action == interaction()["data"]["action"]
    person = customer()
    profile = fact(person).profile
    assert profile is not None
    assert profile.team == "east"
    assert profile.attributes == {"industry": "manufacturing", "size": 1200, "key_account": True}
    assert profile.order == (1793494800000000, "crm/main", person["id"])
    later = fact(changed(person, "time", "2026-11-01T01:00:00.000001Z")).profile
    assert later is not None
    assert later.order > profile.order
    assert fact(person) == Fact(date(2026, 11, 1).toordinal(), "profile", profile=profile)
