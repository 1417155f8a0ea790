"""Scorer benchmarks, each beside its baseline. The scorer always runs as its own process
(as `make up` runs it), so that its resident memory is its own.

- throughput: a pre-filled topic to caught-up state (offsets committed, outbox published),
  beside raw aiokafka consumption of the same topic and beside the same scorer with one
  transaction per event (max_poll_records=1, the naive loop);
- latency: ingest's 202 to the tier change on the topic, at a steady 5,000 events/s, every
  event a new customer (so every event makes a change);
- re-tier: a new ruleset activated over 1,000,000 stored customers, to every partition done;
- sweep: a day boundary with 1,000,000 customers due, to every partition swept. Every
  customer is genuinely due (a purchase leaves the 90-day window that day), so every
  stored snapshot ends and every state is decoded: the worst case, not the usual day.
"""

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.ingest import ingest_process
from devstack import migrate
from schemas.v1 import topics
from services.db.engine import create_engine, sessions
from services.db.unit_of_work import unit_of_work
from services.kafka_io.producer import _partition_index
from services.kafka_io.topics import ensure_topics, tierstream_topics
from services.scorer import rules, state_codec
from services.scorer.control_repository import ControlRepository, PartitionState
from services.scorer.facts import local_day
from services.scorer.repository import ScorerRepository, StoredCustomer
from services.scorer.rfm import Fact, Windows, apply_all
from services.scorer.scoring import due_from
from services.scorer.snapshot import of_state
from tests.processes import ServiceProcess, caught_up, committed, service, wait_for
from tests.scorer_run import RULESETS, produce, records
from tests.stack import free_port
from tests.workload import generate

PARTITIONS = 12
SCALE = float(os.environ.get("TIERSTREAM_BENCH_SCALE", "1"))


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    baseline: str = ""
    ratio: float | None = None
    target: str = ""
    notes: dict[str, Any] = field(default_factory=dict)


def run(bootstrap: str, server_url: str) -> list[Figure]:
    figures = throughput(bootstrap, server_url, int(100_000 * SCALE))
    figures += latency(bootstrap, server_url, rate=5000, seconds=20 * SCALE)
    figures += retier_and_sweep(bootstrap, server_url, int(1_000_000 * SCALE))
    return figures


