"""The outbox and its relay against a real broker and PostgreSQL: what a committed
transaction wrote is published, in order per key, at least once with stable ids; what a
rolled-back one wrote never is."""

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services import migrations
from services.db.engine import create_engine, sessions
from services.db.unit_of_work import unit_of_work
from services.effectively_once.outbox import Outbox
from services.effectively_once.producer import safe_producer
from services.effectively_once.record import Record
from services.effectively_once.relay import Relay
from services.effectively_once.topics import TopicSpec, ensure_topics
from tests.kafka_reader import Message, read_all

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@dataclass
class Setup:
    bootstrap: str
    topics: tuple[str, str]
    engine: AsyncEngine


class Crash(Exception):
    pass


@pytest_asyncio.fixture
async def setup(kafka_bootstrap: str, database_url: str) -> AsyncIterator[Setup]:
    topics = (f"out-{uuid.uuid4().hex[:8]}-a", f"out-{uuid.uuid4().hex[:8]}-b")
    await ensure_topics(kafka_bootstrap, [TopicSpec(t, 3) for t in topics])
    await asyncio.to_thread(migrations.upgrade, database_url)
    engine = create_engine(database_url, "test")
    yield Setup(kafka_bootstrap, topics, engine)
    await engine.dispose()


def records(start: int, count: int) -> list[Record]:
    return [
        Record(f"k{i % 50}".encode(), str(i).encode(), [("ce_id", f"id-{i}".encode())])
        for i in range(start, start + count)
    ]


async def write(setup: Setup, topic: str, batch: list[Record]) -> None:
    async with unit_of_work(sessions(setup.engine)) as session:
        await Outbox(session).add(topic, batch)


async def pending(setup: Setup) -> int:
    async with setup.engine.connect() as connection:
        return int(
            await connection.scalar(text("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
            or 0
        )


async def relay_until_drained(setup: Setup, relays: int = 1) -> None:
    producer = safe_producer(setup.bootstrap, "relay-test", request_timeout_s=10)
    await producer.start()
    running = [Relay(producer, sessions(setup.engine), batch_size=300) for _ in range(relays)]
    tasks = [asyncio.create_task(relay.run()) for relay in running]
    try:
        deadline = time.monotonic() + 60
        while await pending(setup):
            assert time.monotonic() < deadline, "the relay did not drain the outbox"
            await asyncio.sleep(0.1)
    finally:
        for relay in running:
            relay.stop()
        await asyncio.gather(*tasks)
        await producer.stop()


def in_order_per_key(messages: list[Message]) -> bool:
    by_key: dict[bytes | None, list[int]] = defaultdict(list)
    for message in messages:  # read_all returns each partition in offset order
        by_key[message.key].append(int(message.value or b"0"))
    return all(values == sorted(values) for values in by_key.values())


async def test_committed_rows_are_published_once_in_order_per_key(setup: Setup) -> None:
    first, second = setup.topics
    await write(setup, first, records(0, 1200))
    await write(setup, second, records(1200, 300))
    await relay_until_drained(setup)
    on_first = await read_all(setup.bootstrap, first, 1200)
    on_second = await read_all(setup.bootstrap, second, 300)
    assert sorted(int(m.value or b"") for m in on_first) == list(range(1200))
    assert sorted(int(m.value or b"") for m in on_second) == list(range(1200, 1500))
    assert in_order_per_key(on_first)
    assert all(m.headers["ce_id"] == f"id-{int(m.value or b'')}".encode() for m in on_first)


async def test_rows_of_a_rolled_back_transaction_are_never_published(setup: Setup) -> None:
    async def failing_batch() -> None:
        async with unit_of_work(sessions(setup.engine)) as session:
            await Outbox(session).add(setup.topics[0], records(0, 10))
            raise Crash

    with pytest.raises(Crash):
        await failing_batch()
    await write(setup, setup.topics[0], records(10, 5))
    await relay_until_drained(setup)
    published = await read_all(setup.bootstrap, setup.topics[0], 5)
    assert sorted(int(m.value or b"") for m in published) == list(range(10, 15))


async def test_a_crash_after_publishing_republishes_with_the_same_ids(setup: Setup) -> None:
    topic = setup.topics[0]
    await write(setup, topic, records(0, 200))
    producer = safe_producer(setup.bootstrap, "relay-crash", request_timeout_s=10)
    await producer.start()

    async def publish_then_crash() -> None:
        async with unit_of_work(sessions(setup.engine)) as session:
            assert await Relay(producer, sessions(setup.engine)).publish_batch(session) == 200
            raise Crash  # after the acks, before the outbox is marked

    try:
        with pytest.raises(Crash):
            await publish_then_crash()
    finally:
        await producer.stop()
    assert await pending(setup) == 200
    await relay_until_drained(setup)
    published = await read_all(setup.bootstrap, topic, 400)
    assert len(published) == 400  # at least once ...
    assert {m.headers["ce_id"] for m in published} == {f"id-{i}".encode() for i in range(200)}


async def test_two_relays_publish_everything_once_and_in_order(setup: Setup) -> None:
    topic = setup.topics[0]
    for start in range(0, 1500, 300):
        await write(setup, topic, records(start, 300))
    await relay_until_drained(setup, relays=2)
    published = await read_all(setup.bootstrap, topic, 1500)
    assert sorted(int(m.value or b"") for m in published) == list(range(1500))
    assert in_order_per_key(published)
