"""The customers of one partition that one transaction touches: loaded once, moved by the
pure core (services/scorer/scoring.py), saved once with their tier changes in the outbox.

Events, the day-boundary sweep and the re-tier after a ruleset or threshold change all go
through here, so a customer is never changed by two paths with two different copies.
"""

import asyncio
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from services.db.outbox import Outbox
from services.scorer import state_codec
from services.scorer.publisher import change_records
from services.scorer.repository import HistoryEntry, Rescored, ScorerRepository, StoredCustomer
from services.scorer.rfm import CustomerState, Fact, Windows
from services.scorer.rules import Tier, evaluate
from services.scorer.scoring import (
    Change,
    ClockReason,
    EventCause,
    Standard,
    Standing,
    due_from,
    judge,
    rescore,
    score_event,
)
from services.scorer.snapshot import Snapshot, of_state

TierLookup = Callable[[str, str], Tier]  # (ruleset version, tier id) -> the tier
PAGE = 5000
KEEP_AT_MOST = 20_000  # entries held in memory before clean ones are dropped


@dataclass(frozen=True, slots=True)
class Scoring:
    """Configuration of the pure core, built from settings by main."""

    zone: ZoneInfo
    windows: Windows
    base_currency: str
    rates: Mapping[str, Decimal]


@dataclass(frozen=True, slots=True)
class OutTopics:
    tier_changes: str
    customer_tiers: str
    dead_letters: str


@dataclass(slots=True)
class _Entry:
    partition: int
    state: CustomerState
    encoded: bytes | None  # the stored bytes while the state is unchanged
    standing: Standing | None
    change_id: str | None
    due: int | None  # None: to be computed (once per batch, not once per event)
    day: int  # the day it was last evaluated at
    dirty: bool


def snapshot_at(stored: StoredCustomer, day: int, windows: Windows) -> Snapshot:
    """The customer's snapshot for `day`: the stored one, or one from the state when the
    query sent it (it does when the stored snapshot does not cover the day)."""
    if stored.state is not None:
        return state_codec.snapshot(stored.state, day, windows)
    if stored.snapshot is None:
        raise ValueError(f"customer {stored.customer_id} has neither state nor snapshot")
    return stored.snapshot


