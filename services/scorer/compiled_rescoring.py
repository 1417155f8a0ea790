"""The re-tier and the wall clock's day-boundary sweep on the compiled path: pages of stored
customers read as rows, rescored by the engine (`Engine.rescore`, held equal to
services/scorer/rescoring.py's Rescorer), and only what moved written back. The tier changes
stay in the engine with the transaction's others, so that the batch puts them all in the
history and the outbox in order (services/scorer/compiled_batch.py).

The same interface as the work set's `sweep` and `retier` (services/scorer/workset.py), which
the handler calls for either path."""

from datetime import datetime

import tierstream_native

from services.scorer.compiled import micros
from services.scorer.core.scoring import ClockReason
from services.scorer.rescoring import PAGE
from services.scorer.store.columns import ColumnRepository
from services.scorer.store.tiers import TierRepository

FIRST_DAY = -(2**31)  # below every due day: the sweep's first page starts at the lowest


class CompiledRescoring:
    def __init__(
        self,
        engine: tierstream_native.Engine,
        columns: ColumnRepository,
        tiers: TierRepository,
    ) -> None:
        self._engine = engine
        self._columns = columns
        self._tiers = tiers

    async def sweep(
        self, partition: int, day: int, now: datetime, *, budget: int
    ) -> tuple[bool, int]:
        """Customers of the partition due by `day`, judged at `day` (time passed), about
        `budget` of them; returns (none is left, how many were examined). Each one swept
        gets a later due day, so the next transaction continues where this one stopped."""
        cursor, examined = await self._pages(
            partition, day, now, "time_passed", str(day), after="", budget=budget, due_only=True
        )
        return cursor is None, examined

    async def retier(
        self,
        partition: int,
        day: int,
        now: datetime,
        cause: ClockReason,
        detail: str,
        *,
        after: str,
        budget: int,
    ) -> tuple[str | None, int]:
        """Customers of the partition after `after` (in id order) under the current
        standard, about `budget` of them; returns where to continue (None when the
        partition is done) and how many were examined."""
        return await self._pages(
            partition, day, now, cause, detail, after=after, budget=budget, due_only=False
        )

    async def _pages(
        self,
        partition: int,
        day: int,
        now: datetime,
        cause: ClockReason,
        detail: str,
        *,
        after: str,
        budget: int,
        due_only: bool,
    ) -> tuple[str | None, int]:
        limit, examined, due = min(PAGE, budget), 0, FIRST_DAY
        while True:
            if due_only:
                page = await self._columns.due_page(partition, day, (due, after), limit)
            else:
                page = await self._columns.rescan(partition, day, after, limit)
            if not page:
                return None, examined
            moved, rescheduled, counts = self._engine.rescore(page, day, micros(now), cause, detail)
            await self._columns.rescored(partition, moved, rescheduled)
            await self._tiers.count_tiers({(p, tier): delta for p, tier, delta in counts})
            after, due, examined = page[-1][0], page[-1][6], examined + len(page)
            if len(page) < limit:
                return None, examined
            if examined >= budget:
                return after, examined
