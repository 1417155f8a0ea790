"""The scoring decision: one fact in, the new state, standing and (maybe) one tier change out.

Pure. A customer's tier is evaluated after *every* event, in partition order, so the set of
tier changes never depends on how records were batched (a retried batch may be cut
differently). It is evaluated at `today` = the later of the clock's day and the latest day
the state has seen; the clock is the wall clock, or in replay mode the latest event time.
A change's id is derived from its cause, so the same change always has the same id.
"""

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

from schemas.v1 import tiers as contract
from services.scorer.core import declared
from services.scorer.core.declared import UNTRACKED, Tracking
from services.scorer.core.rules import Levels, Ruleset, Thresholds, Tier, evaluate, scored, stays
from services.scorer.core.ruleset_format import Aggregate
from services.scorer.core.scores import Scored
from services.scorer.core.snapshot import Snapshot, of_state
from services.scorer.core.state import (
    NOTHING,
    CustomerState,
    Fact,
    Features,
    Windows,
    apply,
    features,
)

UTC_ZONE = ZoneInfo("UTC")


@dataclass(frozen=True, slots=True)
class Standing:
    """A customer's current tier and since when."""

    tier: Tier
    since: datetime
    ruleset_version: str


@dataclass(frozen=True, slots=True)
class EventCause:
    source: str
    id: str


ClockReason = Literal["time_passed", "ruleset_activated", "thresholds_refreshed"]


@dataclass(frozen=True, slots=True)
class Change:
    change_id: str
    customer_id: str
    before: Standing | None
    after: Standing
    features: Features
    levels: Levels
    thresholds: Thresholds
    threshold_mode: Literal["fixed", "population"]
    cause: EventCause | ClockReason
    # SPEC §10: the scores with their parts, and the declared features' aggregates
    scores: tuple[Scored, ...] = ()
    aggregates: Mapping[str, Aggregate] = NOTHING


@dataclass(frozen=True, slots=True)
class Hold:
    """Why stability kept a customer in their tier (SPEC §10) instead of `candidate`."""

    by: Literal["stay_while", "min_days_in_tier"]
    candidate: Tier
    until: int | None = None  # min_days_in_tier: the first day a move down may happen


@dataclass(frozen=True, slots=True)
class Standard:
    """What customers are scored with: a ruleset and the thresholds in force (fixed, or the
    population's current ones), under one activation of the ruleset and (population mode)
    one generation of the thresholds.

    `key` changes exactly when customers must be re-tiered, and never comes back: every
    activation, even of a version active before, and every change of the population
    thresholds, even back to earlier values, is its own cause (SPEC §11), so the changes it
    makes get ids no earlier move had. `label` says what is in force, for people."""

    ruleset: Ruleset
    thresholds: Thresholds
    activation: int = 0  # the activation's number (rulesets.activation), growing
    generation: int = 0  # population thresholds: grows each time their values change
    tracking: Tracking = UNTRACKED  # the declared streams tracked, and since when

    @property
    def label(self) -> str:
        return self.ruleset.version + self._thresholds()

    @property
    def key(self) -> str:
        thresholds = self._thresholds()
        generation = f"#{self.generation}" if thresholds else ""
        return f"{self.ruleset.version}#{self.activation}{thresholds}{generation}"

    @property
    def legacy_key(self) -> str:
        """The key as revisions before 0010 stored it (no activation, no generation): a
        partition that applied it was scored with this standard's rules and thresholds."""
        return self.label

    def same_activation(self, key: str) -> bool:
        """Whether `key` was applied under this activation of the ruleset (so a re-tier
        from it is caused by new thresholds, not by an activation)."""
        return activation_of(key) == f"{self.ruleset.version}#{self.activation}"

    def _thresholds(self) -> str:
        """Population mode's thresholds, as the key and the label carry them."""
        if self.ruleset.mode == "fixed":
            return ""
        t = self.thresholds
        return f"@r{t.recency_days}f{t.frequency}m{t.monetary}"


def activation_of(key: str) -> str:
    """The `version#activation` part of a standard's key (without the population
    thresholds and their generation)."""
    return key.split("@", maxsplit=1)[0]


def label_of(key: str) -> str:
    """The label of the standard whose key this is: the key without its activation and
    generation numbers."""
    return re.sub(r"#\d+", "", key)


class NoTier(RuntimeError):
    """No tier matched: a ruleset that passed its load-time probes missed a customer."""


