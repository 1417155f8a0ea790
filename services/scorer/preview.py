"""`tierstream rules preview` and `POST /v1/rulesets/{version}/preview`: what a ruleset would
do to the live state.

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
from services.scorer.store.control import ControlRepository
from services.scorer.store.customers import ScorerRepository, StoredCustomer


@dataclass
class Preview:
    version: str
    thresholds: Thresholds
    customers: int = 0
    tiers: Counter[str] = field(default_factory=Counter)  # after activation
    moves: Counter[tuple[str, str]] = field(default_factory=Counter)  # from -> to, changes only
    samples: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # a few per move
    sample_size: int = 3

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
    samples: int = 3,
) -> Preview:
    """`samples`: how many customers each from -> to move names (the first in id order in
    each partition, partitions in order)."""
    ruleset = load_ruleset(text, "the previewed ruleset", scoring.windows)
    async with unit_of_work(make_session) as session:
        wall = now()
        control = ControlRepository(session, topic)
        found_candidate = await candidate(
            session, control, ruleset, scoring.windows, local_day(wall, scoring.zone)
        )
        found = Preview(ruleset.version, found_candidate.thresholds, sample_size=samples)
        parts = await control.partitions()
        repository = ScorerRepository(session)
        for partition, part in sorted(parts.items()):
            moment = (part.clock or wall) if clock == "event" else wall
            await _partition(
                repository,
                partition,
                candidate=found_candidate,
                scoring=scoring,
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


@dataclass(frozen=True, slots=True)
class Candidate:
    """A ruleset as activating it now would apply it: with its thresholds in force and the
    declared streams tracked as the activation would leave them."""

    ruleset: Ruleset
    thresholds: Thresholds
    tracking: Tracking


async def candidate(
    session: AsyncSession,
    control: ControlRepository,
    ruleset: Ruleset,
    windows: Windows,
    today: int,
) -> Candidate:
    thresholds = await _thresholds(session, ruleset, windows, today)
    return Candidate(ruleset, thresholds, await _tracking(control, ruleset))


def would_be(
    stored: StoredCustomer, candidate: Candidate, scoring: Scoring, moment: datetime
) -> tuple[str, bool]:
    """The tier activating `candidate` at `moment` would give the customer, and whether
    that is a change: the re-tier's decision (`judge`, cause `ruleset_activated`) on the
    stored row. `stored` comes with its state unless its snapshot covers the day (and the
    ruleset reads no declared feature or profile)."""
    ruleset = candidate.ruleset
    day = local_day(moment, scoring.zone)
    snap = snapshot_at(stored, day, scoring.windows)
    today = max(day, snap.day)
    if not ruleset.needs_state:
        features = snap.features(today)
    else:
        state = codec.decode(stored.state or b"", scoring.windows)
        features = inputs(state, today, scoring.windows, ruleset, candidate.tracking)
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
        thresholds=candidate.thresholds,
        now=moment,
        zone=scoring.zone,
    )
    return new.tier.id, change is not None


async def _partition(
    repository: ScorerRepository,
    partition: int,
    *,
    candidate: Candidate,
    scoring: Scoring,
    moment: datetime,
    found: Preview,
) -> None:
    day = local_day(moment, scoring.zone)
    after = ""
    lazy = not candidate.ruleset.needs_state
    while page := await repository.page(partition, day, after, PAGE, lazy=lazy):
        for stored in page:
            tier, changed = would_be(stored, candidate, scoring, moment)
            found.customers += 1
            found.tiers[tier] += 1
            if changed:
                move = (stored.tier or "none", tier)
                found.moves[move] += 1
                named = found.samples.setdefault(move, [])
                if len(named) < found.sample_size:
                    named.append(stored.customer_id)
        after = page[-1].customer_id
        if len(page) < PAGE:
            break


async def _thresholds(
    session: AsyncSession, ruleset: Ruleset, windows: Windows, today: int
) -> Thresholds:
    if ruleset.mode == "fixed":
        return ruleset.thresholds
    population = Population(*await ScorerRepository(session).population(today, windows.main))
    return population.thresholds(ruleset.thresholds)