def throughput(bootstrap: str, server_url: str, count: int) -> list[Figure]:
    workload = generate(count // 5, count, days=300, seed=3)
    prefix = _topics(bootstrap)
    topic = prefix + topics.CUSTOMER_EVENTS
    asyncio.run(produce(bootstrap, topic, records(workload.events)))
    total = len(workload.events)
    raw = asyncio.run(_raw_consume(bootstrap, topic, total))
    with _scorer(bootstrap, _database(server_url), prefix) as scorer:
        started = _ready(scorer)
        wait_for(lambda: caught_up(scorer), 1800, "the scorer did not catch up")
        seconds = time.monotonic() - started
        rss = _rss(scorer)
    naive_count = min(3000, total)
    with _scorer(bootstrap, _database(server_url), prefix, max_poll_records=1) as scorer:
        started = _ready(scorer)
        wait_for(lambda: committed(scorer) >= naive_count, 1800, "the naive loop stalled")
        naive_seconds = time.monotonic() - started
    rate = total / seconds
    naive = naive_count / naive_seconds
    return [
        Figure("raw aiokafka consumption (same topic, 12 partitions)", raw, "events/s"),
        Figure(
            f"scorer, pre-filled topic to caught up ({total:,} events, "
            f"{len(workload.facts):,} customers)",
            rate,
            "events/s",
            "raw consumption",
            rate / raw,
            ">= 30,000 events/s",
        ),
        Figure(
            f"scorer, naive: one transaction per event (first {naive_count:,} events)",
            naive,
            "events/s",
            "scorer, batched",
            naive / rate,
        ),
        Figure("scorer RSS after the throughput run", rss, "MiB", target="<= 400 MB"),
    ]


def latency(bootstrap: str, server_url: str, rate: int, seconds: float) -> list[Figure]:
    prefix = _topics(bootstrap)
    with (
        ingest_process(bootstrap, prefix, workers=1) as (url, secret),
        _scorer(bootstrap, _database(server_url), prefix) as scorer,
    ):
        _ready(scorer)
        sent, received = asyncio.run(
            _steady_load(url, secret, bootstrap, prefix, rate=rate, seconds=seconds)
        )
    latencies = sorted(received[c] - sent[c] for c in sent if c in received)
    missing = len(sent) - len(latencies)

    def pct(q: float) -> float:
        return latencies[min(int(q * len(latencies)), len(latencies) - 1)] * 1000

    notes = {"events": len(sent), "not_received": missing}
    return [
        Figure(
            f"latency p50, ingest 202 -> tier change on the topic, {rate}/s",
            pct(0.5),
            "ms",
            notes=notes,
        ),
        Figure(
            f"latency p99, ingest 202 -> tier change on the topic, {rate}/s",
            pct(0.99),
            "ms",
            target="<= 100 ms",
            notes=notes,
        ),
    ]


def retier_and_sweep(bootstrap: str, server_url: str, customers: int) -> list[Figure]:
    """1,000,000 customers stored directly (the same rows the scorer writes), then a ruleset
    activation; then, on another database, a day boundary with all of them due."""
    out = []
    for what in ("retier", "sweep"):
        prefix = _topics(bootstrap)
        url = _database(server_url)
        today = local_day(datetime.now(UTC), ZoneInfo("UTC"))
        asyncio.run(_fill(url, prefix, customers, today, due_today=what == "sweep"))
        with _scorer(bootstrap, url, prefix, maintain_every_seconds=0.5) as scorer:
            _ready(scorer)
            started = time.monotonic()
            if what == "retier":
                text = (RULESETS / "default.yaml").read_text()
                text = text.replace("rfm-segments-1", "rfm-segments-2").replace(
                    'monetary: "10000.00"', 'monetary: "5000.00"'
                )
                asyncio.run(_activate(url, text))
                done = _until(url, prefix, lambda p: p.applied == "rfm-segments-2")
            else:
                done = _until(url, prefix, _swept_to(today))
            wait_for(done, 1800, f"{what} did not finish")
            seconds = time.monotonic() - started
            changes = _changes(scorer)
            rss = _rss(scorer)
        label = (
            "full re-tier after a ruleset activation"
            if what == "retier"
            else ("day-boundary sweep, every customer due")
        )
        target = "<= 10 s" if what == "retier" else "<= 60 s"
        out.append(
            Figure(
                f"{label} ({customers:,} customers, {changes:,} changes)",
                seconds,
                "s",
                target=target,
                notes={"rss_mib": rss},
            )
        )
        out.append(Figure(f"scorer RSS after the {what}", rss, "MiB", target="<= 400 MB"))
    return out


async def _fill(url: str, prefix: str, count: int, today: int, *, due_today: bool) -> None:
    """Customers with one to three purchases in the last 200 days, scored under the default
    ruleset yesterday; with `due_today`, each also bought exactly 90 days before today, so
    that purchase leaves the 90-day window today and every customer is due (and must be
    decoded: its stored snapshot ends today)."""
    ruleset = rules.load((RULESETS / "default.yaml").read_text())
    windows = Windows()
    engine = create_engine(url, "bench", pool_size=1)
    topic = prefix + topics.CUSTOMER_EVENTS
    since = datetime.now(UTC) - timedelta(days=1)
    try:
        make = sessions(engine)
        for start in range(0, count, 20_000):
            rows = [
                _customer(n, today, ruleset, windows, since, due_today=due_today)
                for n in range(start, min(start + 20_000, count))
            ]
            async with unit_of_work(make) as session:
                await ScorerRepository(session).save(rows)
        async with unit_of_work(make) as session:
            control = ControlRepository(session, topic)
            text = (RULESETS / "default.yaml").read_text()
            await control.activate(ruleset.version, text)
            await control.save_partitions(
                [
                    PartitionState(p, None, today - 1, ruleset.version, None, None)
                    for p in range(PARTITIONS)
                ]
            )
    finally:
        await engine.dispose()


def _customer(
    n: int,
    today: int,
    ruleset: rules.Ruleset,
    windows: Windows,
    since: datetime,
    *,
    due_today: bool,
) -> StoredCustomer:
    """The row the scorer would have stored for bench customer `n`, scored yesterday."""
    customer = f"M-{n:07d}"
    facts = [
        Fact(today - 1 - (n * 7 + k * 61) % 200, "purchase", 100_000 + (n % 50) * 40_000)
        for k in range(1 + n % 3)
    ]
    if due_today:
        facts.append(Fact(today - 90, "purchase", 50_000))
    state = apply_all(None, facts, windows)
    if state is None:
        raise AssertionError("no facts")
    snap = of_state(state, today - 1, windows)
    match = rules.evaluate(ruleset, snap.features(today - 1), ruleset.thresholds)
    if match is None:
        raise AssertionError("the default ruleset has a catch-all")
    due = due_from(snap, today - 1, ruleset=ruleset, thresholds=ruleset.thresholds)
    if due_today and due != today:
        raise AssertionError(f"{customer} is due on {due}, not today")
    return StoredCustomer(
        customer,
        state_codec.encode(state),
        match.tier.id,
        since,
        ruleset.version,
        _partition_index(customer.encode(), PARTITIONS),
        due,
        None,
        snap,
    )


async def _activate(url: str, text: str) -> None:
    from services.scorer.preview import activate  # noqa: PLC0415

    engine = create_engine(url, "bench", pool_size=1)
    try:
        await activate(sessions(engine), text, "bench")
    finally:
        await engine.dispose()


def _swept_to(day: int) -> Callable[[PartitionState], bool]:
    return lambda part: (part.swept_day or 0) >= day


def _until(url: str, prefix: str, done: Callable[[PartitionState], bool]) -> Callable[[], bool]:
    topic = prefix + topics.CUSTOMER_EVENTS

    async def check() -> bool:
        engine = create_engine(url, "bench", pool_size=1)
        try:
            async with unit_of_work(sessions(engine)) as session:
                parts = await ControlRepository(session, topic).partitions()
        finally:
            await engine.dispose()
        return len(parts) == PARTITIONS and all(done(p) for p in parts.values())

    return lambda: asyncio.run(check())


async def _steady_load(
    url: str, secret: str, bootstrap: str, prefix: str, *, rate: int, seconds: float
) -> tuple[dict[str, float], dict[str, float]]:
    """Posts `rate` events/s in 100 requests/s; each event is a new customer's first purchase.
    A consumer notes when each customer's change arrives on the topic."""
    sent: dict[str, float] = {}
    received: dict[str, float] = {}
    per_request = rate // 100
    headers = {
        "authorization": f"Bearer {secret}",
        "content-type": "application/cloudevents-batch+json",
    }
    reader = AIOKafkaConsumer(
        prefix + topics.TIER_CHANGES, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await reader.start()
    stop = asyncio.Event()

    async def read() -> None:
        while not stop.is_set() or len(received) < len(sent):
            batch = await reader.getmany(timeout_ms=100)
            now = time.monotonic()
            for messages in batch.values():
                for message in messages:
                    received.setdefault((message.key or b"").decode(), now)
            if stop.is_set() and time.monotonic() > stop_at + 30:
                return

    stop_at = float("inf")
    reading = asyncio.create_task(read())
    moment = datetime.now(UTC).isoformat()
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        await _post(client, headers, [_new_customer("L-warm-up", moment)], {})
        start = time.monotonic()
        n = 0
        tasks = []
        while time.monotonic() - start < seconds:
            batch = [_new_customer(f"L-{n + i}", moment) for i in range(per_request)]
            n += per_request
            tasks.append(asyncio.create_task(_post(client, headers, batch, sent)))
            await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
        await asyncio.gather(*tasks)
    stop_at = time.monotonic()
    stop.set()
    await reading
    await reader.stop()
    return sent, received


async def _post(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    batch: list[dict[str, Any]],
    sent: dict[str, float],
) -> None:
    response = await client.post("/v1/events:batch", content=orjson.dumps(batch), headers=headers)
    now = time.monotonic()
    if response.status_code != 202:
        raise RuntimeError(f"ingest answered {response.status_code}: {response.text[:200]}")
    for event in batch:
        sent[event["subject"]] = now


def _new_customer(customer: str, moment: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"lat-{uuid.uuid4().hex}",
        "source": "erp/bench",
        "type": "tierstream.transaction",
        "subject": customer,
        "time": moment,
        "data": {"kind": "purchase", "amount": "120.00", "currency": "CNY", "order_id": customer},
    }


async def _raw_consume(bootstrap: str, topic: str, total: int) -> float:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=2000,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        count = 0
        started = time.monotonic()
        while count < total:
            batch = await consumer.getmany(timeout_ms=500)
            count += sum(len(records) for records in batch.values())
        return count / (time.monotonic() - started)
    finally:
        await consumer.stop()


@contextmanager
def _scorer(bootstrap: str, url: str, prefix: str, **settings: object) -> Iterator[ServiceProcess]:
    port = free_port()
    env = {
        "TIERSTREAM_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "TIERSTREAM_DATABASE_URL": url,
        "TIERSTREAM_TOPIC_PREFIX": prefix,
        "TIERSTREAM_SCORER_PORT": str(port),
        "TIERSTREAM_SCORER_GROUP_ID": f"bench-{uuid.uuid4().hex[:8]}",
        "TIERSTREAM_LOG_LEVEL": "WARNING",
    }
    env |= {f"TIERSTREAM_SCORER_{name.upper()}": str(value) for name, value in settings.items()}
    with service("services.scorer.main", port, env) as running:
        yield running


def _topics(bootstrap: str) -> str:
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    asyncio.run(ensure_topics(bootstrap, tierstream_topics(prefix, PARTITIONS, PARTITIONS)))
    return prefix


def _database(server_url: str) -> str:
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    from tests.conftest import _create_database  # noqa: PLC0415

    name = f"bench_{uuid.uuid4().hex[:10]}"
    asyncio.run(_create_database(server_url, name))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    return url


def _ready(scorer: ServiceProcess) -> float:
    """Waits until the consumer holds its partitions; returns that moment."""
    wait_for(
        lambda: httpx.get(f"{scorer.url}/readyz", timeout=10).status_code == 200,
        120,
        "the scorer did not become ready",
    )
    return time.monotonic()


def _changes(scorer: ServiceProcess) -> int:
    text = httpx.get(f"{scorer.url}/metrics", timeout=10).text
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("tierstream_tier_transitions_total{")
        )
    )


def _rss(scorer: ServiceProcess) -> float:
    status = Path(f"/proc/{scorer.process.pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024
