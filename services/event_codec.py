"""The hot paths of ingest and the scorer: strict msgspec decoders for the common case.

The contract is schemas/ (pydantic). This decoder accepts a subset of it: everything it
accepts, the contract accepts with the same meaning and the same Kafka record
(tests/unit/test_fastpath.py checks this on generated input). Whatever it refuses — an
error, an extension attribute, an unusual but valid timestamp — goes to the contract's
own validation, which also writes the precise error messages. So the fast path can only
make things faster, never change an answer.
"""

import functools
from datetime import datetime
from typing import Annotated, Literal

import msgspec

from schemas.v1.binding import CONTENT_TYPE
from schemas.v1.events import EVENT_ATTRIBUTES_MAX
from services.effectively_once.record import Record

# Python's `$` also matches before a final newline: \Z does not.
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^\S(?:.*\S)?\Z")]
Amount = Annotated[
    str, msgspec.Meta(pattern=r"^(?:[1-9][0-9]{0,14}(?:\.[0-9]{1,2})?|0\.(?:[1-9][0-9]?|0[1-9]))\Z")
]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}\Z")]
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]
Action = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
AttributeName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Channel = Literal["web", "email", "call", "meeting", "ticket", "chat", "event", "other"]


# gc=False: these hold only strings, numbers, datetimes and each other, never a cycle, so
# the collector need not track the thousands a batch creates.
class _Data(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    pass


# No floats in attributes: their JSON spelling differs between encoders (1e16 / 1e+16);
# events with float attributes are rare and take the contract's path.
# Integers beyond 64 bits too: the contract's JSON parser reads them as floats.
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
EventAttributes = Annotated[
    dict[AttributeName, str | bool | Int64], msgspec.Meta(max_length=EVENT_ATTRIBUTES_MAX)
]


class TransactionData(_Data, frozen=True):
    kind: Literal["purchase", "refund"]
    amount: Amount
    currency: Currency
    order_id: Identifier
    attributes: EventAttributes = {}


class InteractionData(_Data, frozen=True):
    channel: Channel
    action: Action
    actor: Identifier | None = None
    attributes: EventAttributes = {}


class CustomerData(_Data, frozen=True):
    name: Name
    owner_id: Identifier
    team: Identifier | None = None
    attributes: Annotated[dict[AttributeName, str | bool | Int64], msgspec.Meta(max_length=64)] = {}


class _Event(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type", gc=False):
    specversion: Literal["1.0"]
    id: Text
    source: Text
    subject: Identifier
    time: Timestamp


class TransactionEvent(_Event, frozen=True, tag="tierstream.transaction"):
    data: TransactionData


class InteractionEvent(_Event, frozen=True, tag="tierstream.interaction"):
    data: InteractionData


class CustomerEvent(_Event, frozen=True, tag="tierstream.customer"):
    data: CustomerData


FastEvent = TransactionEvent | InteractionEvent | CustomerEvent
_TYPE_HEADERS = {
    cls: ("ce_type", str(cls.__struct_config__.tag).encode())
    for cls in (TransactionEvent, InteractionEvent, CustomerEvent)
}
_SPECVERSION = ("ce_specversion", b"1.0")


@functools.cache
def _batch_decoder() -> msgspec.json.Decoder[list[FastEvent]]:
    return msgspec.json.Decoder(list[FastEvent])


@functools.cache
def _single_decoder() -> msgspec.json.Decoder[FastEvent]:
    return msgspec.json.Decoder(FastEvent)


@functools.cache
def _encoder() -> msgspec.json.Encoder:
    return msgspec.json.Encoder()


def decode_batch(body: bytes) -> list[FastEvent] | None:
    """The events, or None when the contract's validation has to decide."""
    try:
        return _batch_decoder().decode(body)
    except msgspec.DecodeError:
        return None


def decode_single(body: bytes) -> FastEvent | None:
    try:
        return _single_decoder().decode(body)
    except msgspec.DecodeError:
        return None


def encode(event: FastEvent) -> Record:
    """The same record `schemas.v1.binding.encode_event` makes of the contract's event."""
    subject = event.subject.encode()
    return Record(
        subject,
        _encoder().encode(event.data),
        [
            _SPECVERSION,
            ("ce_id", event.id.encode()),
            ("ce_source", event.source.encode()),
            _TYPE_HEADERS[type(event)],
            ("ce_subject", subject),
            ("ce_time", event.time.isoformat().encode()),
            CONTENT_TYPE,
        ],
    )


class Attributes(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """The `ce_*` headers of a binary-mode record, without extension attributes."""

    specversion: Literal["1.0"]
    id: Text
    source: Text
    type: Literal["tierstream.transaction", "tierstream.interaction", "tierstream.customer"]
    subject: Identifier
    time: Timestamp


_DATA: dict[str, type[_Data]] = {
    "tierstream.transaction": TransactionData,
    "tierstream.interaction": InteractionData,
    "tierstream.customer": CustomerData,
}


@functools.cache
def _attributes_decoder() -> msgspec.json.Decoder[Attributes]:
    return msgspec.json.Decoder(Attributes)


@functools.cache
def _data_decoder(kind: str) -> msgspec.json.Decoder[_Data]:
    return msgspec.json.Decoder(_DATA[kind])


def decode_record(
    headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...], value: bytes | None
) -> tuple[Attributes, TransactionData | InteractionData | CustomerData] | None:
    """A binary-mode record's attributes and data, or None when the contract's decoding
    (`schemas.v1.binding.decode_event`) has to decide. Attributes and data are decoded
    apart, each strictly, so a value can never smuggle in an attribute."""
    if value is None:
        return None
    attributes: dict[str, str] = {}
    try:
        for name, raw in headers:
            if name.startswith("ce_"):
                attributes[name[3:]] = raw.decode()
        found = _attributes_decoder().decode(_encoder().encode(attributes))
        data = _data_decoder(found.type).decode(value)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    assert isinstance(data, TransactionData | InteractionData | CustomerData)  # noqa: S101
    return found, data
