"""From a consumed record to what the scorer applies, or the reason it is poison.

Two paths, one answer: the strict msgspec decoder (services/event_codec.py) takes the
common case; anything it does not accept goes through the contract's own decoding
(`schemas.v1.binding.decode_event`), which decides and explains. tests/unit/test_decoding.py
checks on generated records that both paths give identical results.
"""

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from schemas.v1.binding import Event, UndecodableRecord, decode_event
from schemas.v1.deadletter import Reason
from schemas.v1.events import EVENT_TYPES, TransactionEvent
from services import event_codec
from services.scorer.core.config import Scoring
from services.scorer.core.facts import UnknownCurrency, local_day, minor_units
from services.scorer.core.state import NO_ATTRIBUTES, Attribute, Fact, Profile

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Incoming:
    source: str
    id: str
    subject: str
    time: datetime
    fact: Fact
    digest: bytes  # of the content: the same (source, id) with another digest is a conflict


class Poison(ValueError):
    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason


def decode(
    key: bytes | None,
    headers: Sequence[tuple[str, bytes]],
    value: bytes | None,
    scoring: Scoring,
    *,
    fast_path: bool = True,
) -> Incoming:
    headers = list(headers)
    fast = event_codec.decode_record(headers, value) if fast_path else None
    data: Any
    if fast is not None:
        attributes, data = fast
        kind, subject, time = attributes.type, attributes.subject, attributes.time
        source, event_id = attributes.source, attributes.id
        amount = (
            (data.kind, Decimal(data.amount), data.currency)
            if isinstance(data, event_codec.TransactionData)
            else None
        )
    else:
        event = _contract_event(headers, value)
        kind, subject, time = event.type, event.subject, event.time
        source, event_id, data = event.source, event.id, event.data
        amount = (
            (event.data.kind, event.data.amount, event.data.currency)
            if isinstance(event, TransactionEvent)
            else None
        )
    if key != subject.encode():
        raise Poison("invalid_event", f"the record key {key!r} is not the subject {subject!r}")
    day = local_day(time, scoring.zone)
    given: Mapping[str, Attribute] = data.attributes or NO_ATTRIBUTES
    if amount is not None:
        try:
            money = minor_units(amount[1], amount[2], scoring.base_currency, scoring.rates)
        except UnknownCurrency as error:
            raise Poison("unknown_currency", str(error)) from error
        # positional: this runs for every event
        fact = Fact(day, amount[0], money, None, None, None, given)
    elif kind == "tierstream.interaction":
        fact = Fact(day, "interaction", 0, data.channel, data.action, data.actor, given)
    else:
        order = ((time - EPOCH) // MICROSECOND, source, event_id)
        fact = Fact(day, "profile", profile=Profile(order, data.team, given))
    digest = hashlib.sha256(
        f"{kind}|{subject}|{time.isoformat()}|".encode() + (value or b"")
    ).digest()
    return Incoming(source, event_id, subject, time, fact, digest)


def _contract_event(headers: list[tuple[str, bytes]], value: bytes | None) -> Event:
    kind = next((v for n, v in headers if n == "ce_type"), None)
    if kind is not None and kind.decode(errors="replace") not in EVENT_TYPES:
        raise Poison(
            "unsupported_type",
            f"type {kind.decode(errors='replace')!r} is not one of {EVENT_TYPES}",
        )
    try:
        return decode_event(headers, value)
    except UndecodableRecord as error:
        raise Poison("undecodable", str(error)) from error
    except ValidationError as error:
        raise Poison("invalid_event", _describe(error)) from error


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}"
        for e in error.errors(include_url=False)
    )
