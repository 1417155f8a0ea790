"""The ingest domain: which posted events are acceptable, and exactly what is wrong with the rest.

Pure: bytes in, checked events (with the Kafka record each becomes) or errors out; `now` is a
parameter. The strict fast path (services/event_codec.py) decides the common case; the
contract's own validation (schemas/, pydantic) decides everything else and writes the error
messages.
"""

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError

from schemas.v1.binding import Event, encode_event
from schemas.v1.events import EVENT_TYPES, CustomerEventV1, TransactionEvent, event_adapter
from services import event_codec as fastpath
from services.effectively_once.record import Record


@dataclass(frozen=True, slots=True)
class Checked:
    """A valid event: what the rules and the authorization look at, and its record."""

    source: str
    id: str
    time: datetime
    currency: str | None  # transactions only
    record: Record


@dataclass(frozen=True, slots=True)
class EventError:
    index: int | None  # position in the batch; None for a single event
    field: str  # dotted path inside the event, "" for the event as a whole
    message: str
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class Rules:
    base_currency: str
    rated_currencies: frozenset[str]
    max_future_skew: timedelta
    max_batch_events: int


@dataclass(frozen=True, slots=True)
class Verdict:
    events: tuple[Checked, ...]
    errors: tuple[EventError, ...]


class MalformedBody(ValueError):
    """The body is not JSON at all."""


class TooManyEvents(ValueError):
    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"the batch has {count} events; at most {limit} are accepted")


def validate_single(body: bytes, rules: Rules, now: datetime) -> Verdict:
    fast = fastpath.decode_single(body)
    if fast is not None:
        checked = _from_fast(fast)
    else:
        try:
            checked = _from_contract(event_adapter().validate_json(body))
        except ValidationError as error:
            _raise_if_not_json(error)
            return Verdict((), tuple(_field_errors(error, None, _loads(body))))
    return Verdict((checked,), tuple(_rule_errors([checked], [None], rules, now)))


def validate_batch(body: bytes, rules: Rules, now: datetime) -> Verdict:
    fast = fastpath.decode_batch(body)
    if fast is not None:
        checked = [_from_fast(event) for event in fast]
    else:
        try:
            checked = [_from_contract(event) for event in _batch_adapter().validate_json(body)]
        except ValidationError as error:
            _raise_if_not_json(error)
            return _validate_each(_loads(body), rules, now)
    if len(checked) > rules.max_batch_events:
        raise TooManyEvents(len(checked), rules.max_batch_events)
    return Verdict(tuple(checked), tuple(_rule_errors(checked, range(len(checked)), rules, now)))


def forbidden_sources(
    events: Sequence[Checked], may_write: Callable[[str], bool], batch: bool
) -> list[EventError]:
    allowed = {source: may_write(source) for source in {event.source for event in events}}
    return [
        EventError(
            index if batch else None,
            "source",
            f"this API key may not write source {event.source!r}",
            event.id,
        )
        for index, event in enumerate(events)
        if not allowed[event.source]
    ]


def _from_fast(event: fastpath.FastEvent) -> Checked:
    currency = event.data.currency if isinstance(event, fastpath.TransactionEvent) else None
    return Checked(event.source, event.id, event.time, currency, fastpath.encode(event))


def _from_contract(event: Event) -> Checked:
    currency = event.data.currency if isinstance(event, TransactionEvent) else None
    key, headers, value = encode_event(event)
    return Checked(event.source, event.id, event.time, currency, Record(key, value, headers))


@functools.cache
def _batch_adapter() -> TypeAdapter[list[Event]]:
    return TypeAdapter(list[CustomerEventV1])


def _validate_each(items: Any, rules: Rules, now: datetime) -> Verdict:
    """The slow path, taken only for a bad batch: every event checked on its own."""
    if not isinstance(items, list):
        return Verdict((), (EventError(None, "", "a batch must be a JSON array of events"),))
    if len(items) > rules.max_batch_events:
        raise TooManyEvents(len(items), rules.max_batch_events)
    valid: list[tuple[int, Checked]] = []
    errors: list[EventError] = []
    for index, item in enumerate(items):
        try:
            valid.append((index, _from_contract(event_adapter().validate_json(json.dumps(item)))))
        except ValidationError as error:
            errors.extend(_field_errors(error, index, item))
    errors.extend(_rule_errors([event for _, event in valid], [i for i, _ in valid], rules, now))
    errors.sort(key=lambda error: (error.index or 0, error.field))
    return Verdict(tuple(event for _, event in valid), tuple(errors))


def _rule_errors(
    events: Sequence[Checked], indexes: Sequence[int | None], rules: Rules, now: datetime
) -> list[EventError]:
    """What the contract says beyond the schema: currency, clock skew, conflicting duplicates."""
    errors = []
    seen: dict[tuple[str, str], int] = {}
    latest = now + rules.max_future_skew
    accepted = {rules.base_currency, *rules.rated_currencies}
    for position, (index, event) in enumerate(zip(indexes, events, strict=True)):
        if event.currency is not None and event.currency not in accepted:
            errors.append(
                EventError(
                    index,
                    "data.currency",
                    (
                        f"{event.currency} is not the base currency {rules.base_currency} and no "
                        "exchange rate is configured for it"
                    ),
                    event.id,
                )
            )
        if event.time > latest:
            errors.append(
                EventError(
                    index,
                    "time",
                    (
                        f"{event.time.isoformat()} is more than "
                        f"{rules.max_future_skew.total_seconds():g} s ahead of the ingest clock"
                    ),
                    event.id,
                )
            )
        first = seen.setdefault((event.source, event.id), position)
        if first != position and events[first].record != event.record:
            errors.append(
                EventError(
                    index,
                    "id",
                    (f"same source and id as event {indexes[first]} but a different content"),
                    event.id,
                )
            )
    return errors


def _field_errors(error: ValidationError, index: int | None, item: Any) -> list[EventError]:
    event_id = item.get("id") if isinstance(item, dict) else None
    event_id = event_id if isinstance(event_id, str) else None
    found = []
    for detail in error.errors(include_url=False, include_context=False, include_input=False):
        loc = [str(part) for part in detail["loc"]]
        if loc and loc[0] in EVENT_TYPES:
            loc = loc[1:]
        message = detail["msg"].removeprefix("Value error, ")
        if detail["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc, message = ["type"], _type_message(item)
        elif detail["type"] in ("dict_type", "model_type", "model_attributes_type") and not loc:
            message = "an event must be a JSON object"
        found.append(EventError(index, ".".join(loc), message, event_id))
    return found


def _type_message(item: Any) -> str:
    known = ", ".join(EVENT_TYPES)
    given = item.get("type") if isinstance(item, dict) else None
    if given is None:
        return f"is required: one of {known}"
    return f"unknown event type {given!r}: expected one of {known}"


def _raise_if_not_json(error: ValidationError) -> None:
    for detail in error.errors(include_url=False):
        if detail["type"] == "json_invalid":
            raise MalformedBody(f"the body is not valid JSON: {detail['msg']}")


def _loads(body: bytes) -> Any:
    """Only on the error path; the stdlib parser takes integers of any size, as pydantic does."""
    return json.loads(body)
