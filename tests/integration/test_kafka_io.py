"""The producer kit against a real broker: batched sends land where `send` would put them."""

import asyncio
import uuid

import pytest

from services.effectively_once.producer import safe_producer, send_all
from services.effectively_once.record import Record
from services.effectively_once.topics import TopicSpec, ensure_topics
from tests.kafka_reader import read_all

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def test_send_all_partitions_by_key_like_the_client_does(kafka_bootstrap: str) -> None:
    batched, single = f"kit-{uuid.uuid4().hex[:8]}-a", f"kit-{uuid.uuid4().hex[:8]}-b"
    assert await ensure_topics(kafka_bootstrap, [TopicSpec(batched, 7), TopicSpec(single, 7)])
    keys = [f"C-{i}".encode() for i in range(300)]
    producer = safe_producer(kafka_bootstrap, "kit-test", request_timeout_s=10)
    await producer.start()
    try:
        await send_all(producer, batched, [Record(k, b"v", [("h", b"1")]) for k in keys], 10)
        for key in keys:
            await producer.send_and_wait(single, b"v", key=key)
    finally:
        await producer.stop()
    via_batch = {m.key: m.partition for m in await read_all(kafka_bootstrap, batched, 300)}
    via_send = {m.key: m.partition for m in await read_all(kafka_bootstrap, single, 300)}
    assert via_batch == via_send
    assert len(set(via_batch.values())) == 7


async def test_ensure_topics_is_idempotent(kafka_bootstrap: str) -> None:
    name = f"kit-{uuid.uuid4().hex[:8]}"
    assert await ensure_topics(kafka_bootstrap, [TopicSpec(name, 2)]) == [name]
    assert await ensure_topics(kafka_bootstrap, [TopicSpec(name, 2)]) == []


async def test_concurrent_small_sends_to_one_partition_all_succeed(kafka_bootstrap: str) -> None:
    """Found by the latency benchmark: aiokafka lets one batch per partition wait in its
    queue and gave up on the others within half a second; send_all waits within its bound."""
    topic = f"kit-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 1)])
    producer = safe_producer(kafka_bootstrap, "kit-test", request_timeout_s=2)
    await producer.start()
    try:
        await asyncio.gather(
            *(
                send_all(
                    producer, topic, [Record(f"k{n}-{i}".encode(), b"v", []) for i in range(50)], 10
                )
                for n in range(200)
            )
        )
    finally:
        await producer.stop()
    assert len(await read_all(kafka_bootstrap, topic, 200 * 50)) == 200 * 50