def score_event(
    customer_id: str,
    state: CustomerState | None,
    standing: Standing | None,
    fact: Fact,
    cause: EventCause,
    *,
    ruleset: Ruleset,
    thresholds: Thresholds,
    windows: Windows,
    clock_day: int,
    now: datetime,
    tracking: Tracking = UNTRACKED,
    zone: ZoneInfo = UTC_ZONE,
) -> tuple[CustomerState, Standing, Change | None]:
    """The state after one more event, and the tier change it causes, if any."""
    before = state
    state = apply(state, fact, windows)
    if ruleset.plan.streams or state.tracks:
        state = declared.observe(
            state, before, fact, plan=ruleset.plan, tracking=tracking, windows=windows
        )
    standing, change = judge(
        customer_id,
        inputs(state, max(clock_day, state.anchor), windows, ruleset, tracking),
        standing,
        cause=cause,
        ruleset=ruleset,
        thresholds=thresholds,
        now=now,
        zone=zone,
    )
    return state, standing, change


def inputs(
    state: CustomerState, today: int, windows: Windows, ruleset: Ruleset, tracking: Tracking
) -> Features:
    """The features a ruleset reads at `today`: the built-in ones, and for an extended
    ruleset its declared features and the latest profile."""
    found = features(state, today, windows)
    if not ruleset.extended:
        return found
    values, partial = declared.values(state, today, ruleset.plan, tracking)
    return replace(found, declared=values, partial=partial, profile=state.profile)


def rescore(
    customer_id: str,
    state: CustomerState,
    standing: Standing | None,
    *,
    day: int,
    cause: ClockReason,
    detail: str,
    ruleset: Ruleset,
    thresholds: Thresholds,
    windows: Windows,
    now: datetime,
    tracking: Tracking = UNTRACKED,
    zone: ZoneInfo = UTC_ZONE,
) -> tuple[Standing, Change | None]:
    """The tier at `day` (or the customer's latest day, if later) with nothing new but time,
    the ruleset or the thresholds; `detail` names what moved (the day, the version, the
    thresholds), so a change's id is the same however often it is computed."""
    return judge(
        customer_id,
        inputs(state, max(day, state.anchor), windows, ruleset, tracking),
        standing,
        cause=cause,
        detail=detail,
        ruleset=ruleset,
        thresholds=thresholds,
        now=now,
        zone=zone,
    )


def judge(
    customer_id: str,
    found: Features,
    standing: Standing | None,
    *,
    cause: EventCause | ClockReason,
    detail: str = "",
    ruleset: Ruleset,
    thresholds: Thresholds,
    now: datetime,
    zone: ZoneInfo = UTC_ZONE,
) -> tuple[Standing, Change | None]:
    """The standing the features give, and the change from `standing`, if any. The tier is
    the first whose condition holds, unless stability holds the customer where they are."""
    match = evaluate(ruleset, found, thresholds)
    if match is None:
        raise NoTier(f"no tier matched customer {customer_id} under {ruleset.version}")
    tier = match.tier
    if (
        ruleset.stability
        and held(
            ruleset, found, thresholds=thresholds, standing=standing, candidate=tier, zone=zone
        )
        is not None
    ):
        assert standing is not None  # noqa: S101 - only a standing can hold
        tier = ruleset.tier(standing.tier.id) or standing.tier
    if standing is not None and standing.tier.id == tier.id:
        if standing.ruleset_version != ruleset.version or standing.tier != tier:
            standing = Standing(tier, standing.since, ruleset.version)
        return standing, None
    after = Standing(tier, now, ruleset.version)
    change = Change(
        change_id(customer_id, cause, detail),
        customer_id,
        standing,
        after,
        found,
        match.levels,
        thresholds,
        ruleset.mode,
        cause,
        scored(ruleset, found),
        ruleset.plan.aggregates if ruleset.plan.features else NOTHING,
    )
    return after, change


def held(
    ruleset: Ruleset,
    found: Features,
    *,
    thresholds: Thresholds,
    standing: Standing | None,
    candidate: Tier,
    zone: ZoneInfo,
) -> Hold | None:
    """Whether stability (SPEC §10) keeps the customer in their tier instead of moving to
    `candidate`: a better-ranked candidate is taken at once; otherwise the current tier's
    `stay_while` (or its condition) holds them, and a move down waits for
    `min_days_in_tier` days in the current tier."""
    if not ruleset.stability or standing is None or standing.tier.id == candidate.id:
        return None
    current = ruleset.tier(standing.tier.id)
    if current is None or candidate.rank > current.rank:
        return None
    if stays(ruleset, current, found, thresholds):
        return Hold("stay_while", candidate)
    if candidate.rank < current.rank and ruleset.min_days_in_tier:
        until = dwell_end(standing, ruleset, zone)
        if found.day < until:
            return Hold("min_days_in_tier", candidate, until)
    return None


def dwell_end(standing: Standing, ruleset: Ruleset, zone: ZoneInfo) -> int:
    """The first day a customer may move to a lower rank (`min_days_in_tier` after the local
    day they entered their tier)."""
    return standing.since.astimezone(zone).date().toordinal() + ruleset.min_days_in_tier


