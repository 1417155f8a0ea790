"""Two scorer instances in one consumer group, a second joining and the first leaving in the
middle of a replay: the state and the tier changes (deduped by id) are exactly the oracle's."""

import asyncio
import time as timer
from collections import Counter
from contextlib import AsyncExitStack
from datetime import UTC, date, datetime, time

import orjson
import pytest

from harness.scorer_run import (
    CUSTOMER_EVENTS,
    RULESETS,
    TIER_CHANGES,
    caught_up,
    produce,
    records,
    running_scorer,
    settings,
)
from harness.workload import expect, generate
from services import migrations
from services.scorer.core import rules
from tests.kafka_reader import read_all

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]
EVENTS = 20_000


async def committed(scorer: object) -> int:
    from services.scorer.main import Scorer  # noqa: PLC0415

    assert isinstance(scorer, Scorer)
    status = await scorer.queries.status({})
    return sum(p.committed_offset or 0 for p in status.partitions)


async def until(scorer: object, count: int, timeout_s: float = 120) -> None:
    deadline = timer.monotonic() + timeout_s
    while await committed(scorer) < count:
        if timer.monotonic() > deadline:
            raise TimeoutError(f"fewer than {count} records committed")
        await asyncio.sleep(0.05)


async def test_a_rebalance_loses_and_doubles_nothing(
    kafka_bootstrap: str, database_url: str, topic_prefix: str
) -> None:
    await asyncio.to_thread(migrations.upgrade, database_url)
    workload = generate(1500, EVENTS, days=30, seed=23)
    expected = expect(workload, rules.load((RULESETS / "default.yaml").read_text()), 3)
    config = settings(
        kafka_bootstrap, database_url, topic_prefix, clock="event", max_poll_records=500
    )
    batch = records(workload.events)
    await produce(kafka_bootstrap, topic_prefix + CUSTOMER_EVENTS, batch)
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(running_scorer(config))
        await until(first, len(batch) // 4)
        second = await stack.enter_async_context(running_scorer(config))  # joins: rebalance
        await until(second, len(batch) // 2)
        await first.stop()  # leaves: its partitions move to the second
        await caught_up(second, timeout_s=180)
        assert len({tp.partition for tp in second.loop.claims}) == 3
        wrong = []
        last = max(f.day for facts in workload.facts.values() for f in facts)
        as_of = datetime.combine(date.fromordinal(last), time(12), UTC)
        for customer in workload.facts:
            want = workload.features(customer, last)
            found = await second.queries.customer(customer, as_of)
            assert found is not None, customer
            got = found.why.features
            if (got.frequency, int(got.monetary * 100), got.recency_days) != (
                want.frequency,
                want.monetary,
                want.recency_days,
            ):
                wrong.append(customer)
        tiers = await second.queries.tier_counts()
        stack.pop_all()
        await second.stop()
    assert wrong == []
    assert tiers == dict(Counter(expected.tiers.values()))
    messages = await read_all(kafka_bootstrap, topic_prefix + TIER_CHANGES, len(expected.changes))
    by_id = {}
    for message in messages:
        change = orjson.loads(message.value or b"")
        before = change["from_tier"]["id"] if change["from_tier"] else None
        by_id[change["change_id"]] = (change["customer_id"], before, change["to_tier"]["id"])
    assert by_id == expected.changes
