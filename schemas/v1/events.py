"""Incoming customer events (SPEC §2): CloudEvents 1.0, JSON, one model per `type`."""

import functools
import re
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    TypeAdapter,
    model_validator,
)

from schemas.v1.money import PositiveAmount

TRANSACTION: Final = "tierstream.transaction"
INTERACTION: Final = "tierstream.interaction"
CUSTOMER: Final = "tierstream.customer"
EVENT_TYPES: Final = (TRANSACTION, INTERACTION, CUSTOMER)

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})\Z")
_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")


def _rfc3339(value: Any) -> Any:
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError(
            "must be an RFC 3339 timestamp with a UTC offset, e.g. 2026-11-20T10:00:00+08:00"
        )
    return value


def _no_edge_whitespace(value: str) -> str:
    if value != value.strip():
        raise ValueError("must not start or end with whitespace")
    return value


Text = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128), AfterValidator(_no_edge_whitespace)
]
Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339),
    Field(json_schema_extra={"format": "date-time", "examples": ["2026-11-20T10:00:00+08:00"]}),
]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
AttributeName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


def _scalar(value: Any) -> Any:
    if isinstance(value, dict | list) or value is None:
        raise ValueError("must be a string, a number or a bool")
    return value


# integers as JSON parsers and msgpack hold them exactly: 64 bits
Int64 = Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)]
AttributeValue = Annotated[StrictStr | StrictBool | Int64 | StrictFloat, BeforeValidator(_scalar)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


EVENT_ATTRIBUTES_MAX = 20


def _event_attributes() -> Any:
    return Field(
        default_factory=dict,
        max_length=EVENT_ATTRIBUTES_MAX,
        description="Optional facts about this event (product line, category, region of the "
        "order, ticket severity...), usable in declared features' `where` (SPEC §10).",
    )


class TransactionData(_Frozen):
    kind: Literal["purchase", "refund"]
    amount: PositiveAmount
    currency: Currency = Field(
        description="ISO 4217 code; the base currency, or one with a configured rate."
    )
    order_id: Identifier
    attributes: dict[AttributeName, AttributeValue] = _event_attributes()


class InteractionData(_Frozen):
    channel: Literal["web", "email", "call", "meeting", "ticket", "chat", "event", "other"]
    action: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    actor: Identifier | None = Field(
        None,
        description="The person in the directory who had the interaction (e.g. the owner "
        "who called).",
    )
    attributes: dict[AttributeName, AttributeValue] = _event_attributes()


class CustomerData(_Frozen):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    owner_id: Identifier = Field(description="The account owner's person id in the directory.")
    team: Identifier | None = None
    attributes: dict[AttributeName, AttributeValue] = Field(default_factory=dict, max_length=64)


class _Envelope(BaseModel):
    """The CloudEvents 1.0 attributes tierstream requires, plus extension attributes."""

    model_config = ConfigDict(frozen=True, extra="allow")

    specversion: Literal["1.0"]
    id: Text
    source: Text
    subject: Identifier = Field(description="The customer id.")
    time: Timestamp
    datacontenttype: Literal["application/json"] | None = None
    dataschema: Text | None = None

    @model_validator(mode="after")
    def _extensions_are_cloudevents_attributes(self) -> "_Envelope":
        for name, value in (self.model_extra or {}).items():
            if not _EXTENSION_NAME.match(name):
                raise ValueError(
                    f"unknown attribute {name!r}: extension attribute names are 1-20 "
                    "lowercase letters or digits"
                )
            if not isinstance(value, str | int | bool) or isinstance(value, float):
                raise ValueError(  # noqa: TRY004 - pydantic reports ValueError as a field error
                    f"extension attribute {name!r} must be a string, integer or bool"
                )
        return self

    @property
    def extensions(self) -> dict[str, str | int | bool]:
        return dict(self.model_extra or {})


class TransactionEvent(_Envelope):
    type: Literal["tierstream.transaction"]
    data: TransactionData


class InteractionEvent(_Envelope):
    type: Literal["tierstream.interaction"]
    data: InteractionData


class CustomerEvent(_Envelope):
    type: Literal["tierstream.customer"]
    data: CustomerData


CustomerEventV1 = Annotated[
    TransactionEvent | InteractionEvent | CustomerEvent, Discriminator("type")
]
"""Any incoming event, told apart by its CloudEvents `type`."""


@functools.cache
def event_adapter() -> TypeAdapter[TransactionEvent | InteractionEvent | CustomerEvent]:
    return TypeAdapter(CustomerEventV1)