def due_day(
    state: CustomerState,
    today: int,
    *,
    ruleset: Ruleset,
    thresholds: Thresholds,
    windows: Windows,
    standing: Standing | None = None,
    zone: ZoneInfo = UTC_ZONE,
) -> int:
    """The first day after `today` on which time alone could change the customer's tier."""
    due = due_from(of_state(state, today, windows), today, ruleset=ruleset, thresholds=thresholds)
    return due_beyond(due, state, today, ruleset=ruleset, standing=standing, zone=zone)


def due_beyond(
    due: int,
    state: CustomerState | None,
    today: int,
    *,
    ruleset: Ruleset,
    standing: Standing | None,
    zone: ZoneInfo,
) -> int:
    """`due` (from the built-in features) brought forward to when a declared window loses a
    day, or a dwell (`min_days_in_tier`) ends."""
    if due <= today + 1:
        return due
    if ruleset.plan.features and state is not None:
        leaves = declared.next_leave(state, today, ruleset.plan)
        if leaves is not None and leaves < due:
            due = leaves
    if ruleset.min_days_in_tier and standing is not None:
        end = dwell_end(standing, ruleset, zone)
        if today < end < due:
            due = end
    return max(due, today + 1)


def due_from(snap: Snapshot, today: int, *, ruleset: Ruleset, thresholds: Thresholds) -> int:
    """`due_day` from a snapshot that covers `today`: a day leaves a window (the snapshot's
    `stable_until`), or recency crosses the R threshold or a score band's edge. Conditions
    that read recency_days or tenure_days (or a score reads them linearly) can change any
    day. Early is safe (the customer is only evaluated again);
    late would miss a change."""
    if ruleset.daily:
        return today + 1
    due = snap.stable_until
    if snap.last_purchase is not None:
        crossing = snap.last_purchase + thresholds.recency_days + 1
        if today < crossing < due:
            due = crossing
    if ruleset.edges:  # recency or tenure through score bands: the days a band edge is met
        starts = {"recency_days": snap.last_purchase, "tenure_days": snap.first_day}
        for name, edges in ruleset.edges.items():
            start = starts[name]
            if start is None:
                continue
            for edge in edges:
                day = start + edge
                if today < day < due:
                    due = day
    return due


def change_id(customer_id: str, cause: EventCause | ClockReason, detail: str = "") -> str:
    """Stable: the same cause of the same customer's change always gives the same id."""
    reason = f"event|{cause.source}|{cause.id}" if isinstance(cause, EventCause) else cause
    digest = hashlib.sha256(f"{customer_id}|{reason}|{detail}".encode()).hexdigest()
    return digest[:32]


def direction(before: Standing | None, after: Standing) -> contract.Direction:
    if before is None:
        return "initial"
    if after.tier.rank > before.tier.rank:
        return "up"
    return "down" if after.tier.rank < before.tier.rank else "lateral"


def tier_contract(tier: Tier) -> contract.Tier:
    return contract.Tier.model_construct(
        id=tier.id,
        labels=contract.TierLabels.model_construct(zh=tier.label_zh, en=tier.label_en),
        rank=tier.rank,
        high_value=tier.high_value,
    )


def to_features(
    found: Features, zone: ZoneInfo, aggregates: Mapping[str, Aggregate] = NOTHING
) -> contract.Features:
    """Features are per local day: `as_of` is the start of that day in the business zone."""
    declared = {
        name: contract.DeclaredFeature.model_construct(
            aggregate=aggregates[name],
            value=declared_value(value, aggregates[name]),
            counts_since=None
            if name not in found.partial
            else date.fromordinal(found.partial[name]),
        )
        for name, value in found.declared.items()
    }
    return contract.Features.model_construct(
        as_of=day_start(found.day, zone),
        recency_days=found.recency_days,
        frequency=found.frequency,
        monetary=Decimal(found.monetary) / 100,
        frequency_90d=found.frequency_90d,
        monetary_90d=Decimal(found.monetary_90d) / 100,
        interactions_30d=found.interactions_30d,
        tenure_days=found.tenure_days,
        declared=declared,
    )


def declared_value(value: int | None, aggregate: str) -> int | Decimal | None:
    """A declared feature's value as the contract carries it: amounts in the base currency."""
    if value is None or aggregate not in declared.MONEY:
        return value
    return Decimal(value) / 100


def to_scores(scores: tuple[Scored, ...]) -> dict[str, contract.Score]:
    return {
        s.name: contract.Score.model_construct(
            value=s.value,
            components={
                p.name: contract.ScoreComponent.model_construct(
                    feature=p.feature,
                    value=p.value,
                    points=p.points,
                    weight=p.weight,
                    contribution=p.contribution,
                )
                for p in s.parts
            },
        )
        for s in scores
    }


@lru_cache(maxsize=4096)
def day_start(day: int, zone: ZoneInfo) -> datetime:
    """The instant a local day begins, in UTC (cached: a re-tier asks for the same few days
    for every change)."""
    return datetime.combine(date.fromordinal(day), time(0), zone).astimezone(UTC)
