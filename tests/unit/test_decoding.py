"""The scorer's two decoding paths give one answer: whatever the strict msgspec path accepts,
the contract's path accepts with an identical result (and canonical records take it)."""

import json
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.v1.binding import encode_event
from schemas.v1.events import event_adapter
from services import event_codec
from services.scorer.core.config import Scoring
from services.scorer.core.state import Windows
from services.scorer.decoding import Incoming, Poison, decode
from tests.events import customer, interaction, transaction
from tests.unit.test_fastpath import mutated_events

SCORING = Scoring(ZoneInfo("Asia/Shanghai"), Windows(), "CNY", {"USD": Decimal("7.1")})


def record(event: dict[str, Any]) -> tuple[bytes, list[tuple[str, bytes]], bytes | None]:
    """A binary-mode record as any producer might write it (not only ingest)."""
    headers = [
        (f"ce_{name}", (value if isinstance(value, str) else json.dumps(value)).encode())
        for name, value in event.items()
        if name != "data"
    ]
    value = json.dumps(event["data"]).encode() if "data" in event else None
    subject = event.get("subject")
    return (subject if isinstance(subject, str) else "x").encode(), headers, value


def both(key: bytes, headers: list[tuple[str, bytes]], value: bytes | None) -> tuple[Any, Any]:
    results: list[Incoming | str] = []
    for fast_path in (True, False):
        try:
            results.append(decode(key, headers, value, SCORING, fast_path=fast_path))
        except Poison as poison:
            results.append(poison.reason)
    return results[0], results[1]


@settings(max_examples=1000)
@given(event=mutated_events())
def test_the_fast_path_never_changes_an_answer(event: dict[str, Any]) -> None:
    key, headers, value = record(event)
    fast, contract = both(key, headers, value)
    if event_codec.decode_record(headers, value) is not None:
        assert isinstance(fast, Incoming)
        assert fast == contract


@pytest.mark.parametrize(
    "event",
    [
        transaction(amount="12.34"),
        transaction(kind="refund", time="2026-11-20T23:30:00-05:00"),
        interaction(),
        customer(),
    ],
)
def test_canonical_records_take_the_fast_path_with_the_same_result(event: dict[str, Any]) -> None:
    key, headers, value = encode_event(event_adapter().validate_python(event))
    assert event_codec.decode_record(headers, value) is not None
    fast, contract = both(key, headers, value)
    assert isinstance(fast, Incoming)
    assert fast == contract


def test_a_foreign_currency_is_converted_and_an_unknown_one_is_poison() -> None:
    usd = transaction(amount="10.00")
    usd["data"]["currency"] = "USD"
    key, headers, value = encode_event(event_adapter().validate_python(usd))
    assert both(key, headers, value)[0].fact.amount == 7100
    usd["data"]["currency"] = "EUR"
    key, headers, value = encode_event(event_adapter().validate_python(usd))
    assert both(key, headers, value) == ("unknown_currency", "unknown_currency")


@given(junk=st.binary(max_size=40))
def test_junk_values_are_poison_on_both_paths(junk: bytes) -> None:
    key, headers, _ = encode_event(event_adapter().validate_python(interaction()))
    fast, contract = both(key, headers, junk)
    assert fast == contract
