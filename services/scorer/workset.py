"""The customers of one partition that one transaction touches: loaded once, moved by the
pure core (services/scorer/core/scoring.py), saved once with their tier changes in the
history, numbered in their partitions.

Events, the day-boundary sweep and the re-tier after a ruleset or threshold change all go
through here, so a customer is never changed by two paths with two different copies.
"""

from collections import Counter
from collections.abc import Awaitable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from services.scorer.core.config import Scoring
from services.scorer.core.scoring import (
    Change,
    ClockReason,
    EventCause,
    Standard,
    Standing,
    rescore,
    score_event,
)
from services.scorer.core.state import CustomerState, Fact
from services.scorer.entries import Entry, due_day, loaded, to_store
from services.scorer.numbering import Numbering
from services.scorer.publisher import change_records
from services.scorer.rescoring import (
    PAGE,
    Counts,
    Rescorer,
    TierLookup,
    recount,
)
from services.scorer.store.customers import ScorerRepository, StoredCustomer
from services.scorer.store.tiers import HistoryEntry, TierRepository

KEEP_AT_MOST = 20_000  # entries held in memory before clean ones are dropped


@dataclass(frozen=True, slots=True)
class OutTopics:
    tier_changes: str
    customer_tiers: str
    dead_letters: str


async def record_changes(
    changes: list[tuple[int, Change]],
    tier_repository: TierRepository,
    numbering: Numbering,
    zone: ZoneInfo,
) -> None:
    """Tier changes ((partition, change), in order) into the history, each with its number in
    its partition; their records stay with the numbering, for the relay."""
    if not changes:
        return
    entries = []
    for partition, change in changes:
        changed, latest = change_records(change, zone)
        seq = numbering.next(partition, changed, latest)
        entries.append(
            HistoryEntry(
                change.change_id,
                change.customer_id,
                change.after.since,
                changed.value,
                partition,
                seq,
            )
        )
    await tier_repository.add_history(entries)


class Workset:
    def __init__(
        self,
        repository: ScorerRepository,
        tier_repository: TierRepository,
        numbering: Numbering,
        *,
        scoring: Scoring,
        standard: Standard,
        tiers: TierLookup,
    ) -> None:
        self._repository = repository
        self._tiers_repository = tier_repository
        self._numbering = numbering
        self._scoring = scoring
        self._standard = standard
        self._tiers = tiers
        self._entries: dict[str, Entry] = {}
        self._changes: list[tuple[int, Change]] = []  # with the customer's partition
        self._counts: Counts = Counter()
        self.emitted: list[Change] = []  # every change flushed so far (for metrics and logs)

    async def preload(self, keys: Iterable[tuple[str, int]]) -> None:
        """Loads the stored customers of `keys`, (customer id, partition), not in memory."""
        missing = {k for k in keys if k[0] not in self._entries}
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
            tracking=self._standard.tracking,
            zone=self._scoring.zone,
        )
        day = max(clock_day, state.anchor)
        self._entries[customer_id] = Entry(
            partition,
            state,
            None,
            standing,
            change.change_id if change else (entry.change_id if entry else None),
            None,
            day,
            dirty=True,
            saved=None if entry is None else entry.saved,
        )
        if change is not None:
            self._changes.append((partition, change))
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
            return self._repository.due(partition, day, after, limit, lazy=self._lazy)

        cursor, examined = await self._rescorer().pages(
            partition,
            due,
            "",
            day=day,
            now=now,
            cause="time_passed",
            detail=str(day),
            budget=budget,
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
            return self._repository.page(partition, day, after, limit, lazy=self._lazy)

        cursor, examined = await self._rescorer().pages(
            partition, page, after, day=day, now=now, cause=cause, detail=detail, budget=budget
        )
        await self._trim(())
        return cursor, examined

    async def flush(self) -> None:
        """Saves the changed customers, their history and their outgoing records."""
        dirty = [(c, e) for c, e in self._entries.items() if e.dirty]
        scoring, standard = self._scoring, self._standard
        await self._repository.save([to_store(c, e, scoring, standard) for c, e in dirty])
        for _, entry in dirty:
            entry.dirty = False
            self._recount(entry)
        counts, self._counts = self._counts, Counter()
        await self._tiers_repository.count_tiers(counts)
        changes, self._changes = self._changes, []
        await record_changes(changes, self._tiers_repository, self._numbering, self._scoring.zone)
        self.emitted += [change for _, change in changes]

    def _rescore(
        self,
        customer_id: str,
        entry: Entry,
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
            tracking=self._standard.tracking,
            zone=self._scoring.zone,
        )
        today = max(day, entry.state.anchor)
        due = self._due(entry.state, today, standing)
        entry.standing = standing
        if change is not None:
            entry.change_id = change.change_id
            self._changes.append((entry.partition, change))
        if change is not None or cause == "time_passed" or due < self._due_of(entry):
            entry.dirty = True
            entry.day = today
        entry.due = due

    def _recount(self, entry: Entry) -> None:
        """The counts follow a saved customer from the tier its row had to the one it has."""
        now = (entry.partition, None if entry.standing is None else entry.standing.tier.id)
        recount(self._counts, entry.saved, now)
        entry.saved = now

    @property
    def _lazy(self) -> bool:
        """Whether stored snapshots are enough to rescore customers (they are not for a
        ruleset that reads declared features or the profile: those are in the state)."""
        return not self._standard.ruleset.needs_state

    def _rescorer(self) -> Rescorer:
        return Rescorer(
            self._repository,
            scoring=self._scoring,
            standard=self._standard,
            tiers=self._tiers,
            newer=self._entries.keys(),
            changes=self._changes,
            counts=self._counts,
        )

    async def _trim(self, keep: Collection[str]) -> None:
        if len(self._entries) > KEEP_AT_MOST:
            await self.flush()
            self._entries = {c: e for c, e in self._entries.items() if c in keep}

    def _due_of(self, entry: Entry) -> int:
        if entry.due is None:
            entry.due = self._due(entry.state, entry.day, entry.standing)
        return entry.due

    def _due(self, state: CustomerState, today: int, standing: Standing | None) -> int:
        return due_day(state, today, self._scoring, self._standard, standing=standing)

    def _entry(self, stored: StoredCustomer) -> Entry:
        return loaded(stored, self._scoring.windows, self._standard, self._tiers)
