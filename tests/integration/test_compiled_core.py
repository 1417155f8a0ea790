"""The compiled core (native/) is held equal to the Python core on the whole scorer path:
the same records through two scorers, one per core, each on its own topics and database,
end in the same stored customers (state bytes, tier, since, due day, change, snapshot), the
same tier history and the same published tier changes, byte for byte — with poison records,
conflicting duplicates, profiles, several batches, the event clock's in-batch sweeps, the wall
clock's day-boundary sweeps, a re-tier after a new ruleset's activation, and a ruleset with
scores and stability."""

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from harness.databases import create_database, database_on
from harness.scorer_run import (
    CUSTOMER_EVENTS,
    DEAD_LETTERS,
    RULESETS,
    TIER_CHANGES,
    Clock,
    applied,
    caught_up,
    produce,
    records,
    running_scorer,
    settings,
    swept,
)
from harness.workload import generate
from services import migrations
from services.effectively_once.record import Record
from services.effectively_once.topics import ensure_topics
from services.scorer import lifecycle
from services.scorer.core import rules
from services.topology import tierstream_topics
from tests import events
from tests.kafka_reader import read_all

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

# scores and stability over the built-in features: the engine asks Python for `hold`
SCORED = """
version: scored-stable-1
scores:
  value:
    components:
      recency:
        feature: recency_days
        weight: 0.5
        bands: [{max: 20, points: 100}, {max: 45, points: 50}]
        otherwise: 0
      frequency: {feature: frequency_90d, weight: 0.2, linear: {from: "0", to: "6"}}
      monetary:  {feature: monetary_90d, weight: 0.3, linear: {from: "0", to: "20000.00"}}
stability:
  min_days_in_tier: 4
tiers:
  - id: A
    labels: {zh: A, en: A}
    rank: 3
    high_value: true
    condition: scores.value >= 70
    stay_while: scores.value >= 60
  - id: B
    labels: {zh: B, en: B}
    rank: 2
    high_value: false
    condition: scores.value >= 35 || interactions_30d >= 3
  - {id: C, labels: {zh: C, en: C}, rank: 1, high_value: false, condition: "true"}
"""


def successor(ruleset: str | None) -> str:
    """The ruleset activated after the history: its next version, with one threshold moved."""
    if ruleset is None:
        return (
            (RULESETS / "default.yaml")
            .read_text()
            .replace("version: rfm-segments-1", "version: rfm-segments-2")
            .replace('monetary: "10000.00"', 'monetary: "5000.00"')
        )
    return ruleset.replace("scored-stable-1", "scored-stable-2").replace(
        "condition: scores.value >= 35", "condition: scores.value >= 25"
    )


def workload(seed: int) -> tuple[list[Record], datetime]:
    """A generated history with profiles, poison records and reused ids; and its last
    event's time."""
    made = generate(400, 6000, days=45, seed=seed, attributes=True)
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for n, event in enumerate(made.events):
        out.append(event)
        if n % 97 == 0:
            profile = events.customer(event["subject"], source="erp/crm")
            profile["time"] = event["time"]
            profile["data"]["team"] = rng.choice(["north", "south", None])
            profile["data"]["attributes"] = {"tier_hint": rng.randint(0, 3), "vip": n % 2 == 0}
            out.append(profile)
        if n % 211 == 5 and event["type"] == "tierstream.transaction":
            reused = {**event, "data": {**event["data"], "amount": "1.00"}}
            out.append(reused)  # the same id with other content: a conflicting duplicate
    batch = records(out)
    for n in range(0, len(batch), 503):  # poison: not JSON; a key that is not the subject
        batch.insert(n, Record(batch[n].key, b"{not json", batch[n].headers))
        batch.insert(n + 1, Record(b"someone-else", batch[n + 2].value, batch[n + 2].headers))
    last = max(datetime.fromisoformat(e["time"]) for e in out)
    return batch, last


async def new_database(postgres_url: str) -> str:
    name = f"test_{uuid.uuid4().hex[:12]}"
    await create_database(postgres_url, name)
    url = database_on(postgres_url, name)
    await asyncio.to_thread(migrations.upgrade, url)
    return url


async def new_topics(bootstrap: str) -> str:
    prefix = f"test-{uuid.uuid4().hex[:12]}."
    await ensure_topics(bootstrap, tierstream_topics(prefix, 3, 3))
    return prefix


