"""The history relay against a real broker and PostgreSQL (services/scorer/history_relay.py):
tier changes committed with their numbers are published in number order per partition,
from memory when the relay holds every change since the mark, else rebuilt from the history
(after a restart, or when memory has a hole); a crash after the sends republishes the same
changes; a partition is published only by a relay whose instance holds it, and by one relay
at a time."""

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.db.engine import sessions
from services.db.unit_of_work import unit_of_work
from services.effectively_once.producer import safe_producer
from services.effectively_once.record import Record
from services.effectively_once.topics import TopicSpec, ensure_topics
from services.scorer.history_relay import HistoryRelay
from services.scorer.numbering import Numbering, Run
from services.scorer.publisher import history_records
from services.scorer.store.control import ControlRepository, PartitionState
from services.scorer.store.history import HISTORY_LOCKS, HistoryRepository
from services.scorer.store.tiers import HistoryEntry, TierRepository
from tests.kafka_reader import Message, read_all

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

IN_TOPIC = "customer-events"
MEMORY = ("via", b"memory")  # a header only the records handed over in memory carry
T0 = datetime(2026, 12, 1, tzinfo=UTC)


@dataclass
class Setup:
    bootstrap: str
    changes: str
    tiers: str
    engine: AsyncEngine
    producer: AIOKafkaProducer
    counter: int = 0


class Crash(Exception):
    pass


@pytest_asyncio.fixture
async def setup(kafka_bootstrap: str, engine: AsyncEngine) -> AsyncIterator[Setup]:
    prefix = f"hist-{uuid.uuid4().hex[:8]}-"
    changes, tiers = prefix + "changes", prefix + "tiers"
    await ensure_topics(kafka_bootstrap, [TopicSpec(changes, 3), TopicSpec(tiers, 3)])
    producer = safe_producer(kafka_bootstrap, "history-test", request_timeout_s=10)
    await producer.start()
    yield Setup(kafka_bootstrap, changes, tiers, engine, producer)
    await producer.stop()


async def commit(setup: Setup, counts: Mapping[int, int]) -> dict[int, Run]:
    """A transaction writing `counts[p]` tier changes of partition p (customers c<p>-0..4
    in turn), as a batch does; returns its runs, whose records carry the MEMORY header."""
    async with unit_of_work(sessions(setup.engine)) as session:
        control = ControlRepository(session, IN_TOPIC)
        stored = await control.partitions(list(counts))
        parts = {p: stored.get(p) or PartitionState(p) for p in counts}
        numbering = Numbering(parts)
        entries = []
        for partition, count in counts.items():
            for _ in range(count):
                setup.counter += 1
                n = setup.counter
                customer = f"c{partition}-{n % 5}"
                change_id = f"change-{n}"
                at = T0 + timedelta(seconds=n)
                payload = orjson.dumps(
                    {
                        "change_id": change_id,
                        "customer_id": customer,
                        "to_tier": {"id": "A", "labels": {"zh": "甲", "en": "A"}, "rank": 1},
                        "changed_at": at,
                        "ruleset_version": "v1",
                        "n": n,
                    },
                    option=orjson.OPT_UTC_Z,
                )
                changed, latest = history_records(customer, change_id, payload)
                seq = numbering.next(
                    partition,
                    Record(changed.key, changed.value, [*changed.headers, MEMORY]),
                    Record(latest.key, latest.value, [*latest.headers, MEMORY]),
                )
                entries.append(HistoryEntry(change_id, customer, at, payload, partition, seq))
        await TierRepository(session).add_history(entries)
        await control.save_partitions(list(parts.values()))
    return numbering.runs


def relay(
    setup: Setup, held: Collection[int] = (0, 1, 2), batch_size: int = 7, **limits: int
) -> HistoryRelay:
    return HistoryRelay(
        setup.producer,
        sessions(setup.engine),
        topic=IN_TOPIC,
        tier_changes=setup.changes,
        customer_tiers=setup.tiers,
        held=lambda: held,
        batch_size=batch_size,  # 7: several rounds, from the history and from memory
        **limits,
    )


async def drain(setup: Setup, one: HistoryRelay) -> None:
    while await round_of(setup, one):
        pass


async def round_of(setup: Setup, one: HistoryRelay) -> bool:
    async with unit_of_work(sessions(setup.engine)) as session:
        return await one.publish_batch(session)


async def pending(setup: Setup) -> int:
    async with unit_of_work(sessions(setup.engine)) as session:
        return await HistoryRepository(session, IN_TOPIC).pending_count()


def numbers(messages: list[Message]) -> dict[bytes | None, list[int]]:
    """Each customer's change numbers in the order the topic holds them."""
    found: dict[bytes | None, list[int]] = defaultdict(list)
    for message in messages:  # per partition in offset order; a key is in one partition
        found[message.key].append(int(message.headers["ce_id"].split(b"-")[1]))
    return found


