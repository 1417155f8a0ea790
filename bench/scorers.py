"""Scorer processes for the benchmarks: one or more instances of `services.scorer.main` in one
consumer group (the way the scorer scales out: Kafka splits the partitions between them),
each its own process, as `make up` runs one; and their databases and topics."""

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from harness.databases import create_database, database_on
from harness.processes import CodeTree, ServiceProcess, service, wait_for
from harness.stack import free_port
from services import migrations
from services.db.engine import create_engine, sessions
from services.db.unit_of_work import unit_of_work
from services.effectively_once.topics import ensure_topics
from services.topology import tierstream_topics

PARTITIONS = 12
# a group is settled when no partition was claimed again for this long (a rebalance
# reaches every member within its heartbeat interval, 3 s)
SETTLED_AFTER_S = 6.0


@contextmanager
def scorers(
    bootstrap: str, url: str, prefix: str, instances: int = 1, **settings: object
) -> Iterator[list[ServiceProcess]]:
    """`instances` scorer processes in one new consumer group, each ready when yielded."""
    with _group(None, bootstrap, url, prefix, instances=instances, settings=settings) as running:
        yield running


@contextmanager
def scorers_from(
    tree: CodeTree, bootstrap: str, url: str, prefix: str, instances: int = 1, **settings: object
) -> Iterator[list[ServiceProcess]]:
    """The same, run from `tree`'s code (bench/ab.py) instead of this checkout's."""
    with _group(tree, bootstrap, url, prefix, instances=instances, settings=settings) as running:
        yield running


@contextmanager
def _group(
    tree: CodeTree | None,
    bootstrap: str,
    url: str,
    prefix: str,
    *,
    instances: int,
    settings: dict[str, object],
) -> Iterator[list[ServiceProcess]]:
    group = f"bench-{uuid.uuid4().hex[:8]}"
    with ExitStack() as stack:
        running = [
            stack.enter_context(_scorer(bootstrap, url, prefix, group, settings, tree=tree))
            for _ in range(instances)
        ]
        for one in running:
            ready(one)
        yield running


@contextmanager
def _scorer(
    bootstrap: str,
    url: str,
    prefix: str,
    group: str,
    settings: dict[str, object],
    *,
    tree: CodeTree | None = None,
) -> Iterator[ServiceProcess]:
    port = free_port()
    env = {
        "TIERSTREAM_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "TIERSTREAM_DATABASE_URL": url,
        "TIERSTREAM_TOPIC_PREFIX": prefix,
        "TIERSTREAM_SCORER_PORT": str(port),
        "TIERSTREAM_SCORER_GROUP_ID": group,
        "TIERSTREAM_LOG_LEVEL": "WARNING",
    }
    env |= {f"TIERSTREAM_SCORER_{name.upper()}": str(value) for name, value in settings.items()}
    with service("services.scorer.main", port, env, tree) as running:
        yield running


def ready(scorer: ServiceProcess) -> float:
    """Waits until the scorer answers ready; returns that moment."""
    wait_for(
        lambda: httpx.get(f"{scorer.url}/readyz", timeout=10).status_code == 200,
        120,
        "the scorer did not become ready",
    )
    return time.monotonic()


@asynccontextmanager
async def bench_sessions(url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on a one-connection engine, disposed on leaving: the bench's short visits
    to the database (fills, checks, the day moved back)."""
    engine = create_engine(url, "bench", pool_size=1)
    try:
        yield sessions(engine)
    finally:
        await engine.dispose()


def settled(url: str, topic: str) -> None:
    """Waits until every partition is claimed and the group stopped rebalancing (the claims
    in PostgreSQL, services/effectively_once/offsets.py, are taken again on every assignment)."""
    query = text("SELECT partition, epoch FROM consumer_offsets WHERE topic = :topic")

    async def claims() -> dict[int, int]:
        async with bench_sessions(url) as make, unit_of_work(make) as session:
            rows = await session.execute(query, {"topic": topic})
            return {row.partition: row.epoch for row in rows}

    last: dict[int, int] = {}
    since = time.monotonic()
    deadline = since + 120
    while time.monotonic() < deadline:
        now = asyncio.run(claims())
        if now != last:
            last, since = now, time.monotonic()
        elif len(now) == PARTITIONS and time.monotonic() - since >= SETTLED_AFTER_S:
            return
        time.sleep(0.5)
    raise TimeoutError("the scorer group did not settle")


def transitions(running: list[ServiceProcess]) -> int:
    """Tier changes the instances made (their transitions counters, summed)."""
    total = 0.0
    for scorer in running:
        body = httpx.get(f"{scorer.url}/metrics", timeout=10).text
        total += sum(
            float(line.rsplit(" ", 1)[1])
            for line in body.splitlines()
            if line.startswith("tierstream_tier_transitions_total{")
        )
    return int(total)


def rss(running: list[ServiceProcess]) -> float:
    """The largest peak resident memory among the instances, MiB."""
    peaks = []
    for scorer in running:
        status = Path(f"/proc/{scorer.process.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
        peaks.append(int(line.split()[1]) / 1024)
    return max(peaks)


def cpu_seconds(running: list[ServiceProcess]) -> float:
    """CPU time the instances used so far (user and system, every thread), s."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for scorer in running:
        stat = Path(f"/proc/{scorer.process.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()  # after the command, which may hold spaces
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / tick


def stored_state(url: str) -> tuple[float, int, dict[str, int]]:
    """The customers' stored state, mean bytes per customer (the encoded state as stored,
    services/scorer/core/codec.py); how many customers; how many in each tier."""

    async def read() -> tuple[float, int, dict[str, int]]:
        async with bench_sessions(url) as make, unit_of_work(make) as session:
            size = (
                await session.execute(
                    text("SELECT avg(octet_length(state)), count(*) FROM customers")
                )
            ).one()
            tiers = await session.execute(
                text("SELECT tier, count(*) FROM customers GROUP BY tier ORDER BY tier")
            )
            return float(size[0] or 0), int(size[1]), {row[0]: int(row[1]) for row in tiers}

    return asyncio.run(read())


def new_topics(bootstrap: str) -> str:
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    asyncio.run(ensure_topics(bootstrap, tierstream_topics(prefix, PARTITIONS, PARTITIONS)))
    return prefix


def database(server_url: str, tree: CodeTree | None = None) -> str:
    """A new database, migrated; by `tree`'s migrations when given (its `tierstream db
    migrate`, in its own process)."""
    url = _new_database(server_url)
    if tree is None:
        migrations.upgrade(url)
    else:
        tree.python("-m", "services.cli", "db", "migrate", "--url", url)
    return url


def clone(server_url: str, url: str) -> str:
    """A copy of the database at `url` (PostgreSQL copies its files: seconds, not a fill)."""
    return _new_database(server_url, template=make_url(url).database)


def _new_database(server_url: str, template: str | None = None) -> str:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    asyncio.run(create_database(server_url, name, template))
    return database_on(server_url, name)
