"""The shadow ruleset (SPEC §11): evaluated beside the active one for every event and every
day boundary, in the scorer's own transactions, emitting nothing.

A customer's shadow tier is the tier that activating the shadow ruleset at that moment would
give them: the re-tier's own decision on their stored row (`preview.would_be`, which the
preview shares and which the preview = activation tests hold to the re-tier). Each customer's
pair (active tier, shadow tier) is kept as last counted, and the agreement matrix as
counters (per partition, like the customers per tier) moved by the difference, so reading it
scans no customer; whenever it is current, its cells off the diagonal are exactly the
from -> to moves a promotion would make.

When a pair is computed:
- after each batch, for the customers whose events the batch applied (their new rows);
- by a pass over a partition's customers in id order, in the maintenance transactions (after
  its re-tier and its day-boundary sweep, budgeted like them, continued after its cursor),
  whenever the shadow, the active standard or the day changed since the partition's last
  pass. That covers the start, every activation and change of the population thresholds,
  and every day boundary: a tier that moves with time alone moves in the next day's pass,
  which costs a read of every customer a day while a shadow runs (stated in the README).
"""

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.scorer.core.config import Scoring
from services.scorer.core.scoring import Standard
from services.scorer.preview import Candidate, candidate, would_be
from services.scorer.standards import load_ruleset
from services.scorer.store.control import ControlRepository
from services.scorer.store.customers import ScorerRepository, StoredCustomer
from services.scorer.store.shadow import ShadowRepository


@dataclass(frozen=True, slots=True)
class ShadowRun:
    version: str
    run: int  # the shadow's start (ruleset_shadow.run)
    standard: str  # the key of the active standard the candidate was made for
    candidate: Candidate

    def key(self, day: int) -> str:
        return pass_key(self.run, self.standard, day)


def pass_key(run: int, standard: str, day: int) -> str:
    """What a partition's pass is for: a shadow run, under a standard, on a day."""
    return f"{run}|{standard}|{day}"


class Shadows:
    """The shadow ruleset as this instance knows it: reloaded with the standard (by the
    handler that refreshes it), rebuilt when the shadow or the active standard changes."""

    def __init__(self, scoring: Scoring) -> None:
        self._scoring = scoring
        self.current: ShadowRun | None = None

    async def refresh(self, session: AsyncSession, standard: Standard, today: int) -> None:
        found = await ShadowRepository(session).current()
        if found is None:
            self.current = None
            return
        now = self.current
        if now is not None and (now.run, now.standard) == (found.run, standard.key):
            return
        control = ControlRepository(session, "")
        stored = await control.ruleset(found.version)
        if stored is None:  # the foreign key keeps it
            raise LookupError(f"the shadow ruleset {found.version!r} is not stored")
        ruleset = load_ruleset(stored.body, f"ruleset {found.version}", self._scoring.windows)
        made = await candidate(session, control, ruleset, self._scoring.windows, today)
        self.current = ShadowRun(found.version, found.run, standard.key, made)


class ShadowWork:
    """One transaction's shadow work: pairs computed, saved and counted."""

    def __init__(self, session: AsyncSession, run: ShadowRun, scoring: Scoring) -> None:
        self._customers = ScorerRepository(session)
        self._shadow = ShadowRepository(session, run.run)
        self._run = run
        self._scoring = scoring

    async def customers(
        self, keys: Collection[tuple[str, int]], moments: Mapping[int, datetime]
    ) -> None:
        """The pairs of these (customer id, partition) keys, from their rows as the
        transaction left them; `moments`: each partition's now."""
        if keys:
            rows = await self._customers.load(keys)
            await self._apply(rows.values(), moments)

    async def page(
        self, partition: int, after: str, budget: int, moment: datetime, day: int
    ) -> tuple[str | None, int]:
        """A step of the partition's pass: customers after `after`, about `budget` of
        them; returns where to continue (None: the pass is complete) and how many."""
        lazy = not self._run.candidate.ruleset.needs_state
        examined = 0
        limit = min(PAGE, max(budget, 1))
        while page := await self._customers.page(partition, day, after, limit, lazy=lazy):
            await self._apply(page, {partition: moment})
            after, examined = page[-1].customer_id, examined + len(page)
            if len(page) < limit:
                return None, examined
            if examined >= budget:
                return after, examined
        return None, examined

    async def _apply(self, rows: Iterable[StoredCustomer], moments: Mapping[int, datetime]) -> None:
        rows = list(rows)
        counted = await self._shadow.pairs([(row.customer_id, row.partition) for row in rows])
        pairs = []
        deltas: Counter[tuple[int, str, str]] = Counter()
        for row in rows:
            active = row.tier or "none"
            shadow, _ = would_be(row, self._run.candidate, self._scoring, moments[row.partition])
            was = counted.get(row.customer_id)
            if was == (active, shadow):
                continue
            if was is not None:
                deltas[(row.partition, *was)] -= 1
            deltas[(row.partition, active, shadow)] += 1
            pairs.append((row.customer_id, row.partition, active, shadow))
        await self._shadow.save(pairs)
        await self._shadow.count(deltas)


PAGE = 5000
