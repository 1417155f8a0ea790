"""The careful Kafka loop: effectively-once processing into PostgreSQL.

Order of work for every batch (one `getmany`), documented because it is the guarantee:

1. fetch records of the partitions this consumer holds a claim on;
2. open one database transaction; the handler applies the records (dedupe by event id,
   state, outbox rows) in it;
3. in the same transaction, advance every partition's offset with a compare-and-set on
   its claim (services/effectively_once/offsets.py); a stale claim raises `Fenced`;
4. commit. Kafka's own group offsets are never used: on assignment each partition is
   claimed in PostgreSQL and the consumer seeks to the offset stored there (or to the
   beginning when none is), so the state and the position can never disagree.

With `fixed_partitions` (state kept by partition, as the scorer's customers are), a claim
first checks the topic's partition count against the one recorded at the first claim and
raises `PartitionsChanged` out of `run` when it differs. A failure while claiming assigned
partitions (in aiokafka's rebalance callback, which would only log it) is raised by `run`.

A crash anywhere before 4 leaves no trace; after 4 the records are never applied again.
A consumer fenced in 3 rolls back, pauses the lost partition and seeks the others back;
the next rebalance hands the partition to its new owner, who continues after the last
committed batch. Transient failures (database or broker down) raise out of `run`: the
process exits and is restarted, which is safe for the same reason.
"""

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.db.unit_of_work import unit_of_work
from services.effectively_once.offsets import Claim, Fenced, OffsetStore

log = structlog.get_logger()
NOT_READY_WAIT_MS = 10  # maintenance held back: how long to wait for records before asking again
Batch = Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]
Handler = Callable[[AsyncSession, Batch], Awaitable[None]]
Maintenance = Callable[[AsyncSession, Sequence[int]], Awaitable[bool]]
"""Work between batches on the partitions held; True when more is left (run again soon)."""


@dataclass(frozen=True)
class Lane:
    """One maintenance transaction: `maintain` on its share of the partitions held, then
    `committed` once it committed. With several lanes the shares are disjoint and their
    transactions run at once, each on its own connection (while one awaits PostgreSQL,
    another computes), fenced each like a batch; a lane holds its own per-transaction
    state, so lanes are distinct objects."""

    maintain: Maintenance
    committed: Callable[[], None] = lambda: None


def shares(partitions: Sequence[int], lanes: int) -> list[list[int]]:
    """`partitions` dealt round-robin in order to at most `lanes` non-empty shares."""
    ordered = sorted(partitions)
    return [share for share in (ordered[i::lanes] for i in range(lanes)) if share]


