"""The consumer loop against a real broker and PostgreSQL: every record is applied exactly
once across restarts and rebalances, and the stored offsets end at the log end."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import pytest
import pytest_asyncio
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services import migrations
from services.db.engine import create_engine, sessions
from services.effectively_once.loop import Batch, Lane, PartitionedLoop, safe_consumer
from services.effectively_once.offsets import PartitionsChanged
from services.effectively_once.producer import safe_producer, send_all
from services.effectively_once.record import Record
from services.effectively_once.topics import TopicSpec, ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]
PARTITIONS = 3


@dataclass
class Setup:
    bootstrap: str
    topic: str
    group: str
    engine: AsyncEngine


@pytest_asyncio.fixture
async def setup(kafka_bootstrap: str, database_url: str) -> AsyncIterator[Setup]:
    topic = f"loop-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, PARTITIONS)])
    await asyncio.to_thread(migrations.upgrade, database_url)
    engine = create_engine(database_url, "test")
    async with engine.begin() as connection:  # a primary key: applying twice would fail
        await connection.execute(
            text(
                "CREATE TABLE applied (partition int, record_offset bigint, value text, "
                "PRIMARY KEY (partition, record_offset))"
            )
        )
    yield Setup(kafka_bootstrap, topic, f"group-{uuid.uuid4().hex[:8]}", engine)
    await engine.dispose()


async def apply(session: AsyncSession, batch: Batch) -> None:
    rows = [
        {"p": tp.partition, "o": record.offset, "v": (record.value or b"").decode()}
        for tp, records in batch.items()
        for record in records
    ]
    await session.execute(text("INSERT INTO applied VALUES (:p, :o, :v)"), rows)


async def produce(setup: Setup, values: range) -> None:
    producer = safe_producer(setup.bootstrap, "loop-test", request_timeout_s=10)
    await producer.start()
    try:
        records = [Record(f"k{v}".encode(), str(v).encode(), []) for v in values]
        await send_all(producer, setup.topic, records, timeout_s=10)
    finally:
        await producer.stop()


class Running:
    def __init__(
        self, setup: Setup, name: str = "test-consumer", *, fixed_partitions: bool = False
    ) -> None:
        consumer = safe_consumer(setup.bootstrap, setup.group, f"client-{uuid.uuid4().hex[:4]}")
        self.consumer = consumer
        self.loop = PartitionedLoop(
            consumer,
            topic=setup.topic,
            name=name,
            make_session=sessions(setup.engine),
            handler=apply,
            fixed_partitions=fixed_partitions,
        )
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> "Running":
        await self.consumer.start()
        self.loop.subscribe()
        self.task = asyncio.create_task(self.loop.run())
        return self

    async def stop(self) -> None:
        self.loop.stop()
        assert self.task is not None
        await asyncio.wait_for(self.task, 30)  # raises whatever the loop raised
        await self.consumer.stop()


async def count(setup: Setup) -> int:
    async with setup.engine.connect() as connection:
        return int(await connection.scalar(text("SELECT count(*) FROM applied")) or 0)


async def until(condition: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.2)


async def stored_offsets(setup: Setup) -> dict[int, int]:
    async with setup.engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT partition, next_offset FROM consumer_offsets WHERE topic = :t"),
            {"t": setup.topic},
        )
        return {row.partition: row.next_offset for row in rows}


async def applied_values(setup: Setup) -> list[str]:
    async with setup.engine.connect() as connection:
        return sorted(
            (await connection.execute(text("SELECT value FROM applied"))).scalars(), key=int
        )


async def log_end(setup: Setup, running: Running) -> dict[int, int]:
    from aiokafka import TopicPartition  # noqa: PLC0415

    ends = await running.consumer.end_offsets(
        [TopicPartition(setup.topic, p) for p in range(PARTITIONS)]
    )
    return {tp.partition: offset for tp, offset in ends.items()}


async def test_every_record_is_applied_once_and_offsets_reach_the_log_end(setup: Setup) -> None:
    await produce(setup, range(900))
    running = await Running(setup).start()
    await until(lambda: _at_least(setup, 900), 60, "not everything was applied")
    ends = await log_end(setup, running)
    await running.stop()
    assert await applied_values(setup) == [str(v) for v in range(900)]
    assert await stored_offsets(setup) == ends


async def test_a_restart_continues_exactly_where_the_last_commit_ended(setup: Setup) -> None:
    await produce(setup, range(600))
    first = await Running(setup).start()
    await until(lambda: _at_least(setup, 1), 60, "nothing was applied")
    await first.stop()
    await produce(setup, range(600, 900))
    second = await Running(setup).start()
    await until(lambda: _at_least(setup, 900), 60, "the restart did not catch up")
    await second.stop()
    assert await applied_values(setup) == [str(v) for v in range(900)]


async def test_a_rebalance_between_two_consumers_loses_and_doubles_nothing(setup: Setup) -> None:
    produced = 0
    keep_producing = True

    async def produce_until_told() -> None:
        nonlocal produced
        while keep_producing:
            await produce(setup, range(produced, produced + 100))
            produced += 100
            await asyncio.sleep(0.05)

    first = await Running(setup).start()
    producing = asyncio.create_task(produce_until_told())
    await until(lambda: _at_least(setup, 300), 60, "the first consumer applied nothing")
    second = await Running(setup).start()  # the group rebalances under load

    async def both_hold_partitions() -> bool:
        return bool(first.loop.claims) and bool(second.loop.claims)

    await until(both_hold_partitions, 60, "the group did not rebalance")
    after_rebalance = produced
    await until(lambda: _at_least(setup, after_rebalance + 500), 60, "stalled after rebalance")
    keep_producing = False
    await producing
    await until(lambda: _at_least(setup, produced), 90, "not everything was applied")
    assert first.loop.claims.keys().isdisjoint(second.loop.claims.keys())
    await first.stop()
    await second.stop()
    assert await applied_values(setup) == [str(v) for v in range(produced)]


async def _at_least(setup: Setup, expected: int) -> bool:
    return await count(setup) >= expected


async def test_a_fenced_transaction_keeps_a_claim_renewed_while_it_ran(setup: Setup) -> None:
    """Found by the 1M re-tier benchmark: the group rebalanced during a long transaction and
    handed the partition straight back; the transaction, fenced by the old claim, must not
    drop and pause the new one (the partition would then stall for good)."""
    from aiokafka import TopicPartition  # noqa: PLC0415

    from services.effectively_once.offsets import Claim  # noqa: PLC0415

    await produce(setup, range(30))
    running = await Running(setup).start()
    await until(lambda: _at_least(setup, 30), 60, "not everything was applied")
    tp = TopicPartition(setup.topic, 0)
    old = running.loop.claims[tp]
    renewed = Claim(old.partition, old.epoch + 1, old.next_offset)
    running.loop.claims[tp] = renewed
    await running.loop._rewind({}, tp, {tp: old})
    assert running.loop.claims[tp] is renewed
    assert tp not in running.consumer.paused()
    await running.loop._rewind({}, tp, {tp: renewed})  # fenced under the claim it holds
    assert tp not in running.loop.claims
    assert tp in running.consumer.paused()
    await running.stop()


async def test_a_revocation_during_the_handler_neither_crashes_nor_resurrects_a_claim(
    setup: Setup,
) -> None:
    """Found with two scorer processes: partitions revoked while the handler awaited made
    the loop fail (KeyError) and exit. The batch commits under the claims it read; the
    revoked partition is not held again afterwards."""
    revoked: list[TopicPartition] = []

    async def revoking(session: AsyncSession, batch: Batch) -> None:
        await apply(session, batch)
        # what a revocation does while the handler awaits
        revoked.extend(tp for tp in batch if running.loop.claims.pop(tp, None) is not None)

    await produce(setup, range(60))
    running = Running(setup)
    running.loop = PartitionedLoop(
        running.consumer,
        topic=setup.topic,
        name="test-consumer",
        make_session=sessions(setup.engine),
        handler=revoking,
    )
    await running.start()
    await until(lambda: _at_least(setup, 1), 60, "nothing was applied")
    await until(lambda: _claims_empty(running), 30, "claims were not dropped")
    assert running.task is not None
    assert not running.task.done()  # the loop lives on
    await running.stop()
    stored = await stored_offsets(setup)
    assert revoked
    assert all(stored[tp.partition] is not None for tp in revoked)  # their batches committed


async def _claims_empty(running: Running) -> bool:
    return not running.loop.claims


def _lanes_loop(
    running: Running,
    setup: Setup,
    lanes: list[Lane],
    ready: Callable[[], bool] = lambda: True,
) -> PartitionedLoop:
    return PartitionedLoop(
        running.consumer,
        topic=setup.topic,
        name="test-consumer",
        make_session=sessions(setup.engine),
        handler=apply,
        maintain=lanes,
        maintain_every_s=0.2,
        maintain_ready=ready,
    )


async def _maintained(setup: Setup) -> list[int]:
    async with setup.engine.connect() as connection:
        found = await connection.execute(
            text("SELECT partition FROM applied WHERE record_offset < 0 ORDER BY partition")
        )
        return list(found.scalars())


async def test_maintenance_lanes_run_at_once_each_on_its_own_share(setup: Setup) -> None:
    """Two lanes: their transactions overlap in time, their shares of the partitions held
    are disjoint and cover them all, and each lane's commit is reported to that lane."""
    inside, peak, shares_seen, committed = 0, 0, [], []

    def lane(name: str) -> Lane:
        async def maintain(session: AsyncSession, partitions: Sequence[int]) -> bool:
            nonlocal inside, peak
            inside += 1
            peak = max(peak, inside)
            await session.execute(
                text("INSERT INTO applied VALUES (:p, -1, 'maintained') ON CONFLICT DO NOTHING"),
                [{"p": p} for p in partitions],
            )
            await session.execute(text("SELECT pg_sleep(0.2)"))
            inside -= 1
            shares_seen.append(tuple(partitions))
            return False

        return Lane(maintain, lambda: committed.append(name))

    running = Running(setup)
    running.loop = _lanes_loop(running, setup, [lane("a"), lane("b")])
    await running.start()
    await until(lambda: _held(running, PARTITIONS), 60, "the partitions were not claimed")
    await until(lambda: _count_is(len(committed), 4), 30, "two rounds did not commit")
    await running.stop()
    assert peak == 2  # the two transactions were in flight at once
    assert (0, 2) in shares_seen
    assert (1,) in shares_seen
    assert {"a", "b"} <= set(committed)
    assert await _maintained(setup) == [0, 1, 2]


