"""Customers rescored from their stored rows, for the day-boundary sweep and the re-tier
after a new ruleset or new population thresholds: a row's snapshot gives its features (its
state is decoded only when the snapshot no longer covers the day), and only what moved is
written back. The Workset (services/scorer/workset.py) drives it, skipping the customers
it holds in memory (their copy there is newer) and collecting the tier changes with its
own, so that they reach the history in order.
"""

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Container
from datetime import datetime

from services.scorer.core import codec
from services.scorer.core.config import Scoring
from services.scorer.core.rules import Tier, evaluate
from services.scorer.core.scoring import (
    Change,
    ClockReason,
    Standard,
    Standing,
    due_beyond,
    due_from,
    inputs,
    judge,
)
from services.scorer.core.snapshot import Snapshot
from services.scorer.core.state import CustomerState, Features, Windows
from services.scorer.store.customers import Rescheduled, Rescored, ScorerRepository, StoredCustomer

TierLookup = Callable[[str, str], Tier]  # (ruleset version, tier id) -> the tier
Counts = Counter[tuple[int, str]]  # (partition, tier) -> customers moved in or out
Place = tuple[int, str | None]  # a customer's partition and tier (None: none yet)
PAGE = 5000
CHUNK = 1000  # rescored per statement: the unit of overlap between Python and PostgreSQL


def snapshot_at(stored: StoredCustomer, day: int, windows: Windows) -> Snapshot:
    """The customer's snapshot for `day`: the stored one, or one from the state when the
    query sent it (it does when the stored snapshot does not cover the day)."""
    if stored.state is not None:
        return codec.snapshot(stored.state, day, windows)
    if stored.snapshot is None or not stored.snapshot.covers(day):
        raise ValueError(f"customer {stored.customer_id} came without its state for day {day}")
    return stored.snapshot


def recount(counts: Counts, was: Place | None, now: Place) -> None:
    """Moves one customer's count from where its row had it (None: no row yet) to where it
    is now."""
    if was == now:
        return
    if was is not None and was[1] is not None:
        counts[(was[0], was[1])] -= 1
    if now[1] is not None:
        counts[(now[0], now[1])] += 1


def standing_of(stored: StoredCustomer, standard: Standard, tiers: TierLookup) -> Standing | None:
    """The stored standing; a tier of an older ruleset is looked up in that ruleset."""
    if stored.tier is None or stored.tier_since is None:
        return None
    version = stored.ruleset_version or standard.ruleset.version
    return Standing(tiers(version, stored.tier), stored.tier_since, version)


