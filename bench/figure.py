"""One benchmark figure, beside its baseline and target."""

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    baseline: str = ""
    ratio: float | None = None
    target: str = ""
    notes: dict[str, Any] = field(default_factory=dict)
