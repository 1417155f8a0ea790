"""Notifier test helpers: tier changes as the scorer publishes them, a directory with a
manager chain and tokens, and a notifier running in the test's own event loop."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from schemas.v1.binding import attribute_headers
from schemas.v1.tiers import TierChangedV1
from services.db.unit_of_work import unit_of_work
from services.effectively_once.offsets import OffsetStore
from services.effectively_once.record import Record
from services.notifier.core.directory import hash_token
from services.notifier.main import Notifier
from services.notifier.settings import NotifierSettings

T = TypeVar("T")
# id -> (rank, high_value), as in the default ruleset
TIERS: dict[str, tuple[int, bool]] = {
    "important_value": (8, True),
    "important_develop": (7, True),
    "important_retain": (6, False),
    "important_winback": (5, False),
    "general_value": (4, False),
    "general_develop": (3, False),
    "general_retain": (2, False),
    "general_winback": (1, False),
}
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def tier(tier_id: str) -> dict[str, Any]:
    rank, high = TIERS[tier_id]
    return {"id": tier_id, "labels": {"zh": f"{tier_id}-zh", "en": tier_id}, "rank": rank,
            "high_value": high}  # fmt: skip


def change(
    customer: str, before: str | None, after: str, *, at: datetime = NOW, change_id: str = ""
) -> TierChangedV1:
    if before is None:
        direction = "initial"
    else:
        delta = TIERS[after][0] - TIERS[before][0]
        direction = "up" if delta > 0 else "down" if delta < 0 else "lateral"
    return TierChangedV1.model_validate(
        {
            "change_id": change_id or uuid.uuid4().hex,
            "customer_id": customer,
            "from_tier": None if before is None else tier(before),
            "to_tier": tier(after),
            "direction": direction,
            "changed_at": at.isoformat(),
            "previous_tier_seconds": None if before is None else 86400,
            "features": {
                "as_of": at.isoformat(), "recency_days": 120, "frequency": 5,
                "monetary": "25000.00", "frequency_90d": 0, "monetary_90d": "0.00",
                "interactions_30d": 0, "tenure_days": 400,
            },
            "levels": {"recency": "low", "frequency": "high", "monetary": "high",
                       "segment": after},
            "thresholds": {"mode": "fixed", "recency_days": "90", "frequency": "3",
                           "monetary": "10000.00"},
            "ruleset_version": "rfm-segments-1",
            "matched_rule": after,
            "cause": {"kind": "clock", "reason": "time_passed"},
        }
    )  # fmt: skip


def change_record(c: TierChangedV1) -> Record:
    headers = attribute_headers(
        {"specversion": "1.0", "id": c.change_id, "source": "tierstream/scorer",
         "type": "tierstream.tier.changed", "subject": c.customer_id,
         "time": c.changed_at.isoformat()}
    )  # fmt: skip
    return Record(c.customer_id.encode(), c.model_dump_json().encode(), headers)


# owner -> manager -> director -> vp; a second owner under another manager; a team queue
PEOPLE = {
    "owner": "manager",
    "manager": "director",
    "director": "vp",
    "vp": None,
    "other": "other.manager",
    "other.manager": None,
}


def token(person: str) -> str:
    return f"token-of-{person}"


def directory_yaml(channels: dict[str, list[dict[str, Any]]] | None = None) -> str:
    channels = channels or {}
    people = [
        {
            "id": pid,
            "name": pid.title(),
            "manager": manager,
            "language": "en" if pid.startswith("other") else "zh",
            "token_sha256": hash_token(token(pid)),
            "channels": channels.get(pid, []),
        }
        for pid, manager in PEOPLE.items()
    ]
    people.append({"id": "admin", "name": "Admin", "role": "admin",
                   "token_sha256": hash_token(token("admin"))})  # fmt: skip
    teams = [{"id": "queue", "name": "Queue", "lead": "manager", "members": ["owner"]}]
    return yaml.safe_dump({"people": people, "teams": teams}, allow_unicode=True)


def settings(
    bootstrap: str, database_url: str, prefix: str, directory: Path, **overrides: Any
) -> NotifierSettings:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap,
        "database_url": database_url,
        "topic_prefix": prefix,
        "group_id": f"{prefix}notifier",
        "directory_file": directory,
        "default_team": "queue",
        "escalate_every_seconds": 0.1,
        "delivery_backoff_seconds": 0.05,
        "delivery_backoff_cap_seconds": 0.2,
        "delivery_timeout_seconds": 2.0,
        "startup_timeout_seconds": 30,
        "session_timeout_seconds": 10,
    }
    return NotifierSettings(**(values | overrides))


@asynccontextmanager
async def running_notifier(
    config: NotifierSettings, now: Callable[[], datetime] | None = None
) -> AsyncIterator[Notifier]:
    notifier = Notifier(config, registry=CollectorRegistry(), **({"now": now} if now else {}))
    await notifier.start()
    try:
        yield notifier
    finally:
        await notifier.stop()
    if notifier.failed.done():  # a background task died: that is the failure to report
        raise notifier.failed.result()


async def eventually(check: Callable[[], Awaitable[T]], timeout_s: float = 30.0) -> T:
    """Polls `check` until it returns a truthy value (returned), with a deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached in {timeout_s:g} s (last: {value!r})")
        await asyncio.sleep(0.05)


async def caught_up(notifier: Notifier, timeout_s: float = 30.0) -> None:
    """Until both loops committed up to their topics' end offsets."""
    client = AIOKafkaConsumer(bootstrap_servers=notifier.settings.kafka_bootstrap_servers)
    await client.start()
    try:

        async def done() -> bool:
            for name, topic in notifier.topics.items():
                cluster = await client._client.fetch_all_metadata()
                parts = [
                    TopicPartition(topic, p) for p in cluster.partitions_for_topic(topic) or []
                ]
                ends = await client.end_offsets(parts)
                async with unit_of_work(notifier.sessions) as session:
                    positions = await OffsetStore(session, name, topic).positions()
                if any((positions.get(tp.partition) or 0) < end for tp, end in ends.items()):
                    return False
            return True

        await eventually(done, timeout_s)
    finally:
        await client.stop()


async def rows(notifier: Notifier, sql: str, **params: Any) -> list[dict[str, Any]]:
    async with unit_of_work(notifier.sessions) as session:
        result = await session.execute(text(sql), params)
        return [dict(row._mapping) for row in result]
