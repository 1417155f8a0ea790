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
from decimal import Decimal
from operator import attrgetter
from typing import Any, Literal

import yaml
from cel_expr_python import cel
from pydantic import ValidationError

from services.scorer.core import declared
from services.scorer.core.cel_text import STRING, names, reals
from services.scorer.core.cel_text import clean as _clean
from services.scorer.core.declared import NO_PLAN, Plan
from services.scorer.core.ruleset_format import RulesetSpec, TierSpec, describe
from services.scorer.core.scores import Score, Scored, compile_scores, score
from services.scorer.core.state import NO_ATTRIBUTES, Features

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
MONEY = frozenset({"monetary", "monetary_90d"})
PROFILE = ("attributes", "team")
RESERVED = frozenset(
    {*NUMBERS, *TEXTS, *PROFILE, "scores", "points", "has", "true", "false", "null", "in"}
    | {"as", "break", "const", "continue", "else", "for", "function", "if", "import", "let"}
    | {"loop", "package", "namespace", "return", "var", "void", "while"}
)
__all__ = ["reals"]


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
    stay_while: str | None = None
    stay: Any = None  # the compiled `stay_while`; None: the condition holds the customer


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
    # SPEC §10: declared features, scores and stability (none: the ruleset means what a
    # ruleset without them always meant)
    plan: Plan = NO_PLAN
    scores: tuple[Score, ...] = ()
    stability: bool = False  # a `stability` key or a `stay_while`: stability rules apply
    min_days_in_tier: int = 0
    # derived once, at construction: the memo key's parts and the tiers by id
    feature_key: Callable[[Features], object] = field(init=False, compare=False, repr=False)
    level_key: Callable[[Levels], object] = field(init=False, compare=False, repr=False)
    tier_index: Mapping[str, Tier] = field(init=False, compare=False, repr=False)
    extended: bool = field(init=False, compare=False, repr=False)
    # evaluating a customer needs their state, not only a snapshot of the built-in features
    # (declared features and the profile are in the state alone)
    needs_state: bool = field(init=False, compare=False, repr=False)
    daily: bool = field(init=False, compare=False, repr=False)  # may change any day by time
    # recency_days / tenure_days read only through score bands: the values at which a band
    # may start or stop matching (the tier may change only on the days they are reached)
    edges: Mapping[str, tuple[int, ...]] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        inputs = self.references | {c.feature for s in self.scores for c in s.components}
        numbers = sorted(inputs & set(NUMBERS))
        texts = sorted(_LEVEL_FIELDS[name] for name in self.references & set(TEXTS))
        object.__setattr__(self, "feature_key", attrgetter(*numbers) if numbers else _nothing)
        object.__setattr__(self, "level_key", attrgetter(*texts) if texts else _nothing)
        object.__setattr__(self, "tier_index", {tier.id: tier for tier in self.tiers})
        extended = bool(self.plan.features or self.scores or self.references & set(PROFILE))
        object.__setattr__(self, "extended", extended)
        needs_state = bool(self.plan.features or self.references & set(PROFILE))
        object.__setattr__(self, "needs_state", needs_state)
        days_since = {f.name for f in self.plan.features if f.aggregate == "days_since"}
        components = [c for s in self.scores for c in s.components]
        banded = {c.feature for c in components if c.ramp is None}
        direct = self.references | {c.feature for c in components if c.ramp is not None}
        edges = {
            name: tuple(sorted({e for c in components if c.feature == name for e in c.edges()}))
            for name in ("recency_days", "tenure_days")
            if name in banded and name not in direct
        }
        daily = (direct | (banded & days_since)) & {"recency_days", "tenure_days", *days_since}
        object.__setattr__(self, "daily", bool(daily))
        object.__setattr__(self, "edges", edges)

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
    if ruleset.extended:
        key: tuple[object, ...] = (
            ruleset.feature_key(features),
            ruleset.level_key(found),
            _extra_key(ruleset, features),
        )
    else:
        key = (ruleset.feature_key(features), ruleset.level_key(found))
    index = ruleset.memo.get(key)
    if index is None:
        data = activation(features, found, ruleset)
        index = next((i for i, tier in enumerate(ruleset.tiers) if _holds(tier, data)), _NONE)
        if len(ruleset.memo) >= MEMO_SIZE:
            ruleset.memo.clear()
        ruleset.memo[key] = index
    return None if index == _NONE else Match(ruleset.tiers[index], found)


def _extra_key(ruleset: Ruleset, features: Features) -> object:
    """What an extended ruleset's tier depends on beyond the built-in features: the declared
    features, and the profile when a condition reads it."""
    profile = features.profile
    reads = ruleset.references
    return (
        tuple(features.declared.values()),
        profile.team if profile is not None and "team" in reads else None,
        tuple(sorted((k, type(v).__name__, v) for k, v in profile.attributes.items()))
        if profile is not None and "attributes" in reads
        else None,
    )


def references(
    conditions: list[str], declared_names: frozenset[str] = frozenset()
) -> frozenset[str]:
    """The variables a condition may read: every name outside string literals (a name
    inside an odd literal only makes the set larger, which is safe)."""
    found: set[str] = set()
    for condition in conditions:
        found |= names(condition)
    return frozenset(found & {*NUMBERS, *TEXTS, *PROFILE, "scores", "points", *declared_names})