def safe_consumer(
    bootstrap_servers: str,
    group_id: str,
    client_id: str,
    max_poll_records: int = 2000,
    session_timeout_s: float = 30.0,
) -> AIOKafkaConsumer:
    """Auto-commit off: positions come from PostgreSQL (every assigned partition is sought
    explicitly). The reset policy only applies when a stored offset has fallen out of the
    topic's retention; those records are gone, so reading on from the oldest is all that
    is left (aiokafka's "none" also fires on a fresh assignment, before the seek lands)."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=max_poll_records,
        isolation_level="read_committed",
        session_timeout_ms=int(session_timeout_s * 1000),
        heartbeat_interval_ms=3_000,
        rebalance_timeout_ms=60_000,
    )


@dataclass
class _Claims(ConsumerRebalanceListener):  # type: ignore[misc]
    """Claims every assigned partition in PostgreSQL and seeks to its stored offset."""

    loop: "PartitionedLoop"

    async def on_partitions_revoked(self, revoked: Any) -> None:
        for partition in revoked:
            self.loop.claims.pop(partition, None)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        try:
            await self.loop.claim(sorted(assigned))
        except Exception as failure:  # aiokafka would log it and go on
            self.loop.failed(failure)  # `run` raises it


class PartitionedLoop:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        *,
        topic: str,
        name: str,
        make_session: async_sessionmaker[AsyncSession],
        handler: Handler,
        fetch_timeout_ms: int = 500,
        maintain: Sequence[Lane] = (),
        maintain_every_s: float = 2.0,
        committed: Callable[[], None] | None = None,
        maintain_ready: Callable[[], bool] = lambda: True,
        fixed_partitions: bool = False,
    ) -> None:
        self._consumer = consumer
        self._topic = topic
        self._name = name
        self._sessions = make_session
        self._handler = handler
        self._fetch_timeout_ms = fetch_timeout_ms
        self._lanes = list(maintain)
        self._maintain_every_s = maintain_every_s
        self._committed = committed or (lambda: None)
        self._ready = maintain_ready
        self._maintained_at = -math.inf
        self._stopping = asyncio.Event()
        self._fixed = fixed_partitions
        self._failure: Exception | None = None
        self.claims: dict[TopicPartition, Claim] = {}

    def lags(self) -> dict[int, int]:
        """Records not yet processed on each partition held (from the fetcher's high-water
        mark, no request)."""
        return {
            tp.partition: max((self._consumer.highwater(tp) or 0) - (claim.next_offset or 0), 0)
            for tp, claim in list(self.claims.items())
        }

    def subscribe(self) -> None:
        self._consumer.subscribe([self._topic], listener=_Claims(self))

    def stop(self) -> None:
        """Finish the batch in hand, commit it, and return from `run` (SIGTERM)."""
        self._stopping.set()

    def failed(self, failure: Exception) -> None:
        """A failure outside `run` (claiming assigned partitions), raised by `run`."""
        self._failure = failure
        self._stopping.set()

    async def claim(self, partitions: Sequence[TopicPartition]) -> None:
        """Claims the assigned partitions; with `fixed_partitions`, first checks the topic's
        partition count against the one recorded (PartitionsChanged)."""
        count = len(self._consumer.partitions_for_topic(self._topic) or ())
        async with unit_of_work(self._sessions) as session:
            store = OffsetStore(session, self._name, self._topic)
            if self._fixed and count:
                await store.fix_partitions(count)
            claims = {tp: await store.claim(tp.partition) for tp in partitions}
        for tp, claim in claims.items():
            self.claims[tp] = claim
            await self._seek(tp, claim)
            self._consumer.resume(tp)
        log.info(
            "partitions_claimed",
            consumer=self._name,
            partitions={tp.partition: c.next_offset for tp, c in claims.items()},
        )

    async def run(self) -> None:
        """Batches, and maintenance between them when it is due and `maintain_ready` says
        its results can be taken (else the loop takes records and asks again soon)."""
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            wait = self._fetch_timeout_ms
            if self._lanes and (loop.time() - self._maintained_at >= self._maintain_every_s):
                if self._ready():
                    more = await self._maintenance()
                    self._maintained_at = -math.inf if more else loop.time()
                    # with maintenance work left, only take what has arrived
                    wait = 0 if more else wait
                else:
                    wait = min(wait, NOT_READY_WAIT_MS)
            batch = await self._consumer.getmany(timeout_ms=wait)
            batch = {tp: records for tp, records in batch.items() if records and tp in self.claims}
            if batch:
                await self._process(batch)
        if self._failure is not None:
            raise self._failure

    async def _process(self, batch: Batch) -> None:
        """The claims are read once, before the handler runs: a rebalance while it awaits may
        revoke partitions (the claims held change), and the batch still commits under the
        claims it was read with, unless another consumer claimed a partition since (then the
        compare-and-set fences it)."""
        advanced: dict[TopicPartition, Claim] = {}
        used = {tp: self.claims[tp] for tp in batch}
        try:
            async with unit_of_work(self._sessions) as session:
                await self._handler(session, batch)
                store = OffsetStore(session, self._name, self._topic)
                moved = await store.advance_all(
                    [(used[tp], records[-1].offset + 1) for tp, records in batch.items()]
                )
                advanced = {TopicPartition(self._topic, c.partition): c for c in moved}
        except Fenced as fenced:
            log.warning("fenced", consumer=self._name, reason=str(fenced))
            await self._rewind(batch, TopicPartition(self._topic, fenced.partition), used)
            return
        for tp, claim in advanced.items():
            if self.claims.get(tp) is used[tp]:  # still held, under the same claim
                self.claims[tp] = claim
        self._committed()

    async def _maintenance(self) -> bool:
        """Work that is not driven by records (the day boundary, a new ruleset) on the
        partitions held: each lane's share in a transaction of its own, all at once. A
        failure in one cancels (rolls back) the others and raises as itself."""
        claims = dict(self.claims)
        if not claims or not self._lanes:
            return False
        dealt = shares([tp.partition for tp in claims], len(self._lanes))
        mine = [
            {tp: claim for tp, claim in claims.items() if tp.partition in share} for share in dealt
        ]
        if len(mine) == 1:
            return await self._maintain_share(self._lanes[0], mine[0])
        try:
            async with asyncio.TaskGroup() as group:
                done = [
                    group.create_task(self._maintain_share(lane, share))
                    for lane, share in zip(self._lanes, mine, strict=False)
                ]
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from failed
        return any(task.result() for task in done)

    async def _maintain_share(self, lane: Lane, claims: Mapping[TopicPartition, Claim]) -> bool:
        """One lane's transaction, fenced like a batch: every claim of its share is
        re-checked by a compare-and-set that leaves its offset where it is."""
        try:
            async with unit_of_work(self._sessions) as session:
                more = await lane.maintain(session, sorted(tp.partition for tp in claims))
                store = OffsetStore(session, self._name, self._topic)
                await store.advance_all([(claim, claim.next_offset) for claim in claims.values()])
        except Fenced as fenced:
            log.warning("fenced", consumer=self._name, reason=str(fenced))
            await self._rewind({}, TopicPartition(self._topic, fenced.partition), claims)
            return False
        lane.committed()
        return more

    async def _rewind(
        self, batch: Batch, lost: TopicPartition, used: Mapping[TopicPartition, Claim]
    ) -> None:
        """After the rollback: the lost partition is dropped and paused until a rebalance
        hands it to us again (if ever) — unless one already did while the transaction ran
        (the claim held now is newer than the one it used: keep it); the others are read
        again from their committed offsets, under their claims, which are still valid."""
        if self.claims.get(lost) is used.get(lost):
            self.claims.pop(lost, None)
            self._consumer.pause(lost)
        for tp in batch:
            claim = self.claims.get(tp)
            if claim is not None:
                await self._seek(tp, claim)

    async def _seek(self, tp: TopicPartition, claim: Claim) -> None:
        if claim.next_offset is None:
            await self._consumer.seek_to_beginning(tp)
        else:
            self._consumer.seek(tp, claim.next_offset)
