"""Ingest throughput: POST /v1/events:batch and /v1/events beside the raw aiokafka producer.

Everything runs on this machine: the broker, the ingest process (uvicorn) and the clients.
The raw baseline sends the very records ingest would produce (same key, headers, value),
with the same producer settings (acks=all, idempotence), from one process.
"""

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from harness.processes import service
from harness.stack import free_port
from schemas.v1 import topics
from schemas.v1.binding import encode_event
from schemas.v1.events import event_adapter
from services.effectively_once.producer import safe_producer, send_all
from services.effectively_once.record import Record
from services.effectively_once.topics import ensure_topics
from services.ingest.auth import new_key
from services.topology import tierstream_topics

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
    bootstrap: str, topic: str, batch: list[dict[str, Any]], seconds: float, batch_api: bool
) -> Figures:
    """The same records, no HTTP and no validation: aiokafka alone, 1000 records at a time,
    for `seconds` (like the wrk runs), after a warm-up of its own."""
    records = [Record(*_kvh(event_adapter().validate_python(e))) for e in batch]
    producer = safe_producer(bootstrap, "bench-raw", request_timeout_s=30)
    await producer.start()
    try:
        sent, started = 0, 0.0
        for phase_seconds in (2.0, seconds):  # warm-up, then measured
            sent, started = 0, time.perf_counter()
            while time.perf_counter() - started < phase_seconds:
                if batch_api:
                    await send_all(producer, topic, records, timeout_s=30)
                else:
                    futures = [
                        await producer.send(topic, r.value, key=r.key, headers=r.headers)
                        for r in records
                    ]
                    await asyncio.gather(*futures)
                sent += len(records)
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
    api = "batch API (create_batch/send_batch)" if batch_api else "send() per record"
    return Figures(f"raw aiokafka producer, one process, {api}", sent, elapsed)


def _kvh(event: Any) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    key, headers, value = encode_event(event)
    return key, value, headers


def wrk(url: str, seconds: int, connections: int, env: dict[str, str]) -> dict[str, str]:
    """wrk (C) as the load generator: a Python client would take the CPU it measures."""
    program = shutil.which("wrk")
    if program is None:
        raise RuntimeError("wrk is missing: `make bench` installs it (apt-get install wrk)")
    result = subprocess.run(
        [
            program,
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            str(Path(__file__).with_name("post.lua")),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    )
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT"))
    fields = dict(part.split("=") for part in line.split()[1:])
    if int(fields["failures"]):
        raise RuntimeError(f"{fields['failures']} requests were not answered 202")
    return fields


def post_batches(
    url: str, secret: str, bodies: list[bytes], connections: int, workers: int
) -> Figures:
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl") as file:
        file.write(b"\n".join(bodies))
        file.flush()
        fields = wrk(
            f"{url}/v1/events:batch",
            10,
            connections,
            {
                "TIERSTREAM_BENCH_KEY": secret,
                "TIERSTREAM_BENCH_BODIES": file.name,
                "TIERSTREAM_BENCH_CONTENT_TYPE": "application/cloudevents-batch+json",
            },
        )
    return Figures(
        f"ingest POST /v1/events:batch ({BATCH}/request), {workers} worker(s), "
        f"wrk {connections} connections; p50 {fields['p50_ms']} ms, "
        f"p99 {fields['p99_ms']} ms",
        int(fields["requests"]) * BATCH,
        float(fields["seconds"]),
    )


def post_singles(url: str, secret: str, connections: int, workers: int) -> Figures:
    fields = wrk(
        f"{url}/v1/events",
        10,
        connections,
        {
            "TIERSTREAM_BENCH_KEY": secret,
            "TIERSTREAM_BENCH_CONTENT_TYPE": "application/cloudevents+json",
        },
    )
    return Figures(
        f"ingest POST /v1/events (1 event/request), {workers} worker(s), "
        f"wrk {connections} connections; p50 {fields['p50_ms']} ms, "
        f"p99 {fields['p99_ms']} ms",
        int(fields["requests"]),
        float(fields["seconds"]),
    )


def run(bootstrap: str, total: int = 100_000, clients: int = 4) -> dict[str, Figures]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    asyncio.run(ensure_topics(bootstrap, tierstream_topics(prefix, 12, 12)))
    topic = prefix + topics.CUSTOMER_EVENTS
    sample = events(total)
    batches = [sample[i : i + BATCH] for i in range(0, total, BATCH)]
    bodies = [orjson.dumps(b) for b in batches]
    figures = {
        "raw": asyncio.run(raw_producer(bootstrap, topic, batches[0], 10, batch_api=True)),
        "raw_send": asyncio.run(raw_producer(bootstrap, topic, batches[0], 10, batch_api=False)),
    }
    for workers in (1, 2):
        with ingest_process(bootstrap, prefix, workers) as (url, secret):
            figures[f"batched_{workers}w"] = post_batches(url, secret, bodies, clients, workers)
            figures[f"single_{workers}w"] = post_singles(url, secret, 32, workers)
    return figures


@contextmanager
def ingest_process(bootstrap: str, prefix: str, workers: int) -> Iterator[tuple[str, str]]:
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
