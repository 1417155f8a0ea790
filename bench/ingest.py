"""Ingest throughput: POST /v1/events:batch and /v1/events beside the raw aiokafka producer.

Everything runs on this machine: the broker, the ingest process (uvicorn) and the clients.
The raw baseline sends the very records ingest would produce (same key, headers, value),
with the same producer settings (acks=all, idempotence), from one process.
"""

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from schemas.v1 import topics
from schemas.v1.binding import encode_event
from schemas.v1.events import event_adapter
from services.ingest.auth import new_key
from services.kafka_io.producer import safe_producer, send_all
from services.kafka_io.record import Record
from services.kafka_io.topics import ensure_topics, tierstream_topics
from tests.processes import service
from tests.stack import free_port

BATCH = 1000


@dataclass(frozen=True)
class Figures:
    name: str
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def events(count: int) -> list[dict[str, Any]]:
    return [
        {
            "specversion": "1.0",
            "id": f"bench-{uuid.uuid4().hex}",
            "source": "erp/bench",
            "type": "tierstream.transaction",
            "subject": f"C-{i % 50_000:05d}",
            "time": "2026-11-20T10:00:00+08:00",
            "data": {
                "kind": "purchase",
                "amount": f"{(i % 9973) + 1}.{i % 100:02d}",
                "currency": "CNY",
                "order_id": f"SO-{i}",
            },
        }
        for i in range(count)
    ]


async def raw_producer(
    bootstrap: str, topic: str, batch: list[dict[str, Any]], rounds: int, batch_api: bool
) -> Figures:
    """The same records, no HTTP and no validation: aiokafka alone, 1000 records at a time."""
    records = [Record(*_kvh(event_adapter().validate_python(e))) for e in batch]
    producer = safe_producer(bootstrap, "bench-raw", request_timeout_s=30)
    await producer.start()
    try:
        started = time.perf_counter()
        for _ in range(rounds):
            if batch_api:
                await send_all(producer, topic, records, timeout_s=30)
            else:
                futures = [
                    await producer.send(topic, r.value, key=r.key, headers=r.headers)
                    for r in records
                ]
                await asyncio.gather(*futures)
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
    api = "batch API: create_batch/send_batch" if batch_api else "send() per record"
    return Figures(f"raw aiokafka producer, {api}", len(records) * rounds, elapsed)


def _kvh(event: Any) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    key, headers, value = encode_event(event)
    return key, value, headers


async def post_batches(url: str, secret: str, bodies: list[bytes], clients: int) -> Figures:
    headers = {
        "authorization": f"Bearer {secret}",
        "content-type": "application/cloudevents-batch+json",
    }
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def client() -> None:
        async with httpx.AsyncClient(timeout=60) as http:
            while not queue.empty():
                body = queue.get_nowait()
                response = await http.post(f"{url}/v1/events:batch", content=body, headers=headers)
                if response.status_code != 202:
                    raise RuntimeError(response.text)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return Figures(
        f"ingest POST /v1/events:batch ({BATCH}/request, {clients} clients)",
        len(bodies) * BATCH,
        time.perf_counter() - started,
    )


async def post_singles(url: str, secret: str, bodies: list[bytes], clients: int) -> Figures:
    headers = {"authorization": f"Bearer {secret}", "content-type": "application/cloudevents+json"}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def client() -> None:
        async with httpx.AsyncClient(timeout=60) as http:
            while not queue.empty():
                response = await http.post(
                    f"{url}/v1/events", content=queue.get_nowait(), headers=headers
                )
                if response.status_code != 202:
                    raise RuntimeError(response.text)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return Figures(
        f"ingest POST /v1/events (1 event/request, {clients} clients)",
        len(bodies),
        time.perf_counter() - started,
    )


def run(
    bootstrap: str, total: int = 200_000, clients: int = 4, singles: int = 5_000
) -> dict[str, Any]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    asyncio.run(ensure_topics(bootstrap, tierstream_topics(prefix, 12, 12)))
    topic = prefix + topics.CUSTOMER_EVENTS
    sample = events(total)
    batches = [sample[i : i + BATCH] for i in range(0, total, BATCH)]
    bodies = [orjson.dumps(b) for b in batches]
    single_bodies = [orjson.dumps(e) for e in events(singles)]
    figures = {
        "raw": asyncio.run(raw_producer(bootstrap, topic, batches[0], len(batches), True)),
        "raw_send": asyncio.run(raw_producer(bootstrap, topic, batches[0], len(batches), False)),
    }
    for workers in (1, 2):
        with _ingest(bootstrap, prefix, workers) as (url, secret):
            asyncio.run(post_batches(url, secret, bodies[:5], clients))  # warm-up
            batched = asyncio.run(post_batches(url, secret, bodies, clients))
            single = asyncio.run(post_singles(url, secret, single_bodies, 16))
        figures[f"batched_{workers}w"] = _named(batched, workers)
        figures[f"single_{workers}w"] = _named(single, workers)
    return figures


def _named(figures: Figures, workers: int) -> Figures:
    return Figures(f"{figures.name}, {workers} worker process(es)", figures.events, figures.seconds)


@contextmanager
def _ingest(bootstrap: str, prefix: str, workers: int) -> Iterator[tuple[str, str]]:
    secret, key = new_key("bench", ["erp/*"])
    port = free_port()
    env = {
        "TIERSTREAM_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "TIERSTREAM_TOPIC_PREFIX": prefix,
        "TIERSTREAM_INGEST_PORT": str(port),
        "TIERSTREAM_INGEST_WORKERS": str(workers),
        "TIERSTREAM_LOG_LEVEL": "WARNING",
        "TIERSTREAM_INGEST_API_KEYS": json.dumps([key.model_dump(mode="json")]),
    }
    with service("services.ingest.main", port, env) as ingest:
        yield ingest.url, secret
        ingest.terminate()
