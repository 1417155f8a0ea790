"""Weighted scores (SPEC §10): components turn a feature into 0..100 points by bands or a
linear ramp; a score is the weighted sum of its components' points, 0..100.

Pure and exact: feature values, band limits, weights and points are Decimals (money in the
base currency); a component's points and its contribution (weight x points) are rounded
half to even to the hundredth, and the contributions add up exactly to the score the why
shows.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from itertools import pairwise

from services.scorer.core.ruleset_format import ComponentSpec, ScoreSpec

HUNDRED = Decimal(100)
HUNDREDTH = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Band:
    least: Decimal | None  # `min`: at least
    most: Decimal | None  # `max`: at most
    points: Decimal


@dataclass(frozen=True, slots=True)
class Component:
    name: str
    feature: str
    weight: Decimal
    bands: tuple[Band, ...] = ()
    otherwise: Decimal = Decimal(0)
    ramp: tuple[Decimal, Decimal] | None = None  # linear: 0 points at [0], 100 at [1]

    def edges(self) -> tuple[int, ...]:
        """For a feature of whole numbers (days) read by bands: the values at which a band
        starts or stops matching (`max` m: at floor(m) + 1; `min` m: at ceil(m))."""
        found = []
        for band in self.bands:
            if band.most is not None:
                found.append(math.floor(band.most) + 1)
            if band.least is not None:
                found.append(math.ceil(band.least))
        return tuple(found)

    def points(self, value: Decimal | None) -> Decimal:
        if self.ramp is not None:
            if value is None:
                return Decimal(0)
            start, end = self.ramp
            share = min(max((value - start) / (end - start), Decimal(0)), Decimal(1))
            return (share * HUNDRED).quantize(HUNDREDTH, rounding=ROUND_HALF_EVEN)
        if value is not None:
            for band in self.bands:
                if (band.most is not None and value <= band.most) or (
                    band.least is not None and value >= band.least
                ):
                    return band.points
        return self.otherwise


@dataclass(frozen=True, slots=True)
class Score:
    name: str
    components: tuple[Component, ...]


@dataclass(frozen=True, slots=True)
class Part:
    """One component of a score, as the why shows it."""

    name: str
    feature: str
    value: Decimal | None
    points: Decimal
    weight: Decimal
    contribution: Decimal


@dataclass(frozen=True, slots=True)
class Scored:
    name: str
    value: Decimal
    parts: tuple[Part, ...]


def compile_scores(
    specs: Mapping[str, ScoreSpec], features: frozenset[str]
) -> tuple[tuple[Score, ...], list[str]]:
    """The scores, and the problems that refuse them (each naming score and component)."""
    scores, problems = [], []
    for name, spec in specs.items():
        components = []
        weights = Decimal(0)
        for part, component in spec.components.items():
            where = f"score {name!r}: component {part!r}"
            if component.feature not in features:
                problems.append(f"{where}: unknown feature {component.feature!r}")
            problems += [f"{where}: {p}" for p in _order(component)]
            weights += component.weight
            components.append(_component(part, component))
        if weights != 1:
            problems.append(f"score {name!r}: the weights sum to {weights}, not 1")
        scores.append(Score(name, tuple(components)))
    return tuple(scores), problems


def _order(spec: ComponentSpec) -> list[str]:
    if spec.linear is not None:
        if spec.linear.from_ == spec.linear.to:
            return ["linear: from and to are equal"]
        return []
    bands = spec.bands or []
    mosts = [b.max for b in bands if b.max is not None]
    leasts = [b.min for b in bands if b.min is not None]
    if mosts and leasts:
        return ["bands mix min and max (use one kind per component)"]
    if any(a >= b for a, b in pairwise(mosts)):
        return ["bands out of order: max must increase (the first band that matches wins)"]
    if any(a <= b for a, b in pairwise(leasts)):
        return ["bands out of order: min must decrease (the first band that matches wins)"]
    return []


def _component(name: str, spec: ComponentSpec) -> Component:
    if spec.linear is not None:
        return Component(name, spec.feature, spec.weight, ramp=(spec.linear.from_, spec.linear.to))
    bands = tuple(Band(b.min, b.max, b.points) for b in spec.bands or ())
    return Component(name, spec.feature, spec.weight, bands, spec.otherwise)


def score(definition: Score, value_of: Mapping[str, Decimal | None]) -> Scored:
    parts = []
    total = Decimal(0)
    for component in definition.components:
        value = value_of[component.feature]
        points = component.points(value)
        contribution = (component.weight * points).quantize(HUNDREDTH, rounding=ROUND_HALF_EVEN)
        total += contribution
        parts.append(
            Part(component.name, component.feature, value, points, component.weight, contribution)
        )
    return Scored(definition.name, total, tuple(parts))
