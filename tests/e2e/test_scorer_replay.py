"""A replay through the whole pipeline — ingest and scorer as real processes, the scorer
killed with SIGKILL at random points and restarted — ends in exactly the oracle's state:
every customer's features through the API, and the tier changes on the topic (deduped by
id) are the oracle's, none missing, none extra."""

import asyncio
import json
import random
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, date, datetime
from datetime import time as clock_time
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest

from devstack.kafka import run_isolated
from harness.processes import (
    AS_READER,
    ServiceProcess,
    caught_up,
    committed,
    service,
    wait_for,
)
from harness.scorer_run import RULESETS
from harness.stack import free_port
from harness.workload import Workload, expect, generate
from services import migrations
from services.effectively_once.topics import ensure_topics
from services.ingest.auth import new_key
from services.scorer.core import rules
from services.topology import tierstream_topics
from tests.kafka_reader import read_all

pytestmark = pytest.mark.e2e
EVENTS, CUSTOMERS, KILLS = 100_000, 5_000, 3
SECRET, KEY = new_key("replay", ["erp/*"])


def test_replay_with_kill_9_equals_the_oracle(kafka_bootstrap: str, database_url: str) -> None:
    prefix = f"replay-{uuid.uuid4().hex[:8]}."
    run_isolated(ensure_topics(kafka_bootstrap, tierstream_topics(prefix, 3, 3)))
    migrations.upgrade(database_url)
    workload = generate(CUSTOMERS, EVENTS, days=50, seed=11)
    ruleset = rules.load((RULESETS / "default.yaml").read_text())
    expected = expect(workload, ruleset, partitions=3)
    common = {
        "TIERSTREAM_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TIERSTREAM_DATABASE_URL": database_url,
        "TIERSTREAM_TOPIC_PREFIX": prefix,
    }
    scorer_port = free_port()
    scorer_env = common | {
        "TIERSTREAM_SCORER_PORT": str(scorer_port),
        "TIERSTREAM_SCORER_CLOCK": "event",
        "TIERSTREAM_SCORER_MAINTAIN_EVERY_SECONDS": "1",
        # a killed instance's partitions move to its successor once this expires
        "TIERSTREAM_SCORER_SESSION_TIMEOUT_SECONDS": "10",
    }
    ingest_port = free_port()
    ingest_env = common | {
        "TIERSTREAM_INGEST_PORT": str(ingest_port),
        "TIERSTREAM_INGEST_API_KEYS": json.dumps([KEY.model_dump(mode="json")]),
    }
    rng = random.Random(5)
    kill_points = sorted(rng.uniform(0.1, 0.9) * EVENTS for _ in range(KILLS))
    with ExitStack() as stack, service("services.ingest.main", ingest_port, ingest_env) as ingest:
        scorer = stack.enter_context(service("services.scorer.main", scorer_port, scorer_env))
        post_all(ingest, workload.events)
        for point in kill_points:
            wait_for(progressed(scorer, point), 180, f"no progress to {point}")
            scorer.process.kill()  # SIGKILL: no drain, no goodbye
            scorer.process.wait(10)
            scorer = stack.enter_context(service("services.scorer.main", scorer_port, scorer_env))
        final = scorer
        wait_for(lambda: caught_up(final), 300, "the scorer did not catch up")
        assert scorer.output().count("scorer_started") == 1  # this last instance
        mismatches = run_isolated(compare_features(scorer.url, workload))
        tiers = httpx.get(f"{scorer.url}/v1/tiers", headers=AS_READER, timeout=10).json()["tiers"]
    assert mismatches == []
    # the counts moved in the transactions that moved the customers: killed ones moved none
    assert tiers == dict(Counter(expected.tiers.values()))
    found = run_isolated(
        read_all(kafka_bootstrap, f"{prefix}tierstream.tier-changes.v1", len(expected.changes))
    )
    by_id: dict[str, tuple[str, str | None, str]] = {}
    for message in found:
        change = orjson.loads(message.value or b"")
        seen = (
            change["customer_id"],
            change["from_tier"]["id"] if change["from_tier"] else None,
            change["to_tier"]["id"],
        )
        assert by_id.setdefault(change["change_id"], seen) == seen  # redelivery: same change
    assert by_id == expected.changes


def post_all(ingest: ServiceProcess, events: list[dict[str, Any]]) -> None:
    headers = {
        "authorization": f"Bearer {SECRET}",
        "content-type": "application/cloudevents-batch+json",
    }
    with httpx.Client(base_url=ingest.url, timeout=30) as client:
        for start in range(0, len(events), 1000):
            response = client.post(
                "/v1/events:batch",
                content=orjson.dumps(events[start : start + 1000]),
                headers=headers,
            )
            assert response.status_code == 202, response.text


def progressed(scorer: ServiceProcess, point: float) -> Callable[[], bool]:
    def reached() -> bool:
        return committed(scorer) >= point

    return reached


async def compare_features(url: str, workload: Workload) -> list[str]:
    """Every customer at the last day of the replay, and a sample 100 days earlier."""
    last = max(fact.day for facts in workload.facts.values() for fact in facts)
    checks = [(c, last) for c in workload.facts]
    checks += [
        (c, last - 100)
        for c in list(workload.facts)[::10]
        if min(f.day for f in workload.facts[c]) <= last - 100
    ]
    limit = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=AS_READER) as client:

        async def one(customer: str, day: int) -> str | None:
            as_of = datetime.combine(date.fromordinal(day), clock_time(12), UTC)
            async with limit:
                for attempt in range(3):  # a keep-alive connection may close as it is reused
                    try:
                        response = await client.get(
                            f"/v1/customers/{customer}", params={"as_of": as_of.isoformat()}
                        )
                        break
                    except httpx.TransportError:
                        if attempt == 2:
                            raise
            if response.status_code != 200:
                return f"{customer}: {response.status_code} {response.text}"
            got = response.json()["why"]["features"]
            want = workload.features(customer, day)
            mine = {
                "recency_days": got["recency_days"],
                "frequency": got["frequency"],
                "monetary": int(Decimal(got["monetary"]) * 100),
                "frequency_90d": got["frequency_90d"],
                "monetary_90d": int(Decimal(got["monetary_90d"]) * 100),
                "interactions_30d": got["interactions_30d"],
                "tenure_days": got["tenure_days"],
            }
            theirs = {name: getattr(want, name) for name in mine}
            return None if mine == theirs else f"{customer}@{day}: {mine} != {theirs}"

        results = await asyncio.gather(*(one(c, d) for c, d in checks))
    return [r for r in results if r is not None]
