"""`tierstream rules preview` and `activate`: what a ruleset would do to the live state, and
making it the active one.

The preview reads every customer and decides with the same pure function the re-tier uses
after activation (`scoring.rescore`, at the same day), so it shows exactly the changes the
activation will emit — unless events arrive in between. It writes nothing.
"""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.db.unit_of_work import unit_of_work
from services.scorer.core import codec, rules
from services.scorer.core.config import Scoring
from services.scorer.core.declared import Tracking
from services.scorer.core.facts import local_day
from services.scorer.core.rules import Ruleset, Thresholds
from services.scorer.core.scoring import Standing, inputs, judge
from services.scorer.core.state import Windows
from services.scorer.rescoring import PAGE, snapshot_at
from services.scorer.standards import Population, load_ruleset
from services.scorer.store.control import ControlRepository, StoredRuleset
from services.scorer.store.customers import ScorerRepository


@dataclass
class Preview:
    version: str
    thresholds: Thresholds
    customers: int = 0
    tiers: Counter[str] = field(default_factory=Counter)  # after activation
    moves: Counter[tuple[str, str]] = field(default_factory=Counter)  # from -> to, changes only

    def render(self) -> str:
        lines = [
            f"ruleset {self.version}: {self.customers} customers, "
            f"{sum(self.moves.values())} would change tier",
            "",
            "tier distribution after activation:",
        ]
        lines += [f"  {tier:<24} {count:>10}" for tier, count in self.tiers.most_common()]
        lines += ["", "changes (from -> to):"]
        lines += [
            f"  {before:<24} -> {after:<24} {count:>10}"
            for (before, after), count in sorted(self.moves.items())
        ] or ["  none"]
        return "\n".join(lines)


async def preview(
    make_session: async_sessionmaker[AsyncSession],
    text: str,
    *,
    scoring: Scoring,
    topic: str,
    clock: str,
    now: Callable[[], datetime],
) -> Preview:
    ruleset = load_ruleset(text, "the previewed ruleset", scoring.windows)
    async with unit_of_work(make_session) as session:
        wall = now()
        thresholds = await _thresholds(session, ruleset, scoring, local_day(wall, scoring.zone))
        found = Preview(ruleset.version, thresholds)
        control = ControlRepository(session, topic)
        parts = await control.partitions()
        repository = ScorerRepository(session)
        tracking = await _tracking(control, ruleset)
        for partition, part in sorted(parts.items()):
            moment = (part.clock or wall) if clock == "event" else wall
            await _partition(
                repository,
                partition,
                ruleset=ruleset,
                thresholds=thresholds,
                scoring=scoring,
                tracking=tracking,
                moment=moment,
                found=found,
            )
    return found


NEVER = 2**62  # an activation no track was started under


async def _tracking(control: ControlRepository, ruleset: Ruleset) -> Tracking:
    """The streams as the activation will leave them: those tracked now go on, the others
    start with it (every customer's track of them counts from then on)."""
    if not ruleset.plan.streams:
        return Tracking()
    tracked = await control.tracked_streams()
    return Tracking(NEVER, {key: tracked.get(key, NEVER) for key in ruleset.plan.keys})


async def activate(
    make_session: async_sessionmaker[AsyncSession], text: str, source: str, windows: Windows
) -> StoredRuleset:
    """Validates and activates; every running scorer re-tiers its partitions within its
    maintenance interval and emits the changes."""
    ruleset = load_ruleset(text, source, windows)
    async with unit_of_work(make_session) as session:
        return await ControlRepository(session, "").activate(
            ruleset.version, text, ruleset.plan.keys
        )


async def _partition(
    repository: ScorerRepository,
    partition: int,
    *,
    ruleset: Ruleset,
    thresholds: Thresholds,
    scoring: Scoring,
    tracking: Tracking,
    moment: datetime,
    found: Preview,
) -> None:
    day = local_day(moment, scoring.zone)
    after = ""
    lazy = not ruleset.needs_state
    while page := await repository.page(partition, day, after, PAGE, lazy=lazy):
        for stored in page:
            snap = snapshot_at(stored, day, scoring.windows)
            today = max(day, snap.day)
            if lazy:
                features = snap.features(today)
            else:
                state = codec.decode(stored.state or b"", scoring.windows)
                features = inputs(state, today, scoring.windows, ruleset, tracking)
            standing = None
            if stored.tier is not None and stored.tier_since is not None:
                standing = Standing(
                    rules.placeholder(stored.tier), stored.tier_since, stored.ruleset_version or ""
                )
            new, change = judge(
                stored.customer_id,
                features,
                standing,
                cause="ruleset_activated",
                detail=ruleset.version,
                ruleset=ruleset,
                thresholds=thresholds,
                now=moment,
                zone=scoring.zone,
            )
            found.customers += 1
            found.tiers[new.tier.id] += 1
            if change is not None:
                found.moves[(stored.tier or "none", new.tier.id)] += 1
        after = page[-1].customer_id
        if len(page) < PAGE:
            break


async def _thresholds(
    session: AsyncSession, ruleset: Ruleset, scoring: Scoring, today: int
) -> Thresholds:
    if ruleset.mode == "fixed":
        return ruleset.thresholds
    population = Population(
        *await ScorerRepository(session).population(today, scoring.windows.main)
    )
    return population.thresholds(ruleset.thresholds)