async def test_published_from_memory_and_else_from_the_history_in_order(setup: Setup) -> None:
    first = relay(setup)
    first.committed(await commit(setup, {0: 12, 1: 9}))  # 1-21: in memory
    await drain(setup, first)
    await commit(setup, {0: 6})  # 22-27: committed, then the instance died
    second = relay(setup)  # a new instance: its memory starts at 28
    second.committed(await commit(setup, {0: 4, 2: 3}))  # 28-34
    # partition 0: a hole before 28, so 22-28 come from the history (7 a round), and then
    # memory reaches back to the mark: 29-31 from memory
    await drain(setup, second)
    second.committed(await commit(setup, {0: 5}))  # 35-39: memory reaches the mark again
    await drain(setup, second)
    assert await pending(setup) == 0
    on_changes = await read_all(setup.bootstrap, setup.changes, 39)
    on_tiers = await read_all(setup.bootstrap, setup.tiers, 39)
    for messages in (on_changes, on_tiers):
        assert sorted(n for ns in numbers(messages).values() for n in ns) == list(range(1, 40))
        assert all(ns == sorted(ns) for ns in numbers(messages).values())
        via_memory = {
            int(m.headers["ce_id"].split(b"-")[1]) for m in messages if "via" in m.headers
        }
        # partition 2's 32-34 were in memory from its first change on
        assert via_memory == set(range(1, 22)) | set(range(29, 40))
    for message in on_changes:  # rebuilt from the history: the same bytes as the batch's
        payload = message.value or b""
        found = orjson.loads(payload)
        changed, _ = history_records(found["customer_id"], found["change_id"], payload)
        assert message.key == changed.key
        assert [h for h in message.headers.items() if h[0] != "via"] == changed.headers


async def test_a_crash_after_the_sends_publishes_the_same_changes_again(setup: Setup) -> None:
    one = relay(setup, batch_size=10)
    one.committed(await commit(setup, {0: 5, 1: 5}))

    async def publish_then_crash() -> None:
        async with unit_of_work(sessions(setup.engine)) as session:
            await one.publish_batch(session)
            raise Crash  # after the acks, before the marks move

    with pytest.raises(Crash):
        await publish_then_crash()
    assert await pending(setup) == 10
    await drain(setup, relay(setup))  # the restarted instance, from the history
    assert await pending(setup) == 0
    published = await read_all(setup.bootstrap, setup.changes, 20)
    ids = [m.headers["ce_id"] for m in published]
    assert len(ids) == 20
    assert set(ids) == {f"change-{n}".encode() for n in range(1, 11)}
    assert all(ns == sorted(ns) for ns in numbers(published).values())


async def test_only_the_holder_publishes_and_one_relay_at_a_time(setup: Setup) -> None:
    runs = await commit(setup, {0: 3, 1: 4})
    elsewhere = relay(setup, held=(1, 2))
    elsewhere.committed(runs)  # memory of a partition it does not hold is dropped
    await drain(setup, elsewhere)
    assert await pending(setup) == 3  # partition 0's
    async with setup.engine.connect() as other, other.begin():  # another relay on partition 0
        await other.execute(text("SELECT pg_advisory_xact_lock(:c, 0)"), {"c": HISTORY_LOCKS})
        assert not await round_of(setup, relay(setup, held=(0,)))
        assert await pending(setup) == 3  # left to the relay holding the lock
    await drain(setup, relay(setup, held=(0,)))
    assert await pending(setup) == 0
    published = await read_all(setup.bootstrap, setup.changes, 7)
    assert len(published) == 7
    assert {int(m.headers["ce_id"].split(b"-")[1]) for m in published} == set(range(1, 8))
    via_memory = {int(m.headers["ce_id"].split(b"-")[1]) for m in published if "via" in m.headers}
    assert via_memory == {4, 5, 6, 7}  # partition 1's; partition 0's from the history


async def test_memory_is_bounded_in_all_and_the_backlog_holds_maintenance_back(
    setup: Setup,
) -> None:
    one = relay(setup, memory_limit=15, backlog_limit=10)
    assert one.backlog() == 0
    assert one.has_room()
    one.committed(await commit(setup, {0: 12, 1: 9}))  # partition 1's 9 go past 15 in all
    assert one.backlog() == 21
    assert not one.has_room()
    assert await round_of(setup, one)  # 7 a round
    assert one.backlog() == 14
    assert not one.has_room()
    assert await round_of(setup, one)
    assert one.backlog() == 7
    assert one.has_room()
    await drain(setup, one)
    assert one.backlog() == 0
    assert await pending(setup) == 0
    one.committed(await commit(setup, {2: 4}))
    assert one.backlog() == 4
    await drain(setup, one)
    published = await read_all(setup.bootstrap, setup.changes, 25)
    assert sorted(int(m.headers["ce_id"].split(b"-")[1]) for m in published) == list(range(1, 26))
    assert all(ns == sorted(ns) for ns in numbers(published).values())
    via_memory = {int(m.headers["ce_id"].split(b"-")[1]) for m in published if "via" in m.headers}
    # partition 1's were dropped from memory (the history had them), partition 0's were not
    assert via_memory == set(range(1, 13)) | set(range(22, 26))


async def test_changes_another_relay_published_leave_no_backlog(setup: Setup) -> None:
    """In a handover both instances may hold a partition for a moment: what the other relay
    published (from the history) is no longer this relay's backlog, or maintenance would
    wait for it forever."""
    one = relay(setup, backlog_limit=3)
    one.committed(await commit(setup, {0: 5}))
    assert not one.has_room()
    await drain(setup, relay(setup))  # the other instance's relay, from the history
    assert await pending(setup) == 0
    assert not await round_of(setup, one)
    assert one.backlog() == 0
    assert one.has_room()
    published = await read_all(setup.bootstrap, setup.changes, 5)
    assert not [m for m in published if "via" in m.headers]  # one's memory was not published