class Workset:
    def __init__(
        self,
        repository: ScorerRepository,
        outbox: Outbox,
        *,
        scoring: Scoring,
        standard: Standard,
        tiers: TierLookup,
        topics: OutTopics,
    ) -> None:
        self._repository = repository
        self._outbox = outbox
        self._scoring = scoring
        self._standard = standard
        self._tiers = tiers
        self._topics = topics
        self._entries: dict[str, _Entry] = {}
        self._changes: list[Change] = []
        self.emitted: list[Change] = []  # every change flushed so far (for metrics and logs)

    async def preload(self, customer_ids: Iterable[str]) -> None:
        missing = [c for c in set(customer_ids) if c not in self._entries]
        if missing:
            for customer_id, stored in (await self._repository.load(missing)).items():
                self._entries[customer_id] = self._entry(stored)

    def score(
        self,
        customer_id: str,
        partition: int,
        fact: Fact,
        cause: EventCause,
        *,
        clock_day: int,
        now: datetime,
    ) -> Change | None:
        entry = self._entries.get(customer_id)
        state, standing, change = score_event(
            customer_id,
            None if entry is None else entry.state,
            None if entry is None else entry.standing,
            fact,
            cause,
            ruleset=self._standard.ruleset,
            thresholds=self._standard.thresholds,
            windows=self._scoring.windows,
            clock_day=clock_day,
            now=now,
        )
        day = max(clock_day, state.anchor)
        self._entries[customer_id] = _Entry(
            partition,
            state,
            None,
            standing,
            change.change_id if change else (entry.change_id if entry else None),
            None,
            day,
            dirty=True,
        )
        if change is not None:
            self._changes.append(change)
        return change

    async def sweep(
        self, partition: int, day: int, now: datetime, *, budget: int, keep: Collection[str] = ()
    ) -> tuple[bool, int]:
        """Time-driven changes: customers of the partition whose due day has come, evaluated
        at `day`, at most about `budget` of them from storage; returns (none is left, how
        many were examined). Each one swept gets a later due day, so the next transaction
        continues where this one stopped."""
        self.sweep_loaded(partition, day, now)

        def due(after: str, limit: int) -> Awaitable[list[StoredCustomer]]:
            return self._repository.due(partition, day, after, limit)

        cursor, examined = await self._rescore_pages(
            due, "", day=day, now=now, cause="time_passed", detail=str(day), budget=budget
        )
        await self._trim(keep)
        return cursor is None, examined

    async def load_due(self, partition: int, day: int) -> None:
        """Loads the customers of the partition due by `day`, so that the sweeps of every
        day up to it (`sweep_loaded`) need no further query: a customer not loaded now is
        stored with a later due day."""
        after = ""
        while page := await self._repository.due(partition, day, after, PAGE, lazy=False):
            for stored in page:
                if stored.customer_id not in self._entries:
                    self._entries[stored.customer_id] = self._entry(stored)
            after = page[-1].customer_id
            if len(page) < PAGE:
                break

    def sweep_loaded(self, partition: int, day: int, now: datetime) -> None:
        """`sweep` over the customers in memory, after `load_due` for a day >= `day`."""
        for customer_id, entry in list(self._entries.items()):
            if entry.partition == partition and self._due_of(entry) <= day:
                self._rescore(
                    customer_id, entry, day=day, now=now, cause="time_passed", detail=str(day)
                )

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
        """Customers of the partition after `after` (in id order) under the current standard
        (a new ruleset or new population thresholds), about `budget` of them; returns where
        to continue (None when the partition is done) and how many were examined. Only
        customers whose tier or due day moved are written."""

        def page(after: str, limit: int) -> Awaitable[list[StoredCustomer]]:
            return self._repository.page(partition, day, after, limit)

        cursor, examined = await self._rescore_pages(
            page, after, day=day, now=now, cause=cause, detail=detail, budget=budget
        )
        await self._trim(())
        return cursor, examined

    async def flush(self) -> None:
        """Saves the changed customers, their history and their outgoing records."""
        dirty = [(c, e) for c, e in self._entries.items() if e.dirty]
        await self._repository.save([self._stored(c, e) for c, e in dirty])
        for _, entry in dirty:
            entry.dirty = False
        changes, self._changes = self._changes, []
        if not changes:
            return
        records = [change_records(change, self._scoring.zone) for change in changes]
        await self._repository.add_history(
            [
                HistoryEntry(c.change_id, c.customer_id, c.after.since, changed.value)
                for c, (changed, _) in zip(changes, records, strict=True)
            ]
        )
        await self._outbox.add(self._topics.tier_changes, [changed for changed, _ in records])
        await self._outbox.add(self._topics.customer_tiers, [latest for _, latest in records])
        self.emitted += changes

    async def _rescore_pages(
        self,
        fetch: Callable[[str, int], Awaitable[list[StoredCustomer]]],
        after: str,
        *,
        day: int,
        now: datetime,
        cause: ClockReason,
        detail: str,
        budget: int,
    ) -> tuple[str | None, int]:
        """Rescored page by page from storage (customers in memory are newer and skipped);
        returns where to continue (None: no page left) and how many were examined. A page's
        writes go out while the next page is computed (PostgreSQL and Python on two cores);
        only one statement is ever in flight on the session."""
        limit, examined = min(PAGE, budget), 0
        moved: list[Rescored] = []
        page = await fetch(after, limit)
        while page:
            writing = asyncio.create_task(self._repository.rescored(moved)) if moved else None
            await asyncio.sleep(0)  # the write is sent before the computing starts
            try:
                moved = self._rescore_rows(page, day, now, cause, detail)
            finally:
                if writing is not None:
                    await writing
            after, examined = page[-1].customer_id, examined + len(page)
            if len(page) < limit:
                break
            if examined >= budget:
                await self._repository.rescored(moved)
                return after, examined
            page = await fetch(after, limit)
        await self._repository.rescored(moved)
        return None, examined

    def _rescore_rows(
        self, page: list[StoredCustomer], day: int, now: datetime, cause: ClockReason, detail: str
    ) -> list[Rescored]:
        """Customers are rescored from their row (their snapshot, or their state when the
        snapshot does not cover the day); only those that moved are returned, to write."""
        moved = []
        for stored in page:
            if stored.customer_id not in self._entries:  # else the copy in memory is newer
                one = self._rescore_stored(stored, day, now, cause, detail)
                if one is not None:
                    moved.append(one)
        return moved

    def _rescore_stored(
        self, stored: StoredCustomer, day: int, now: datetime, cause: ClockReason, detail: str
    ) -> Rescored | None:
        snap = snapshot_at(stored, day, self._scoring.windows)
        today = max(day, snap.day)
        found = snap.features(today)
        ruleset, thresholds = self._standard.ruleset, self._standard.thresholds
        due = due_from(snap, today, ruleset=ruleset, thresholds=thresholds)
        if cause != "time_passed" and due >= stored.due_day and stored.state is None:
            match = evaluate(ruleset, found, thresholds)
            if match is not None and match.tier.id == stored.tier:
                return None  # the tier stands, the due day is no earlier, the snapshot is stored
        standing, change = judge(
            stored.customer_id,
            found,
            self._standing(stored),
            cause=cause,
            detail=detail,
            ruleset=ruleset,
            thresholds=thresholds,
            now=now,
        )
        if change is not None:
            self._changes.append(change)
        return Rescored(
            stored.customer_id,
            standing.tier.id,
            standing.since,
            standing.ruleset_version,
            stored.change_id if change is None else change.change_id,
            due,
            snap,
        )

    def _rescore(
        self,
        customer_id: str,
        entry: _Entry,
        *,
        day: int,
        now: datetime,
        cause: ClockReason,
        detail: str,
    ) -> None:
        standing, change = rescore(
            customer_id,
            entry.state,
            entry.standing,
            day=day,
            cause=cause,
            detail=detail,
            ruleset=self._standard.ruleset,
            thresholds=self._standard.thresholds,
            windows=self._scoring.windows,
            now=now,
        )
        today = max(day, entry.state.anchor)
        due = self._due(entry.state, today)
        entry.standing = standing
        if change is not None:
            entry.change_id = change.change_id
            self._changes.append(change)
        if change is not None or cause == "time_passed" or due < self._due_of(entry):
            entry.dirty = True
            entry.day = today
        entry.due = due

    async def _trim(self, keep: Collection[str]) -> None:
        if len(self._entries) > KEEP_AT_MOST:
            await self.flush()
            self._entries = {c: e for c, e in self._entries.items() if c in keep}

    def _due_of(self, entry: _Entry) -> int:
        if entry.due is None:
            entry.due = self._due(entry.state, entry.day)
        return entry.due

    def _due(self, state: CustomerState, today: int, snap: Snapshot | None = None) -> int:
        if snap is None:
            snap = of_state(state, today, self._scoring.windows)
        return due_from(
            snap,
            max(today, state.anchor),
            ruleset=self._standard.ruleset,
            thresholds=self._standard.thresholds,
        )

    def _standing(self, stored: StoredCustomer) -> Standing | None:
        if stored.tier is None or stored.tier_since is None:
            return None
        version = stored.ruleset_version or self._standard.ruleset.version
        return Standing(self._tiers(version, stored.tier), stored.tier_since, version)

    def _entry(self, stored: StoredCustomer) -> _Entry:
        if stored.state is None:
            raise ValueError(f"customer {stored.customer_id} was loaded without its state")
        state = state_codec.decode(stored.state, self._scoring.windows)
        return _Entry(
            stored.partition,
            state,
            stored.state,
            self._standing(stored),
            stored.change_id,
            stored.due_day,
            state.anchor,
            dirty=False,
        )

    def _stored(self, customer_id: str, entry: _Entry) -> StoredCustomer:
        encoded = entry.encoded or state_codec.encode(entry.state)
        entry.encoded = encoded
        snap = of_state(entry.state, entry.day, self._scoring.windows)
        if entry.due is None:
            entry.due = self._due(entry.state, entry.day, snap)
        standing = entry.standing
        return StoredCustomer(
            customer_id,
            encoded,
            None if standing is None else standing.tier.id,
            None if standing is None else standing.since,
            None if standing is None else standing.ruleset_version,
            entry.partition,
            entry.due,
            entry.change_id,
            snap,
        )