def scored(ruleset: Ruleset, features: Features) -> tuple[Scored, ...]:
    """Every score of the ruleset for these features, with each component's part."""
    if not ruleset.scores:
        return ()
    inputs = {c.feature for s in ruleset.scores for c in s.components}
    money = ruleset.plan.money
    found = {name: _value(features, name, money) for name in inputs}
    return tuple(score(definition, found) for definition in ruleset.scores)


def _value(features: Features, name: str, money: frozenset[str]) -> Decimal | None:
    if name in features.declared or name in money:
        raw = features.declared.get(name)
        if raw is None:
            return None
        return Decimal(raw) / 100 if name in money else Decimal(raw)
    raw_builtin = getattr(features, name)
    if raw_builtin is None:
        return None
    return Decimal(raw_builtin) / 100 if name in MONEY else Decimal(raw_builtin)


def activation(
    features: Features, found: Levels, ruleset: Ruleset | None = None
) -> dict[str, object]:
    """The variables a condition reads: numbers as reals, money in the base currency."""
    data = _builtin(features, found)
    if ruleset is not None and ruleset.extended:
        money = ruleset.plan.money
        for name, raw in features.declared.items():
            data[name] = None if raw is None else (raw / 100 if name in money else float(raw))
        profile = features.profile
        attributes = NO_ATTRIBUTES if profile is None else profile.attributes
        data["attributes"] = declared.cel_attributes(attributes)
        data["team"] = None if profile is None else profile.team
        results = scored(ruleset, features)
        data["scores"] = {s.name: float(s.value) for s in results}
        data["points"] = {s.name: {p.name: float(p.points) for p in s.parts} for s in results}
    return data


def _builtin(features: Features, found: Levels) -> dict[str, object]:
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


def _holds(tier: Tier, data: Mapping[str, object], *, stay: bool = False) -> bool:
    program, what = (tier.stay, "stay_while") if stay else (tier.program, "condition")
    try:
        value = program.eval(data=data)
    except Exception as error:  # cel-cpp raises its own status errors for bad input
        raise ConditionFailed(f"tier {tier.id!r}: {_clean(str(error))}") from error
    result = value.value()
    if value.type() == cel.Type.ERROR:  # cel-cpp returns run-time errors as values
        message = _clean(str(result))
        if "null_type" in message:
            message += (
                " (recency_days is null for a customer who never purchased, and avg, min, "
                "max and days_since features with no matching event: guard it, "
                "e.g. recency_days != null && recency_days <= 30)"
            )
        if "Key not found" in message or "no such key" in message.lower():
            message += (
                " (a customer's attributes hold only what their latest profile says: guard "
                'the read, e.g. has(attributes.industry) && attributes.industry == "finance")'
            )
        raise ConditionFailed(f"tier {tier.id!r}: {what}: {message}")
    if not isinstance(result, bool):
        raise ConditionFailed(f"tier {tier.id!r}: {what} gave {result!r}, not a bool")
    return result


def stays(ruleset: Ruleset, tier: Tier, features: Features, thresholds: Thresholds) -> bool:
    """Whether a customer in `tier` is held there (SPEC §10): its `stay_while`, or its
    condition when it has none."""
    data = activation(features, levels(features, thresholds), ruleset)
    return _holds(tier, data, stay=tier.stay is not None)


