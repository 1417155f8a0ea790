"""Tier changes published from the history, not from outbox rows (issue 16): a batch writes
each change once, into `tier_history` with its number in its partition
(services/scorer/numbering.py), and hands the records it built to this relay once the
transaction has committed. The relay publishes them from memory; after a restart or a
handover, or when its memory does not reach back to the mark, it builds them again from the
history rows (services/scorer/publisher.py's `history_records`, the same bytes).

Order of work per round, in one transaction:
1. the partitions this instance holds that have changes past their mark (`last published`),
   each locked with a transaction-level advisory lock (a partition whose lock another relay
   holds is skipped: it is publishing it);
2. per partition, the changes numbered after the mark, from memory when memory holds every
   one of them, else from the history (at most `batch_size` per round);
3. publish them (acks=all, bounded): the tier-change records, then the latest-tier ones;
4. move the marks to the last number published, commit.

Memory is bounded: at most MEMORY_LIMIT changes in all, and the scorer holds maintenance
(re-tier, sweep) back while more than BACKLOG_LIMIT changes it committed wait (`has_room`);
the records of a round are at most `batch_size` changes, from memory or from the history.

A crash after 3 and before 4 publishes the same records again: at least once, with the same
change ids, which consumers dedupe by. A customer's changes are in one partition and
published in number order by one relay at a time, so they stay in order on both topics.
"""

from collections.abc import Callable, Collection, Mapping

import structlog
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.db.unit_of_work import unit_of_work
from services.effectively_once.producer import send_all
from services.effectively_once.rounds import Rounds
from services.scorer.numbering import Numbered, Run
from services.scorer.publisher import history_records
from services.scorer.store.history import HistoryRepository

log = structlog.get_logger()

MEMORY_LIMIT = 40_000  # changes kept in all; beyond, a partition's are read from the history
BACKLOG_LIMIT = 10_000  # committed, unpublished changes beyond which maintenance waits


class HistoryRelay:
    def __init__(
        self,
        producer: AIOKafkaProducer,
        make_session: async_sessionmaker[AsyncSession],
        *,
        topic: str,
        tier_changes: str,
        customer_tiers: str,
        held: Callable[[], Collection[int]],
        batch_size: int = 5000,
        idle_s: float = 0.5,
        send_timeout_s: float = 10.0,
        memory_limit: int = MEMORY_LIMIT,
        backlog_limit: int = BACKLOG_LIMIT,
    ) -> None:
        self._producer = producer
        self._sessions = make_session
        self._topic = topic
        self._tier_changes = tier_changes
        self._customer_tiers = customer_tiers
        self._held = held
        self._batch_size = batch_size
        self._send_timeout_s = send_timeout_s
        self._memory_limit = memory_limit
        self._backlog_limit = backlog_limit
        self._rounds = Rounds(idle_s)
        self._memory: dict[int, list[Run]] = {}
        self._ends: dict[int, int] = {}  # per partition, the last number committed here
        self._marks: dict[int, int] = {}  # per partition, the last number published here

    def stop(self) -> None:
        self._rounds.stop()

    def committed(self, runs: Mapping[int, Run]) -> None:
        """A transaction that wrote these changes committed: publish them now."""
        for partition, run in runs.items():
            self._memory.setdefault(partition, []).append(run)
            self._ends[partition] = run.base + len(run.changes)
            # until a round says, what came before the run counts as published
            self._marks.setdefault(partition, run.base)
            if self._kept() > self._memory_limit:
                del self._memory[partition]  # the relay is behind: the history has them
        if runs:
            self._rounds.wake()

    def backlog(self) -> int:
        """Changes committed by this instance and not yet published by its relay."""
        return sum(max(end - self._marks.get(p, end), 0) for p, end in self._ends.items())

    def has_room(self) -> bool:
        """Whether maintenance may commit more changes now: a re-tier or a sweep commits
        changes faster than they are published, and the changes waiting in memory are what
        the scorer's memory grows with, so it waits while the backlog is over the limit
        (the consumer loop asks before each maintenance round; batches do not wait)."""
        return self.backlog() <= self._backlog_limit

    async def run(self) -> None:
        await self._rounds.run(self._round)

    async def _round(self) -> bool:
        async with unit_of_work(self._sessions) as session:
            return await self.publish_batch(session)

    async def publish_batch(self, session: AsyncSession) -> bool:
        """One round in the caller's transaction; True when changes are left to publish."""
        held = set(self._held())
        for partition in [p for p in self._ends if p not in held]:
            self._memory.pop(partition, None)  # another instance publishes it now
            del self._ends[partition]
            self._marks.pop(partition, None)
        store = HistoryRepository(session, self._topic)
        ends = dict(self._ends)  # committed before the query below began: it sees them
        behind = await store.behind(sorted(held))
        # nothing to publish there, as far as this relay may: published already (by another
        # instance's relay in a handover), or being published by the relay holding its lock
        self._forget({p: end for p, end in ends.items() if p not in behind})
        published: list[Numbered] = []
        marks: dict[int, int] = {}
        more = False
        for partition, (mark, last) in behind.items():
            room = self._batch_size - len(published)  # at most `batch_size` a round
            if room <= 0:
                more = True
                break
            changes = self._remembered(partition, mark, last)
            if changes is None:
                entries = await store.unpublished(partition, mark, last, room)
                changes = [
                    Numbered(e.seq or 0, *history_records(e.customer_id, e.change_id, e.payload))
                    for e in entries
                ]
                if len(entries) == room:
                    more = more or changes[-1].seq < last
                    marks[partition] = changes[-1].seq
                else:
                    marks[partition] = last  # numbers without a row: a repeated change id
            elif len(changes) > room:
                changes = changes[:room]
                marks[partition] = changes[-1].seq
                more = True
            else:
                marks[partition] = last
            published += changes
        if published:
            await send_all(
                self._producer,
                self._tier_changes,
                [n.changed for n in published],
                self._send_timeout_s,
            )
            await send_all(
                self._producer,
                self._customer_tiers,
                [n.latest for n in published],
                self._send_timeout_s,
            )
        await store.mark(marks)
        self._forget(marks)
        if published:
            log.debug("history_published", changes=len(published), partitions=len(marks))
        return more

    def _remembered(self, partition: int, mark: int, last: int) -> list[Numbered] | None:
        """The partition's changes numbered after `mark` up to `last`, when memory holds
        every one of them (its runs join up, from at or before the mark to `last`)."""
        runs = self._memory.get(partition)
        if not runs or runs[0].base > mark:
            return None
        end = runs[0].base
        for run in runs:
            if run.base != end:
                return None
            end += len(run.changes)
        if end != last:
            return None
        return [n for run in runs for n in run.changes if n.seq > mark]

    def _forget(self, marks: Mapping[int, int]) -> None:
        """Memory up to the marks is published."""
        for partition, mark in marks.items():
            self._marks[partition] = max(self._marks.get(partition, 0), mark)
            runs = self._memory.get(partition)
            if runs is not None:
                kept = [r for r in runs if r.base + len(r.changes) > mark]
                if kept:
                    self._memory[partition] = kept
                else:
                    del self._memory[partition]

    def _kept(self) -> int:
        """Changes in memory."""
        return sum(len(run.changes) for runs in self._memory.values() for run in runs)
