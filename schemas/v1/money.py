"""Money on the wire: a decimal string with at most two decimals, never a JSON number."""

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

# Greater than zero, at most two decimals, no leading zeros: "0.01" .. "999999999999999.99"
_AMOUNT = re.compile(r"^(?:[1-9][0-9]{0,14}(?:\.[0-9]{1,2})?|0\.(?:[1-9][0-9]?|0[1-9]))$")
_SIGNED_AMOUNT = re.compile(r"^-?(0|[1-9][0-9]{0,17})(\.[0-9]{1,2})?$")
AMOUNT_PATTERN = _AMOUNT.pattern
SIGNED_AMOUNT_PATTERN = _SIGNED_AMOUNT.pattern


def _positive_amount(value: Any) -> Decimal:
    if not isinstance(value, str):
        raise ValueError(  # noqa: TRY004 - pydantic turns ValueError into a field error
            'must be a decimal string such as "1299.00", not a JSON '
            + type(value).__name__.replace("str", "string")
        )
    if not _AMOUNT.match(value):
        if re.match(r"^[0-9]+\.[0-9]{3,}$", value):
            raise ValueError(f'"{value}" has more than 2 decimals')
        if re.match(r"^-?0*(\.0*)?$", value) or value.startswith("-"):
            raise ValueError("must be greater than 0")
        raise ValueError(f'"{value}" is not a decimal amount such as "1299.00"')
    return Decimal(value)


def _signed_amount(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if not isinstance(value, str) or not _SIGNED_AMOUNT.match(value):
        raise ValueError('must be a decimal string such as "-12.50"')
    return Decimal(value)


PositiveAmount = Annotated[
    Decimal,
    BeforeValidator(_positive_amount),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": AMOUNT_PATTERN,
            "description": "Decimal string, greater than 0, at most 2 decimals.",
            "examples": ["1299.00"],
        }
    ),
]
"""An order amount as posted by upstream systems (SPEC §2)."""

Money = Annotated[
    Decimal,
    BeforeValidator(_signed_amount),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": SIGNED_AMOUNT_PATTERN,
            "description": "Exact decimal string in the base currency (may be negative).",
            "examples": ["12999.00", "-20.00"],
        }
    ),
]
"""An aggregate of amounts (purchases minus refunds), exact, in the base currency."""