def load(
    text: str, source: str = "ruleset", *, max_window: int = 365, retained: int = 730
) -> Ruleset:
    """Parses, compiles and probes a ruleset; RulesetError names every tier, feature and
    score, and the problem. `max_window` is the longest window a declared feature may have
    (the longest built-in one: within it `as_of` stays exact), `retained` the span a state
    keeps (a feature without a window counts all of it)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RulesetError(source, [f"not YAML: {error}"]) from error
    try:
        spec = RulesetSpec.model_validate(raw)
    except ValidationError as error:
        raise RulesetError(
            source, [describe(spec_error, raw) for spec_error in error.errors(include_url=False)]
        ) from error
    problems = [
        f"feature {name!r}: the name shadows a built-in name"
        for name in spec.features
        if name in RESERVED
    ]
    plan, plan_problems = declared.compile_plan(
        spec.features, max_window=max_window, retained=retained
    )
    problems += plan_problems
    scores, score_problems = compile_scores(spec.scores, frozenset(NUMBERS) | plan.names)
    problems += score_problems
    environment = _environment(plan.names)
    tiers = []
    for tier in spec.tiers:
        try:
            tiers.append(_compile(environment, tier))
        except ValueError as error:
            problems.append(str(error))
    problems += _duplicates(spec)
    for tier_spec in spec.tiers:
        problems += _unguarded(tier_spec)
    thresholds = Thresholds(
        spec.thresholds.recency_days, spec.thresholds.frequency, int(spec.thresholds.monetary * 100)
    )
    conditions = [t.condition or "true" for t in spec.tiers]
    conditions += [t.stay_while for t in spec.tiers if t.stay_while]
    ruleset = Ruleset(
        spec.version,
        spec.thresholds.mode,
        thresholds,
        tuple(tiers),
        references(conditions, plan.names),
        plan=plan,
        scores=scores,
        stability=spec.stability is not None or any(t.stay_while for t in spec.tiers),
        min_days_in_tier=0 if spec.stability is None else spec.stability.min_days_in_tier,
    )
    if not problems:
        problems += _probe(ruleset)
    if problems:
        raise RulesetError(source, problems)
    return ruleset


def _environment(declared_names: frozenset[str] = frozenset()) -> Any:
    variables = dict.fromkeys(NUMBERS, cel.Type.DYN)
    variables |= dict.fromkeys(TEXTS, cel.Type.STRING)
    variables |= dict.fromkeys((*PROFILE, "scores", "points", *declared_names), cel.Type.DYN)
    return cel.NewEnv(variables=variables)


def _program(environment: Any, tier_id: str, what: str, text: str) -> Any:
    try:
        program = environment.compile(reals(text))
    except Exception as error:  # cel-cpp's status errors carry the position
        raise ValueError(
            f"tier {tier_id!r}: {what} does not compile: {_clean(str(error))}"
        ) from error
    kind = program.return_type()
    if kind not in (cel.Type.BOOL, cel.Type.DYN):
        name = "number" if kind in (cel.Type.DOUBLE, cel.Type.INT) else kind.name().lower()
        raise ValueError(f"tier {tier_id!r}: {what} is of type {name}, not bool")
    return program


def _compile(environment: Any, tier: TierSpec) -> Tier:
    if tier.stay_while is not None and tier.condition is None:
        raise ValueError(
            f"tier {tier.id!r}: stay_while on a tier without a condition (a catch-all tier "
            "holds every customer already)"
        )
    condition = tier.condition or "true"  # no condition: the tier takes every customer
    program = _program(environment, tier.id, "condition", condition)
    stay = None
    if tier.stay_while is not None:
        stay = _program(environment, tier.id, "stay_while", tier.stay_while)
    return Tier(
        tier.id,
        tier.labels.zh,
        tier.labels.en,
        tier.rank,
        tier.high_value,
        condition,
        program,
        tier.stay_while,
        stay,
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
    """Every condition (and `stay_while`) against customers at the edges: never purchased,
    every RFM segment, and for a ruleset with declared features or profile reads, no
    matching events (avg/min/max/days_since null), every declared feature very high, and no
    attributes or team. Every customer must get a tier. A problem is named once, for the
    first customer it shows with."""
    problems: dict[str, str] = {}
    for name, features in _probes(ruleset).items():
        found = levels(features, ruleset.thresholds)
        data = activation(features, found, ruleset)
        matched = False
        for tier in ruleset.tiers:
            try:
                matched = _holds(tier, data) or matched
                if tier.stay is not None:
                    _holds(tier, data, stay=True)
            except ConditionFailed as error:
                problems.setdefault(str(error), f"{error} (for {name})")
        if not matched:
            problems.setdefault(
                f"no tier: {name}",
                f'no tier matches {name}: end with a catch-all tier (condition: "true")',
            )
    return sorted(problems.values())


_ATTRIBUTE = re.compile(r"\battributes\.([A-Za-z_][A-Za-z0-9_]*)")


def _unguarded(spec: TierSpec) -> list[str]:
    """Attribute reads without `has()` (SPEC §10): a customer's attributes hold only what
    their latest profile says, so `attributes.x` errors for a customer without `x`. The
    probes find most such reads; this finds those another part of the condition hides from
    them (`score >= 50 && attributes.region != "west"`)."""
    problems: list[str] = []
    for what, text in (("condition", spec.condition), ("stay_while", spec.stay_while)):
        if not text:
            continue
        bare = STRING.sub(" ", text)
        problems.extend(
            f"tier {spec.id!r}: {what} reads attributes.{key} without "
            f"has(attributes.{key}): a customer whose latest profile lacks it has none; "
            f'guard the read, e.g. has(attributes.{key}) && attributes.{key} == "..."'
            for key in dict.fromkeys(_ATTRIBUTE.findall(bare))
            if f"has(attributes.{key})" not in bare.replace(" ", "")
        )
    return problems


def _probes(ruleset: Ruleset) -> dict[str, Features]:
    thresholds = ruleset.thresholds
    empty = {
        f.name: (None if f.aggregate in _NULL_WHEN_EMPTY else 0) for f in ruleset.plan.features
    }
    some = {f.name: 1 for f in ruleset.plan.features}
    never = Features(0, None, 0, 0, 0, 0, 0, 0, empty)
    probes = {"a customer who never purchased": never}  # nor has attributes, team, events
    if ruleset.plan.features:
        high = dict.fromkeys(empty, 10**11)
        probes["a customer with every declared feature high"] = Features(
            0, 0, 10**6, 10**11, 10**6, 10**11, 10**6, 10**4, high
        )
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
            declared=some,
        )
    return probes


_NULL_WHEN_EMPTY = frozenset({"avg", "min", "max", "days_since"})
