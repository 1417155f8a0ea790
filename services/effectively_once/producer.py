"""A producer with the safe settings aiokafka does not default to, and bounded sends."""

import asyncio
from collections.abc import Iterable, Iterator

import structlog
import tierstream_native
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from aiokafka.producer.message_accumulator import BatchBuilder

from services.effectively_once.record import Record

log = structlog.get_logger()


def partition_index(key: bytes, count: int) -> int:
    """The partition a key goes to among `count`, as the client's default murmur2 partitioner
    puts it: murmur2 in the compiled core (aiokafka's is pure Python, ~3 us a key; held
    equal to it by tests/unit/test_native_partition.py)."""
    return tierstream_native.partition_of(key, count)


class BrokerUnavailable(Exception):
    """Kafka did not acknowledge every record in time: none may be assumed durable."""


def safe_producer(
    bootstrap_servers: str, client_id: str, request_timeout_s: float
) -> AIOKafkaProducer:
    """acks=all and idempotence: no loss on leader change, no duplicates from retries."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        max_batch_size=256 * 1024,
        max_request_size=4 * 1024 * 1024,
        request_timeout_ms=int(request_timeout_s * 1000),
        retry_backoff_ms=100,
        metadata_max_age_ms=60_000,
    )


async def start_producer(producer: AIOKafkaProducer, timeout_s: float) -> None:
    """Waits for Kafka at start-up, within a bound, instead of failing on the first try."""
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                await producer.start()
            except KafkaConnectionError as error:
                log.warning("kafka_not_reachable", error=str(error))
                await asyncio.sleep(1.0)
            else:
                return


async def send_all(
    producer: AIOKafkaProducer, topic: str, records: Iterable[Record], timeout_s: float
) -> None:
    """Returns once the broker acknowledged every record; raises BrokerUnavailable otherwise.

    Records are appended to one batch per partition (aiokafka's batch API: no future per
    record), partitioned by key with the client's default murmur2 partitioner, so a key lands
    where `producer.send` would put it. The whole call (metadata wait, buffer wait, acks) is
    bounded: with idempotence on, an unbounded send can wait forever while the broker is down.
    """
    futures: list[asyncio.Future[object]] = []
    try:
        async with asyncio.timeout(timeout_s):
            partitions = sorted(await producer.partitions_for(topic))
            for partition, batch in _batches(producer, records, partitions):
                futures.append(await _enqueue(producer, batch, topic, partition))
            await asyncio.gather(*futures)
    except TimeoutError as error:
        _forget(futures)
        raise BrokerUnavailable(
            f"Kafka did not acknowledge the records within {timeout_s:g} s"
        ) from error
    except KafkaError as error:
        _forget(futures)
        raise BrokerUnavailable(f"Kafka refused the records: {error!r}") from error


async def _enqueue(
    producer: AIOKafkaProducer, batch: BatchBuilder, topic: str, partition: int
) -> asyncio.Future[object]:
    """aiokafka queues one batch per partition and makes later ones wait for it to drain;
    that wait gives up early under concurrency (aiokafka 0.14 subtracts the elapsed time
    cumulatively), which made concurrent small requests to one partition fail within half a
    second. The caller's `asyncio.timeout` is the real bound, so the wait is simply resumed."""
    while True:
        try:
            future: asyncio.Future[object] = await producer.send_batch(
                batch, topic, partition=partition
            )
        except KafkaTimeoutError:
            await asyncio.sleep(0.001)
        else:
            return future


def _batches(
    producer: AIOKafkaProducer, records: Iterable[Record], partitions: list[int]
) -> Iterator[tuple[int, BatchBuilder]]:
    """Full batches as they fill up, then the rest, one open batch per partition."""
    open_batches: dict[int, BatchBuilder] = {}
    count = len(partitions)
    for record in records:
        partition = partitions[partition_index(record.key, count)]
        batch = open_batches.get(partition)
        if batch is None:
            batch = open_batches[partition] = producer.create_batch()
        if (
            batch.append(key=record.key, value=record.value, timestamp=None, headers=record.headers)
            is None
        ):
            yield partition, batch
            batch = open_batches[partition] = producer.create_batch()
            if (
                batch.append(
                    key=record.key, value=record.value, timestamp=None, headers=record.headers
                )
                is None
            ):
                raise ValueError(f"a record of {len(record.value)} bytes exceeds the batch size")
    yield from open_batches.items()


def _forget(futures: list[asyncio.Future[object]]) -> None:
    """Records still in flight may land later (harmless: consumers dedupe by event id)."""
    for future in futures:
        future.add_done_callback(_consume_outcome)


def _consume_outcome(future: asyncio.Future[object]) -> None:
    if not future.cancelled():
        future.exception()
