"""One benchmark figure, beside its baseline and target; a table of them."""

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


def table(figures: list[Figure]) -> str:
    header = [
        "| benchmark | figure | baseline | ratio | target |",
        "|---|---:|---|---:|---|",
    ]
    rows = [
        f"| {f.name} | {f.value:,.1f} {f.unit} | {f.baseline} | "
        f"{'' if f.ratio is None else f'{f.ratio:.0%}'} | {f.target} |"
        for f in figures
    ]
    return "\n".join(header + rows)
