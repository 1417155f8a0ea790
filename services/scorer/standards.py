"""The rulesets known to this instance and the standard customers are scored with now.

The active ruleset lives in PostgreSQL (`tierstream rules activate`, or the configured file
when none was ever activated), so every instance scores with the same one. In population
mode the thresholds are the means over customers active in the main window, recomputed by
one instance at a time at most every `refresh` and shared through PostgreSQL.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.scorer.core import rules
from services.scorer.core.declared import Tracking
from services.scorer.core.rules import Ruleset, Thresholds, Tier
from services.scorer.core.scoring import Standard
from services.scorer.core.state import Windows
from services.scorer.store.control import ControlRepository, StoredThresholds
from services.scorer.store.customers import ScorerRepository
from services.scorer.store.lifecycle import LifecycleRepository

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Population:
    """The thresholds of population mode from the means of the active customers:
    F high when frequency >= mean, so the integer threshold is ceil(mean); M likewise on
    minor units; R high when recency_days <= mean, so floor(mean)."""

    active: int
    frequency: Decimal | None
    monetary: Decimal | None
    recency_days: Decimal | None

    def thresholds(self, fallback: Thresholds) -> Thresholds:
        if not self.active or self.frequency is None:
            return fallback
        return Thresholds(
            recency_days=math.floor(self.recency_days or 0),
            frequency=math.ceil(self.frequency),
            monetary=math.ceil(self.monetary or 0),
        )


class Standards:
    def __init__(self, topic: str, configured: str, *, refresh: timedelta, windows: Windows):
        self._topic = topic
        self._configured = configured
        self._refresh = refresh
        self._windows = windows
        self._main_window = windows.main
        self._known: dict[str, Ruleset] = {}
        self._standard: Standard | None = None

    @property
    def standard(self) -> Standard:
        if self._standard is None:
            raise RuntimeError("the standards was not loaded (Standards.refresh)")
        return self._standard

    @property
    def known(self) -> Mapping[str, Ruleset]:
        """Every ruleset this instance loaded (the active one and those active before)."""
        return self._known

    def tier(self, version: str, tier_id: str) -> Tier:
        """A tier of any ruleset ever activated (the stored tier of a customer who has not
        been re-tiered yet may come from an older one)."""
        found = self._known.get(version)
        tier = None if found is None else found.tier(tier_id)
        if tier is None:
            tier = self.standard.ruleset.tier(tier_id)
        return tier or rules.placeholder(tier_id)

    async def refresh(self, session: AsyncSession, today: int, now: datetime) -> Standard:
        control = ControlRepository(session, self._topic)
        active = await control.active_ruleset()
        if active is None:
            configured = load_ruleset(self._configured, "the configured ruleset", self._windows)
            active = await control.activate(
                configured.version, self._configured, configured.plan.keys
            )
            await LifecycleRepository(session).audit(
                "configuration",
                "activated",
                active.version,
                "the configured ruleset file (none was ever activated)",
                {"activation": active.activation, "cause": "configuration"},
            )
            log.info("ruleset_activated", version=active.version, by="configuration")
        ruleset = self._known.get(active.version)
        if ruleset is None:
            ruleset = self._known[active.version] = self._load(active.body, active.version)
        for old in await control.rulesets_missing(list(self._known)):
            self._known[old.version] = self._load(old.body, old.version)
        thresholds, generation = ruleset.thresholds, 0
        if ruleset.mode == "population":
            thresholds, generation = await self._population(session, control, ruleset, today, now)
        assert active.activation is not None  # noqa: S101 - the active one was activated
        tracking = Tracking(active.activation)
        if ruleset.plan.streams:
            tracking = Tracking(active.activation, await control.tracked_streams())
        self._standard = Standard(ruleset, thresholds, active.activation, generation, tracking)
        return self._standard

    def _load(self, text: str, source: str) -> Ruleset:
        return load_ruleset(text, source, self._windows)

    async def _population(
        self,
        session: AsyncSession,
        control: ControlRepository,
        ruleset: Ruleset,
        today: int,
        now: datetime,
    ) -> tuple[Thresholds, int]:
        """The thresholds in force and their generation."""
        stored = await control.population_thresholds(self._refresh.total_seconds())
        stale = stored is None or stored.stale
        if stale and await control.lock_population():
            found = Population(
                *await ScorerRepository(session).population(today, self._main_window)
            )
            t = found.thresholds(ruleset.thresholds)
            stored = StoredThresholds(t.recency_days, t.frequency, t.monetary)
            stored = replace(stored, generation=await control.save_population_thresholds(stored))
            log.info("population_thresholds", active=found.active, thresholds=t)
        if stored is None:
            return ruleset.thresholds, 0
        return Thresholds(stored.recency_days, stored.frequency, stored.monetary), stored.generation


def load_ruleset(text: str, source: str, windows: Windows) -> Ruleset:
    """A ruleset as this deployment's windows allow it: declared windows up to the longest
    built-in one, and "the whole history" as long as the state keeps days."""
    longest = max(windows.main, windows.short, windows.interactions)
    return rules.load(text, source, max_window=longest, retained=windows.retained)
