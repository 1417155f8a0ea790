"""A producer with the safe settings aiokafka does not default to, and bounded sends."""

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Record:
    key: bytes
    value: bytes
    headers: Headers


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


async def send_all(
    producer: AIOKafkaProducer, topic: str, records: Iterable[Record], timeout_s: float
) -> None:
    """Returns once the broker acknowledged every record; raises BrokerUnavailable otherwise.

    The whole call (metadata wait, buffer wait, acks) is bounded: with idempotence on, an
    unbounded send can wait forever while the broker is down.
    """
    futures: list[asyncio.Future[object]] = []
    try:
        async with asyncio.timeout(timeout_s):
            for record in records:  # a loop, not a comprehension: keep what was sent
                sent = await producer.send(
                    topic, record.value, key=record.key, headers=record.headers
                )
                futures.append(sent)
            await asyncio.gather(*futures)
    except TimeoutError as error:
        _forget(futures)
        raise BrokerUnavailable(
            f"Kafka did not acknowledge {len(futures) or 'the'} records within {timeout_s:g} s"
        ) from error
    except KafkaError as error:
        _forget(futures)
        raise BrokerUnavailable(f"Kafka refused the records: {error!r}") from error


def _forget(futures: list[asyncio.Future[object]]) -> None:
    """Records still in flight may land later (harmless: consumers dedupe by event id)."""
    for future in futures:
        future.add_done_callback(_consume_outcome)


def _consume_outcome(future: asyncio.Future[object]) -> None:
    if not future.cancelled():
        future.exception()