class Rescorer:
    def __init__(
        self,
        repository: ScorerRepository,
        *,
        scoring: Scoring,
        standard: Standard,
        tiers: TierLookup,
        newer: Container[str],
        changes: list[tuple[int, Change]],
        counts: Counts,
    ) -> None:
        self._repository = repository
        self._scoring = scoring
        self._windows = scoring.windows
        self._standard = standard
        self._tiers = tiers
        self._newer = newer
        self._changes = changes
        self._counts = counts

    async def pages(
        self,
        partition: int,
        fetch: Callable[[str, int], Awaitable[list[StoredCustomer]]],
        after: str,
        *,
        day: int,
        now: datetime,
        cause: ClockReason,
        detail: str,
        budget: int,
    ) -> tuple[str | None, int]:
        """Rescored page by page from storage, the partition's pages `fetch` reads (customers
        in memory are newer and skipped);
        returns where to continue (None: no page left) and how many were examined. A chunk's
        writes go out while the next chunk is computed (PostgreSQL and Python on two cores);
        only one statement is ever in flight on the session."""
        limit, examined = min(PAGE, budget), 0
        moved: list[Rescored | Rescheduled] = []
        page = await fetch(after, limit)
        while page:
            for start in range(0, len(page), CHUNK):
                chunk = page[start : start + CHUNK]
                moved = await self._overlapped(
                    partition, moved, chunk, day=day, now=now, cause=cause, detail=detail
                )
            after, examined = page[-1].customer_id, examined + len(page)
            if len(page) < limit:
                break
            if examined >= budget:
                await self._repository.rescored(partition, moved)
                return after, examined
            page = await fetch(after, limit)
        await self._repository.rescored(partition, moved)
        return None, examined

    async def _overlapped(
        self,
        partition: int,
        moved: list[Rescored | Rescheduled],
        chunk: list[StoredCustomer],
        *,
        day: int,
        now: datetime,
        cause: ClockReason,
        detail: str,
    ) -> list[Rescored | Rescheduled]:
        """Writes what the previous chunk moved while this chunk is computed; returns what
        this one moved (written by the next call, or by the caller)."""
        writing = (
            asyncio.create_task(self._repository.rescored(partition, moved)) if moved else None
        )
        await asyncio.sleep(0)  # the write is sent before the computing starts
        try:
            return self._rows(chunk, day, now, cause, detail)
        finally:
            if writing is not None:
                await writing

    def _rows(
        self, page: list[StoredCustomer], day: int, now: datetime, cause: ClockReason, detail: str
    ) -> list[Rescored | Rescheduled]:
        """Customers are rescored from their row (their snapshot, or their state when the
        snapshot does not cover the day); only those that moved are returned, to write."""
        moved = []
        for stored in page:
            if stored.customer_id not in self._newer:  # the copy in memory is newer
                one = self._one(stored, day, now, cause, detail)
                if one is not None:
                    moved.append(one)
        return moved

    def _one(
        self, stored: StoredCustomer, day: int, now: datetime, cause: ClockReason, detail: str
    ) -> Rescored | Rescheduled | None:
        snap = snapshot_at(stored, day, self._windows)
        today = max(day, snap.day)
        ruleset, thresholds = self._standard.ruleset, self._standard.thresholds
        due = due_from(snap, today, ruleset=ruleset, thresholds=thresholds)
        state: CustomerState | None = None
        if ruleset.needs_state:  # declared features and the profile are in the state alone
            if stored.state is None:
                raise ValueError(f"customer {stored.customer_id} came without its state")
            state = codec.decode(stored.state, self._windows)
            found = inputs(state, today, self._windows, ruleset, self._standard.tracking)
        else:
            found = snap.features(today)
        if ruleset.stability or ruleset.plan.features:
            return self._judged(stored, found, snap, state, day, now, cause, detail, due)
        match = evaluate(ruleset, found, thresholds)
        if match is not None and match.tier.id == stored.tier:
            if cause != "time_passed" and due >= stored.due_day and stored.state is None:
                return None  # the tier stands, the due day is no earlier, the snapshot is stored
            return Rescheduled(stored.customer_id, due, snap)
        standing, change = judge(
            stored.customer_id,
            found,
            standing_of(stored, self._standard, self._tiers),
            cause=cause,
            detail=detail,
            ruleset=ruleset,
            thresholds=thresholds,
            now=now,
            zone=self._scoring.zone,
        )
        if change is not None:
            self._changes.append((stored.partition, change))
        recount(self._counts, (stored.partition, stored.tier), (stored.partition, standing.tier.id))
        return Rescored(
            stored.customer_id,
            standing.tier.id,
            standing.since,
            standing.ruleset_version,
            stored.change_id if change is None else change.change_id,
            due,
            snap,
        )

    def _judged(  # noqa: PLR0917 - one customer's whole rescoring, as `_one`'s
        self,
        stored: StoredCustomer,
        found: Features,
        snap: Snapshot,
        state: CustomerState | None,
        day: int,
        now: datetime,
        cause: ClockReason,
        detail: str,
        due: int,
    ) -> Rescored | Rescheduled | None:
        """`_one` for a ruleset with stability or declared features: the tier depends on the
        standing (held or not), and the due day on the state's declared windows and the
        dwell; the customer is judged as an event would judge them."""
        standard = self._standard
        zone = self._scoring.zone
        was = standing_of(stored, standard, self._tiers)
        standing, change = judge(
            stored.customer_id,
            found,
            was,
            cause=cause,
            detail=detail,
            ruleset=standard.ruleset,
            thresholds=standard.thresholds,
            now=now,
            zone=zone,
        )
        due = due_beyond(
            due, state, found.day, ruleset=standard.ruleset, standing=standing, zone=zone
        )
        if change is None and standing.tier.id == stored.tier:
            if cause != "time_passed" and due >= stored.due_day and stored.state is None:
                return None
            return Rescheduled(stored.customer_id, due, snap)
        if change is not None:
            self._changes.append((stored.partition, change))
        recount(self._counts, (stored.partition, stored.tier), (stored.partition, standing.tier.id))
        return Rescored(
            stored.customer_id,
            standing.tier.id,
            standing.since,
            standing.ruleset_version,
            stored.change_id if change is None else change.change_id,
            due,
            snap,
        )
