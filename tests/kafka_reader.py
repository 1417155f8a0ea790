"""An independent consumer that reads back what the services wrote."""

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition


@dataclass(frozen=True)
class Message:
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    partition: int


async def read_all(
    bootstrap: str, topic: str, expected: int, timeout_s: float = 20.0, settle_s: float = 0.5
) -> list[Message]:
    """Every record of the topic from the beginning: at least `expected`, and every record
    up to the end offsets the topic has when the reading starts (redelivered duplicates
    count towards `expected`, so that alone could stop before a partition's tail), then
    `settle_s` more to catch extras. Raises TimeoutError when fewer than `expected` arrive
    in time."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()
        partitions = [TopicPartition(topic, p) for p in cluster.partitions_for_topic(topic) or []]
        if not partitions:
            raise LookupError(f"topic {topic} does not exist")
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[Message] = []
        async with asyncio.timeout(timeout_s):
            while len(found) < expected or await _behind(consumer, ends):
                found += _messages(await consumer.getmany(timeout_ms=200))
        found += _messages(await consumer.getmany(timeout_ms=int(settle_s * 1000)))
        return found
    finally:
        await consumer.stop()


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    """Whether a partition's position is still before its end offset."""
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return True
    return False


def _messages(batches: dict[TopicPartition, list]) -> list[Message]:  # type: ignore[type-arg]
    return [
        Message(record.key, record.value, dict(record.headers), tp.partition)
        for tp, records in batches.items()
        for record in records
    ]
