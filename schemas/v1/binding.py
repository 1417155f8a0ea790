"""CloudEvents Kafka protocol binding, binary content mode (SPEC §5).

Attributes travel as `ce_<name>` headers, the data as the JSON record value, and the
key is the CloudEvents `subject` (the customer id), so a customer's events stay in order.
"""

from collections.abc import Mapping, Sequence
from typing import Final

import orjson

from schemas.v1.events import (
    CustomerEvent,
    InteractionEvent,
    TransactionEvent,
    event_adapter,
)

Event = TransactionEvent | InteractionEvent | CustomerEvent
Headers = list[tuple[str, bytes]]

CONTENT_TYPE: Final = ("content-type", b"application/json")
_PREFIX: Final = "ce_"


class UndecodableRecord(ValueError):
    """A record that is not a CloudEvent in binary mode (or not JSON)."""


def attribute_headers(attributes: Mapping[str, str | int | bool]) -> Headers:
    headers = [(_PREFIX + name, _text(value).encode()) for name, value in attributes.items()]
    headers.append(CONTENT_TYPE)
    return headers


def encode_event(event: Event) -> tuple[bytes, Headers, bytes]:
    """(key, headers, value) of an incoming event on `tierstream.customer-events.v1`."""
    attributes: dict[str, str | int | bool] = {
        "specversion": event.specversion,
        "id": event.id,
        "source": event.source,
        "type": event.type,
        "subject": event.subject,
        "time": event.time.isoformat(),
    }
    if event.dataschema is not None:
        attributes["dataschema"] = event.dataschema
    attributes.update(event.extensions)
    value = event.data.__pydantic_serializer__.to_json(event.data, exclude_defaults=True)
    return event.subject.encode(), attribute_headers(attributes), value


def decode_event(headers: Sequence[tuple[str, bytes]], value: bytes | None) -> Event:
    """The event a binary-mode record carries; raises `UndecodableRecord`, or pydantic's
    `ValidationError` when it decodes but breaks the contract."""
    attributes: dict[str, object] = {}
    for name, raw in headers:
        if name.startswith(_PREFIX):
            try:
                attributes[name[len(_PREFIX) :]] = raw.decode()
            except UnicodeDecodeError as error:
                raise UndecodableRecord(f"header {name} is not UTF-8") from error
    if "specversion" not in attributes:
        raise UndecodableRecord("no ce_specversion header: not a binary-mode CloudEvent")
    if value is None:
        raise UndecodableRecord("the record has no value (tombstone)")
    try:
        attributes["data"] = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise UndecodableRecord(f"the value is not JSON: {error}") from error
    return event_adapter().validate_python(attributes)


def _text(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