async def run(
    core: str,
    batch: list[Record],
    *,
    bootstrap: str,
    postgres_url: str,
    clock: str,
    now: datetime,
    ruleset: str | None,
    successor: str,
    later_days: int,
) -> dict[str, Any]:
    """One scorer with `core` over the records (small batches), then `later_days` of day
    boundaries on the wall clock, the `successor` ruleset activated (a re-tier) and a few
    more days; what it stored and published."""
    url = await new_database(postgres_url)
    prefix = await new_topics(bootstrap)
    await produce(bootstrap, prefix + CUSTOMER_EVENTS, batch)
    overrides: dict[str, Any] = {"core": core, "clock": clock, "max_poll_records": 700}
    if ruleset is not None:
        path = f"/tmp/{uuid.uuid4().hex}.yaml"  # noqa: S108 - the test's own file
        with open(path, "w", encoding="utf-8") as out:  # noqa: ASYNC230 - small, once
            out.write(ruleset)
        overrides["ruleset_file"] = path
    wall = Clock(now)
    async with running_scorer(settings(bootstrap, url, prefix, **overrides), wall) as scorer:
        await caught_up(scorer, 120)
        for _ in range(later_days):
            wall.advance(86_400)
            await swept(scorer, wall.moment)
        await caught_up(scorer, 120)
        # a new ruleset: every customer re-tiered from its stored row, then more days
        await lifecycle.activate_text(
            scorer.sessions, successor, "test", scorer.scoring.windows, actor="test"
        )
        await applied(scorer, rules.load(successor).version, 60)
        for _ in range(min(later_days, 3)):
            wall.advance(86_400)
            await swept(scorer, wall.moment)
        await caught_up(scorer, 120)
    found = await stored(url)
    return found | {
        "changes": sorted(  # at least once on the topic: deduped, as consumers do
            {
                (m.key, m.value)
                for m in await read_all(
                    bootstrap, prefix + TIER_CHANGES, len(found["history"]), timeout_s=60
                )
            }
        ),
        "letters": sorted(
            {
                (m.key, m.headers.get("ce_id"))
                for m in await read_all(bootstrap, prefix + DEAD_LETTERS, 1, settle_s=0.5)
            }
        ),
    }


async def stored(url: str) -> dict[str, Any]:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        customers = await connection.fetch(
            "SELECT customer_id, state, tier, tier_since, ruleset_version, partition, due_day,"
            " change_id, frequency, monetary, frequency_short, monetary_short, interactions,"
            " first_day, last_purchase_day, scored_day, stable_until FROM customers"
            " ORDER BY customer_id"
        )
        history = await connection.fetch(
            "SELECT change_id, customer_id, changed_at, payload FROM tier_history"
            " ORDER BY change_id"
        )
        counts = await connection.fetch(
            "SELECT partition, tier, customers FROM tier_counts WHERE customers <> 0"
            " ORDER BY partition, tier"
        )
        seen = await connection.fetchval("SELECT count(*) FROM scorer_seen")
    finally:
        await connection.close()
    return {
        "customers": [tuple(r) for r in customers],
        "history": [tuple(r) for r in history],
        "counts": [tuple(r) for r in counts],
        "seen": seen,
    }


def differences(python: dict[str, Any], compiled: dict[str, Any]) -> list[str]:
    out = []
    for key, a in python.items():
        b = compiled[key]
        if a != b:
            if isinstance(a, list):
                only_a = [x for x in a if x not in b][:3]
                only_b = [x for x in b if x not in a][:3]
                out.append(f"{key}: {len(a)} vs {len(b)}; python only {only_a}; compiled {only_b}")
            else:
                out.append(f"{key}: {a!r} vs {b!r}")
    return out


@pytest.mark.parametrize(
    ("clock", "ruleset", "seed"),
    [("event", None, 1), ("wall", None, 2), ("event", SCORED, 3), ("wall", SCORED, 4)],
    ids=["event-default", "wall-default", "event-scored", "wall-scored"],
)
async def test_the_compiled_core_equals_the_python_core(
    kafka_bootstrap: str, postgres_url: str, clock: str, ruleset: str | None, seed: int
) -> None:
    batch, last = workload(seed)
    # the wall clock a few days after the history, so windows hold events and time moves
    now = last + timedelta(days=2) if clock == "wall" else datetime.now(UTC)
    found = {
        core: await run(
            core,
            batch,
            bootstrap=kafka_bootstrap,
            postgres_url=postgres_url,
            clock=clock,
            now=now,
            ruleset=ruleset,
            successor=successor(ruleset),
            later_days=20 if clock == "wall" else 0,
        )
        for core in ("python", "compiled")
    }
    python, compiled = found["python"], found["compiled"]
    assert len(python["customers"]) > 300
    assert len(python["changes"]) > 300  # the rules were exercised
    assert python["letters"]  # poison and conflicts went to dead letters
    assert differences(python, compiled) == []
