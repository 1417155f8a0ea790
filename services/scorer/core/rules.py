"""Rulesets (SPEC §4): YAML, versioned, conditions in CEL, first match wins.

Conditions are compiled once, at load, by cel-cpp (cel-expr-python: the fastest of the
Python CEL engines measured, and the only one that type-checks: a misspelt feature fails at
load, not at the first customer). Loading also runs every condition against probe customers
at the edges (never purchased, nothing at all, every RFM segment) so that a condition that
errors at run time, or a ruleset that leaves customers without a tier, is refused at load
with the tier and the problem named.

Evaluation is pure: features in, tier out. Numbers mix freely (SPEC §4): every number in a
condition is a real number, the features and the literals alike (a literal written `3` is
read `3.0`, outside string literals), so `frequency * 0.3 >= 1.0` and `frequency / 2 > 1`
mean what they say in arithmetic (CEL itself has no int * double). Counts are exact as
doubles (below 2^53). Money enters CEL as a double in base-currency units, converted once
from the exact integer minor units; comparisons with amounts written with at most two
decimals are exact below 10^12 (the spacing of doubles there is far below a cent, and
rounding is monotonic), so `monetary_90d >= 100000` means what it says.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Literal

import yaml
from cel_expr_python import cel
from pydantic import ValidationError

from services.scorer.core.ruleset_format import RulesetSpec, TierSpec, describe
from services.scorer.core.state import Features

Level = Literal["high", "low"]
SEGMENTS: Mapping[tuple[Level, Level, Level], str] = {
    ("high", "high", "high"): "important_value",
    ("high", "low", "high"): "important_develop",
    ("low", "high", "high"): "important_retain",
    ("low", "low", "high"): "important_winback",
    ("high", "high", "low"): "general_value",
    ("high", "low", "low"): "general_develop",
    ("low", "high", "low"): "general_retain",
    ("low", "low", "low"): "general_winback",
}
NUMBERS = (
    "recency_days",
    "frequency",
    "monetary",
    "frequency_90d",
    "monetary_90d",
    "interactions_30d",
    "tenure_days",
)
TEXTS = ("segment", "r", "f", "m")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """R is high when recency_days <= recency_days; F when frequency >= frequency; M when
    monetary (minor units) >= monetary."""

    recency_days: int
    frequency: int
    monetary: int


@dataclass(frozen=True, slots=True)
class Tier:
    id: str
    label_zh: str
    label_en: str
    rank: int
    high_value: bool
    condition: str
    program: Any  # a compiled cel-cpp expression


def placeholder(tier_id: str) -> Tier:
    """A tier known only by its id (a stored tier of a ruleset this process cannot load):
    enough to compare with, never evaluated."""
    return Tier(tier_id, tier_id, tier_id, 0, False, "", None)


@dataclass(frozen=True, slots=True)
class Levels:
    recency: Level
    frequency: Level
    monetary: Level
    segment: str


@dataclass(frozen=True, slots=True)
class Ruleset:
    version: str
    mode: Literal["fixed", "population"]
    thresholds: Thresholds  # the fixed ones; in population mode, the starting point
    tiers: tuple[Tier, ...]
    # The variables the conditions read (over-approximated): a tier is a function of them
    # alone, so `evaluate` memoizes on their values (CEL has no side effects or clock).
    references: frozenset[str] = frozenset((*NUMBERS, *TEXTS))
    memo: dict[tuple[object, ...], int] = field(default_factory=dict, compare=False, repr=False)
    # derived once, at construction: the memo key's parts and the tiers by id
    feature_key: Callable[[Features], object] = field(init=False, compare=False, repr=False)
    level_key: Callable[[Levels], object] = field(init=False, compare=False, repr=False)
    tier_index: Mapping[str, Tier] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        numbers = sorted(self.references & set(NUMBERS))
        texts = sorted(_LEVEL_FIELDS[name] for name in self.references & set(TEXTS))
        object.__setattr__(self, "feature_key", attrgetter(*numbers) if numbers else _nothing)
        object.__setattr__(self, "level_key", attrgetter(*texts) if texts else _nothing)
        object.__setattr__(self, "tier_index", {tier.id: tier for tier in self.tiers})

    def tier(self, tier_id: str) -> Tier | None:
        return self.tier_index.get(tier_id)


@dataclass(frozen=True, slots=True)
class Match:
    tier: Tier
    levels: Levels


_LEVEL_FIELDS = {"segment": "segment", "r": "recency", "f": "frequency", "m": "monetary"}


def _nothing(_: object) -> None:
    return None


class RulesetError(ValueError):
    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.problems = problems


class ConditionFailed(RuntimeError):
    """A condition errored for these features (a load-time probe did not foresee it)."""


def levels(features: Features, thresholds: Thresholds) -> Levels:
    r: Level = (
        "high"
        if features.recency_days is not None and features.recency_days <= thresholds.recency_days
        else "low"
    )
    f: Level = "high" if features.frequency >= thresholds.frequency else "low"
    m: Level = "high" if features.monetary >= thresholds.monetary else "low"
    return _LEVELS[(r, f, m)]


_LEVELS = {key: Levels(*key, segment) for key, segment in SEGMENTS.items()}
MEMO_SIZE = 100_000
_NONE = -1


def evaluate(ruleset: Ruleset, features: Features, thresholds: Thresholds) -> Match | None:
    """The first tier whose condition holds, or None when none does."""
    found = levels(features, thresholds)
    key = (ruleset.feature_key(features), ruleset.level_key(found))
    index = ruleset.memo.get(key)
    if index is None:
        data = activation(features, found)
        index = next((i for i, tier in enumerate(ruleset.tiers) if _holds(tier, data)), _NONE)
        if len(ruleset.memo) >= MEMO_SIZE:
            ruleset.memo.clear()
        ruleset.memo[key] = index
    return None if index == _NONE else Match(ruleset.tiers[index], found)


_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'')
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# a numeric literal, whole: hex (0x1F), real (1.5, .5, 1e-3, 2.5E+4), integer, unsigned (1u)
_NUMBER = re.compile(
    r"(?<![\w.])(?:0[xX][0-9a-fA-F]+[uU]?|\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?"
    r"|\d+[eE][+-]?\d+|\d+[uU]?)(?![\w.])"
)


def _real(number: re.Match[str]) -> str:
    literal = number.group()
    return literal + ".0" if literal.isdigit() else literal


def reals(condition: str) -> str:
    """The condition with its decimal integer literals written as reals (`3` -> `3.0`),
    outside string literals; every other literal as it is."""
    parts, end = [], 0
    for literal in _STRING.finditer(condition):
        parts.append(_NUMBER.sub(_real, condition[end : literal.start()]))
        parts.append(literal.group())
        end = literal.end()
    parts.append(_NUMBER.sub(_real, condition[end:]))
    return "".join(parts)


def references(conditions: list[str]) -> frozenset[str]:
    """The variables a condition may read: every name outside string literals (a name
    inside an odd literal only makes the set larger, which is safe)."""
    names: set[str] = set()
    for condition in conditions:
        names.update(_NAME.findall(_STRING.sub(" ", condition)))
    return frozenset(names & {*NUMBERS, *TEXTS})


def activation(features: Features, found: Levels) -> dict[str, object]:
    recency = features.recency_days
    return {
        "recency_days": None if recency is None else float(recency),
        "frequency": float(features.frequency),
        "monetary": features.monetary / 100,
        "frequency_90d": float(features.frequency_90d),
        "monetary_90d": features.monetary_90d / 100,
        "interactions_30d": float(features.interactions_30d),
        "tenure_days": float(features.tenure_days),
        "segment": found.segment,
        "r": found.recency,
        "f": found.frequency,
        "m": found.monetary,
    }


def _holds(tier: Tier, data: Mapping[str, object]) -> bool:
    try:
        value = tier.program.eval(data=data)
    except Exception as error:  # cel-cpp raises its own status errors for bad input
        raise ConditionFailed(f"tier {tier.id!r}: {_clean(str(error))}") from error
    result = value.value()
    if value.type() == cel.Type.ERROR:  # cel-cpp returns run-time errors as values
        message = _clean(str(result))
        if "null_type" in message:
            message += (
                " (recency_days is null for a customer who never purchased: guard it, "
                "e.g. recency_days != null && recency_days <= 30)"
            )
        raise ConditionFailed(f"tier {tier.id!r}: {message}")
    if not isinstance(result, bool):
        raise ConditionFailed(f"tier {tier.id!r}: condition gave {result!r}, not a bool")
    return result


def load(text: str, source: str = "ruleset") -> Ruleset:
    """Parses, compiles and probes a ruleset; RulesetError names every tier and problem."""
    try:
        spec = RulesetSpec.model_validate(yaml.safe_load(text))
    except yaml.YAMLError as error:
        raise RulesetError(source, [f"not YAML: {error}"]) from error
    except ValidationError as error:
        raise RulesetError(
            source, [describe(spec_error) for spec_error in error.errors(include_url=False)]
        ) from error
    environment = _environment()
    problems: list[str] = []
    tiers = []
    for tier in spec.tiers:
        try:
            tiers.append(_compile(environment, tier))
        except ValueError as error:
            problems.append(str(error))
    problems += _duplicates(spec)
    thresholds = Thresholds(
        spec.thresholds.recency_days, spec.thresholds.frequency, int(spec.thresholds.monetary * 100)
    )
    ruleset = Ruleset(
        spec.version,
        spec.thresholds.mode,
        thresholds,
        tuple(tiers),
        references([tier.condition for tier in spec.tiers]),
    )
    if not problems:
        problems += _probe(ruleset)
    if problems:
        raise RulesetError(source, problems)
    return ruleset


def _environment() -> Any:
    variables = dict.fromkeys(NUMBERS, cel.Type.DYN)
    variables |= dict.fromkeys(TEXTS, cel.Type.STRING)
    return cel.NewEnv(variables=variables)


def _compile(environment: Any, tier: TierSpec) -> Tier:
    try:
        program = environment.compile(reals(tier.condition))
    except Exception as error:  # cel-cpp's status errors carry the position
        raise ValueError(
            f"tier {tier.id!r}: condition does not compile: {_clean(str(error))}"
        ) from error
    kind = program.return_type()
    if kind not in (cel.Type.BOOL, cel.Type.DYN):
        name = "number" if kind in (cel.Type.DOUBLE, cel.Type.INT) else kind.name().lower()
        raise ValueError(f"tier {tier.id!r}: condition is of type {name}, not bool")
    return Tier(
        tier.id, tier.labels.zh, tier.labels.en, tier.rank, tier.high_value, tier.condition, program
    )


def _duplicates(spec: RulesetSpec) -> list[str]:
    seen: set[str] = set()
    problems = []
    for tier in spec.tiers:
        if tier.id in seen:
            problems.append(f"tier {tier.id!r}: the id is used twice")
        seen.add(tier.id)
    return problems


def _probe(ruleset: Ruleset) -> list[str]:
    """Every condition against customers at the edges; every customer must get a tier."""
    problems: list[str] = []
    for name, features in _probes(ruleset.thresholds).items():
        found = levels(features, ruleset.thresholds)
        data = activation(features, found)
        matched = False
        for tier in ruleset.tiers:
            try:
                matched = _holds(tier, data) or matched
            except ConditionFailed as error:
                problems.append(f"{error} (for {name})")
        if not matched:
            problems.append(
                f'no tier matches {name}: end with a catch-all tier (condition: "true")'
            )
    return sorted(set(problems))


def _probes(thresholds: Thresholds) -> dict[str, Features]:
    never = Features(0, None, 0, 0, 0, 0, 0, 0)
    probes = {"a customer who never purchased": never}
    for (r, f, m), segment in SEGMENTS.items():
        probes[f"a customer in segment {segment}"] = Features(
            day=0,
            recency_days=thresholds.recency_days if r == "high" else thresholds.recency_days + 1,
            frequency=thresholds.frequency if f == "high" else max(thresholds.frequency - 1, 0),
            monetary=thresholds.monetary if m == "high" else thresholds.monetary - 1,
            frequency_90d=0,
            monetary_90d=0,
            interactions_30d=0,
            tenure_days=400,
        )
    return probes


def _clean(message: str) -> str:
    for noise in (
        "INVALID_ARGUMENT: ",
        "ERROR: ",
        "UNKNOWN: ",
        " (in container '')",
        " [INVALID_ARGUMENT]",
    ):
        message = message.replace(noise, "")
    return message.strip()
