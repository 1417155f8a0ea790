"""What changed between two rulesets (SPEC §11, `GET /v1/rulesets/{a}/diff/{b}`): the tiers
added, removed, reordered and changed (condition, stay_while, rank, labels, high_value),
the declared features and scores added, removed and changed, the thresholds and the
stability that differ, each field with its value on either side; and the texts' unified
diff. Pure: from the two stored texts, which were valid when stored."""

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from services.scorer.core.ruleset_format import RulesetSpec

Fields = dict[str, dict[str, Any]]  # field -> {"from": value, "to": value}


@dataclass(frozen=True, slots=True)
class Named:
    """A section of named parts (tiers, features, scores): who came, who went, who
    changed and how."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[tuple[str, Fields], ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


@dataclass(frozen=True, slots=True)
class RulesetDiff:
    before: str  # the versions
    after: str
    thresholds: Fields
    stability: Fields
    tiers: Named
    order: tuple[tuple[str, ...], tuple[str, ...]] | None  # the tiers' order, when it changed
    features: Named
    scores: Named
    text: tuple[str, ...]  # the unified diff of the two texts

    @property
    def same_rules(self) -> bool:
        """Nothing but the version (and comments or layout) differs."""
        return not (
            self.thresholds
            or self.stability
            or self.order
            or not self.tiers.empty
            or not self.features.empty
            or not self.scores.empty
        )


def spec_of(text: str) -> RulesetSpec:
    """A stored ruleset's parsed text (it was validated when it was stored)."""
    return RulesetSpec.model_validate(yaml.safe_load(text))


def diff(before: str, after: str) -> RulesetDiff:
    """What changes from the ruleset text `before` to `after`."""
    a, b = spec_of(before), spec_of(after)
    tiers_a = {t.id: _dump(t) for t in a.tiers}
    tiers_b = {t.id: _dump(t) for t in b.tiers}
    common = [t for t in tiers_a if t in tiers_b]
    order_a = tuple(t for t in tiers_a if t in tiers_b)
    order_b = tuple(t for t in tiers_b if t in tiers_a)
    return RulesetDiff(
        before=a.version,
        after=b.version,
        thresholds=_fields(_dump(a.thresholds), _dump(b.thresholds)),
        stability=_fields(_dump(a.stability), _dump(b.stability)),
        tiers=_named(tiers_a, tiers_b),
        order=(order_a, order_b) if order_a != order_b and common else None,
        features=_named(_dumps(a.features), _dumps(b.features)),
        scores=_named(_dumps(a.scores), _dumps(b.scores)),
        text=tuple(
            line.rstrip("\n")
            for line in difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                fromfile=a.version,
                tofile=b.version,
            )
        ),
    )


def _dump(part: Any) -> dict[str, Any]:
    """A part of the spec as plain values (decimals as text, so that 0.30 and 0.3 differ
    only where the files do), flattened to dotted fields."""
    if part is None:
        return {}
    return _flat(part.model_dump(mode="json", by_alias=True, exclude={"id"}))


def _dumps(parts: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: _dump(part) for name, part in parts.items()}


def _flat(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, Mapping):
            found |= _flat(item, f"{prefix}{key}.")
        else:
            found[f"{prefix}{key}"] = item
    return found


def _fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> Fields:
    return {
        name: {"from": before.get(name), "to": after.get(name)}
        for name in sorted(before.keys() | after.keys())
        if before.get(name) != after.get(name)
    }


def _named(
    before: Mapping[str, Mapping[str, Any]], after: Mapping[str, Mapping[str, Any]]
) -> Named:
    return Named(
        added=tuple(name for name in after if name not in before),
        removed=tuple(name for name in before if name not in after),
        changed=tuple(
            (name, fields)
            for name in before
            if name in after and (fields := _fields(before[name], after[name]))
        ),
    )
