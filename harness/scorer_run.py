"""A scorer running in the test's own event loop, on the real broker and database, with a
clock the test may control; and helpers to feed it and to wait until it caught up."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry

from schemas.v1 import topics
from schemas.v1.binding import encode_event
from schemas.v1.events import event_adapter
from services.db.unit_of_work import unit_of_work
from services.effectively_once.producer import safe_producer, send_all
from services.effectively_once.record import Record
from services.scorer.core.facts import local_day
from services.scorer.core.scoring import label_of
from services.scorer.main import Scorer
from services.scorer.settings import DEFAULT_RULESET, ScorerSettings
from services.scorer.store.control import ControlRepository


class Clock:
    """A controllable wall clock."""

    def __init__(self, start: datetime | None = None) -> None:
        self.moment = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


def settings(bootstrap: str, database_url: str, prefix: str, **overrides: Any) -> ScorerSettings:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap,
        "database_url": database_url,
        "topic_prefix": prefix,
        "maintain_every_seconds": 0.2,
        "group_id": f"{prefix}scorer",
        "startup_timeout_seconds": 30,
        "session_timeout_seconds": 10,
    }
    return ScorerSettings(**(values | overrides))


@asynccontextmanager
async def running_scorer(
    config: ScorerSettings, now: Callable[[], datetime] | None = None
) -> AsyncIterator[Scorer]:
    scorer = Scorer(config, registry=CollectorRegistry(), **({"now": now} if now else {}))
    await scorer.start()
    try:
        yield scorer
    finally:
        await scorer.stop()


def records(events: Sequence[dict[str, Any]]) -> list[Record]:
    out = []
    for raw in events:
        key, headers, value = encode_event(event_adapter().validate_python(raw))
        out.append(Record(key, value, headers))
    return out


async def produce(bootstrap: str, topic: str, batch: Sequence[Record]) -> None:
    producer = safe_producer(bootstrap, "scorer-test", request_timeout_s=10)
    await producer.start()
    try:
        await send_all(producer, topic, list(batch), timeout_s=20)
    finally:
        await producer.stop()


async def caught_up(scorer: Scorer, timeout_s: float = 60.0) -> None:
    """Until every partition's committed offset is its end offset and the outbox is empty.
    End offsets come from a client of the test's own, not the scorer's consumer."""
    deadline = time.monotonic() + timeout_s
    topic = scorer.topic
    client = AIOKafkaConsumer(bootstrap_servers=scorer.settings.kafka_bootstrap_servers)
    await client.start()
    try:
        cluster = await client._client.fetch_all_metadata()
        parts = [TopicPartition(topic, p) for p in cluster.partitions_for_topic(topic) or []]
        assert parts, f"{topic} has no partitions"
        while True:
            ends = await client.end_offsets(parts)
            status = await scorer.queries.status({tp.partition: end for tp, end in ends.items()})
            pending = await scorer.queries.pending_outbox()
            if all(p.lag == 0 for p in status.partitions) and pending == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"not caught up: {status.partitions}, outbox {pending}")
            await asyncio.sleep(0.2)
    finally:
        await client.stop()


async def swept(scorer: Scorer, day: datetime, timeout_s: float = 30.0) -> None:
    """Until every partition held was swept for the local day of `day`."""
    target = local_day(day, scorer.scoring.zone)
    deadline = time.monotonic() + timeout_s
    while True:
        async with unit_of_work(scorer.sessions) as session:
            parts = await ControlRepository(session, scorer.topic).partitions()
        if parts and all((p.swept_day or 0) >= target for p in parts.values()):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"not swept to day {target}: {parts}")
        await asyncio.sleep(0.1)


async def applied(scorer: Scorer, label: str, timeout_s: float = 30.0) -> None:
    """Until every partition was re-tiered under the standard labelled `label` (a ruleset
    version, and in population mode its thresholds: `Standard.label`)."""
    deadline = time.monotonic() + timeout_s
    while True:
        async with unit_of_work(scorer.sessions) as session:
            parts = await ControlRepository(session, scorer.topic).partitions()
        if parts and all(label_of(p.applied or "") == label for p in parts.values()):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"not re-tiered under {label}: {parts}")
        await asyncio.sleep(0.1)


CUSTOMER_EVENTS = topics.CUSTOMER_EVENTS
TIER_CHANGES = topics.TIER_CHANGES
CUSTOMER_TIERS = topics.CUSTOMER_TIERS
DEAD_LETTERS = topics.DEAD_LETTERS
RULESETS = DEFAULT_RULESET.parent
