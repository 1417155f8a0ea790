"""The compiled core (native/, the `tierstream_native` extension) as the scorer uses it: one
engine per standard, built with the callbacks into the Python core it needs (a ruleset's
CEL conditions, once per distinct memo key; stability, when a candidate tier differs), and
its tier changes turned back into the core's `Change`s for the publisher.

The compiled path carries rulesets whose tiers are functions of the built-in features
(with scores and stability); a ruleset with declared features or profile conditions is
scored by the Python core (`supports`)."""

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import cast

import tierstream_native

from services.scorer.compiled_zone import offsets
from services.scorer.core.config import Scoring
from services.scorer.core.rules import (
    NUMBERS,
    TEXTS,
    Ruleset,
    evaluate,
    levels,
    placeholder,
    scored,
)
from services.scorer.core.scoring import (
    Change,
    ClockReason,
    EventCause,
    Standard,
    Standing,
    held,
)
from services.scorer.core.state import NOTHING, Features
from services.scorer.decoding import EPOCH, MICROSECOND
from services.scorer.rescoring import TierLookup

FeatureRow = tuple[int, int | None, int, int, int, int, int, int]
StandingRow = tuple[str, int, str]


def micros(moment: datetime) -> int:
    return (moment - EPOCH) // MICROSECOND


def instant(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def supports(standard: Standard) -> bool:
    """Whether the compiled path scores with this standard (else the Python core does)."""
    return not standard.ruleset.needs_state


class Compiled:
    """Engines by standard key: a new standard gets a new engine (and an empty memo)."""

    def __init__(self, scoring: Scoring) -> None:
        self._scoring = scoring
        self._engines: dict[str, tierstream_native.Engine] = {}

    def engine(
        self, standard: Standard, known: Mapping[str, Ruleset]
    ) -> tierstream_native.Engine | None:
        """The engine for `standard`; `known`: every ruleset a stored tier may come from."""
        if not supports(standard):
            return None
        found = self._engines.get(standard.key)
        if found is None:
            self._engines = {standard.key: build(self._scoring, standard, known)}
            found = self._engines[standard.key]
        return found


def build(
    scoring: Scoring, standard: Standard, known: Mapping[str, Ruleset]
) -> tierstream_native.Engine:
    ruleset, thresholds = standard.ruleset, standard.thresholds
    index = {tier.id: i for i, tier in enumerate(ruleset.tiers)}
    inputs = ruleset.references | {c.feature for s in ruleset.scores for c in s.components}

    def decide(row: FeatureRow) -> int:
        match = evaluate(ruleset, Features(*row), thresholds)
        return -1 if match is None else index[match.tier.id]

    def hold(row: FeatureRow, tier_id: str, since_us: int, candidate: int) -> bool:
        current = ruleset.tier(tier_id) or placeholder(tier_id)
        standing = Standing(current, instant(since_us), ruleset.version)
        return (
            held(
                ruleset,
                Features(*row),
                thresholds=thresholds,
                standing=standing,
                candidate=ruleset.tiers[candidate],
                zone=scoring.zone,
            )
            is not None
        )

    zone_offsets, until = offsets(scoring.zone)
    w = scoring.windows
    edges = ruleset.edges
    return tierstream_native.Engine(
        windows=(w.main, w.short, w.interactions, w.history),
        offsets=list(zone_offsets),
        until=until,
        base_currency=scoring.base_currency,
        rates=[(currency, str(rate)) for currency, rate in scoring.rates.items()],
        version=ruleset.version,
        tiers=[tier.id for tier in ruleset.tiers],
        numbers=sorted(inputs & set(NUMBERS)),
        levels=bool(inputs & set(TEXTS)),
        thresholds=(thresholds.recency_days, thresholds.frequency, thresholds.monetary),
        decide=decide,
        hold=hold if ruleset.stability else None,
        min_days_in_tier=ruleset.min_days_in_tier,
        daily=ruleset.daily,
        recency_edges=list(edges.get("recency_days", ())),
        tenure_edges=list(edges.get("tenure_days", ())),
        # the records of a change with scores are built by the publisher (Python)
        records=None
        if ruleset.scores
        else (
            ruleset.mode,
            _tiers(ruleset),
            [(version, _tiers(other)) for version, other in known.items()],
        ),
    )


def _tiers(ruleset: Ruleset) -> list[tuple[str, str, str, int, bool]]:
    return [(t.id, t.label_zh, t.label_en, t.rank, t.high_value) for t in ruleset.tiers]


ChangeRow = tuple[
    str, str, StandingRow | None, StandingRow, FeatureRow, tuple[str, str, str] | tuple[str, str]
]


def changes_of(rows: list[ChangeRow], standard: Standard, tiers: TierLookup) -> list[Change]:
    """The engine's tier changes as the core's (what the publisher and metrics take)."""
    return [change_of(row, standard, tiers) for row in rows]


def change_of(row: ChangeRow, standard: Standard, tiers: TierLookup) -> Change:
    """A change the engine left to Python, as the core's (for the publisher)."""
    change_id, customer, before, after, features, cause = row
    ruleset, thresholds = standard.ruleset, standard.thresholds
    found = Features(*features)
    reason = EventCause(cause[1], cause[2]) if len(cause) == 3 else cast(ClockReason, cause[0])
    return Change(
        change_id,
        customer,
        None if before is None else _standing(before, tiers),
        _standing(after, tiers),
        found,
        levels(found, thresholds),
        thresholds,
        ruleset.mode,
        reason,
        scored(ruleset, found),
        NOTHING,
    )


def _standing(row: StandingRow, tiers: TierLookup) -> Standing:
    tier_id, since_us, version = row
    return Standing(tiers(version, tier_id), instant(since_us), version)