async def test_a_failing_lane_rolls_back_the_others_and_stops_the_loop(setup: Setup) -> None:
    class Broken(Exception):
        pass

    cancelled = []

    armed = asyncio.Event()  # once every partition is held: two lanes, one round

    async def waits(session: AsyncSession, partitions: Sequence[int]) -> bool:
        if not armed.is_set():
            return False
        await session.execute(
            text("INSERT INTO applied VALUES (:p, -1, 'maintained')"),
            [{"p": p} for p in partitions],
        )
        try:
            await session.execute(text("SELECT pg_sleep(5)"))
        except asyncio.CancelledError:
            cancelled.append(partitions)
            raise
        return False

    async def breaks(session: AsyncSession, partitions: Sequence[int]) -> bool:
        if not armed.is_set():
            return False
        await session.execute(text("SELECT pg_sleep(0.2)"))
        raise Broken(partitions)

    running = Running(setup)
    running.loop = _lanes_loop(running, setup, [Lane(waits), Lane(breaks)])
    await running.start()
    await until(lambda: _held(running, PARTITIONS), 60, "the partitions were not claimed")
    armed.set()  # the next round fails and stops the loop
    await until(lambda: _ended(running), 60, "the loop did not stop")
    with pytest.raises(Broken):
        await running.stop()
    await running.consumer.stop()
    assert cancelled == [[0, 2]]  # not left running
    assert await _maintained(setup) == []  # its insert was rolled back


async def test_maintenance_waits_while_not_ready_and_batches_do_not(setup: Setup) -> None:
    """`maintain_ready` holds maintenance back (the scorer's: while the tier changes it
    committed wait to be published); records are applied meanwhile."""
    ready, rounds = False, []

    async def maintain(session: AsyncSession, partitions: Sequence[int]) -> bool:
        rounds.append(tuple(partitions))
        return False

    running = Running(setup)
    running.loop = _lanes_loop(running, setup, [Lane(maintain)], ready=lambda: ready)
    await running.start()
    await until(lambda: _held(running, PARTITIONS), 60, "the partitions were not claimed")
    await produce(setup, range(30))
    await until(lambda: _applied_is(setup, 30), 30, "the records were not applied")
    assert rounds == []
    ready = True
    await until(lambda: _count_is(len(rounds), 1), 30, "maintenance did not run once ready")
    await running.stop()


async def _applied_is(setup: Setup, count: int) -> bool:
    async with setup.engine.connect() as connection:
        found = await connection.execute(text("SELECT count(*) FROM applied"))
        return bool(found.scalar_one() == count)


async def _ended(running: Running) -> bool:
    return running.task is not None and running.task.done()


async def _held(running: Running, partitions: int) -> bool:
    return len(running.loop.claims) == partitions


async def _count_is(found: int, at_least: int) -> bool:
    return found >= at_least


async def test_a_topic_whose_partition_count_changed_stops_a_consumer_kept_by_partition(
    setup: Setup,
) -> None:
    """The first claim records the topic's partition count; after a partition is added, the
    consumer raises PartitionsChanged out of `run` and claims nothing (the scorer keeps its
    customers by partition: migration 0017). A consumer without `fixed_partitions` goes on."""
    await produce(setup, range(30))
    running = await Running(setup, fixed_partitions=True).start()
    await until(lambda: _at_least(setup, 30), 60, "not everything was applied")
    await running.stop()
    async with setup.engine.connect() as connection:
        kept = await connection.scalar(
            text("SELECT partitions FROM consumer_layouts WHERE topic = :t"), {"t": setup.topic}
        )
    assert kept == PARTITIONS
    admin = AIOKafkaAdminClient(bootstrap_servers=setup.bootstrap)
    await admin.start()
    try:
        await admin.create_partitions({setup.topic: NewPartitions(PARTITIONS + 1)})
    finally:
        await admin.close()
    before = await stored_offsets(setup)
    again = await Running(setup, fixed_partitions=True).start()
    assert again.task is not None
    with pytest.raises(
        PartitionsChanged, match=f"has {PARTITIONS + 1} partitions.*the {PARTITIONS}"
    ):
        await asyncio.wait_for(asyncio.shield(again.task), 60)
    await again.consumer.stop()
    assert await stored_offsets(setup) == before  # nothing claimed anew
    other = await Running(setup).start()  # the same consumer, not kept by partition
    await produce(setup, range(30, 40))
    await until(lambda: _at_least(setup, 40), 60, "the other consumer did not go on")
    await other.stop()
