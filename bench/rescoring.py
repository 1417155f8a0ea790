"""The scorer's day-boundary paths at 1,000,000 customers: a full re-tier after a ruleset
activation, and the day-boundary sweep with every customer due (a purchase leaves the 90-day
window that day, so every stored snapshot ends and every state is decoded: the worst case,
not the usual day).

The customers are stored directly (the rows the scorer itself writes), once per benchmark;
the run with the other number of instances gets a copy of that database. The instances are
started, the group settles, and only then does the work begin: the ruleset is activated, or
the day boundary passes (the partitions' last swept day is moved back by one)."""

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text

from bench.figure import Figure
from bench.scorers import (
    PARTITIONS,
    bench_sessions,
    clone,
    database,
    new_topics,
    rss,
    scorers,
    settled,
    transitions,
)
from harness.processes import wait_for
from harness.scorer_run import RULESETS
from schemas.v1 import topics
from services.db.unit_of_work import unit_of_work
from services.effectively_once.producer import partition_index
from services.scorer.core import codec, rules
from services.scorer.core.facts import local_day
from services.scorer.core.scoring import Standard, due_from, label_of
from services.scorer.core.snapshot import of_state
from services.scorer.core.state import Fact, Windows, apply_all
from services.scorer.store.control import ControlRepository, PartitionState
from services.scorer.store.customers import ScorerRepository, StoredCustomer
from services.scorer.store.tiers import TierRepository

NEW_VERSION = "rfm-segments-2"


def run(
    bootstrap: str, server_url: str, customers: int, instances: tuple[int, ...]
) -> list[Figure]:
    out = []
    for what in ("retier", "sweep"):
        prefix = new_topics(bootstrap)
        url = database(server_url)
        today = local_day(datetime.now(UTC), ZoneInfo("UTC"))
        asyncio.run(_fill(url, prefix, customers, today, due_today=what == "sweep"))
        copies = [url] + [clone(server_url, url) for _ in instances[1:]]
        peak = 0.0
        for count, copy in zip(instances, copies, strict=True):
            seconds, changes, memory = _measure(
                what, bootstrap, copy, prefix, today=today, instances=count
            )
            peak = max(peak, memory)
            label = (
                "full re-tier after a ruleset activation"
                if what == "retier"
                else "day-boundary sweep, every customer due"
            )
            out.append(
                Figure(
                    f"{label}, {count} instance{'s' if count > 1 else ''} "
                    f"({customers:,} customers, {changes:,} changes)",
                    seconds,
                    "s",
                    target="<= 10 s" if what == "retier" else "<= 60 s",
                    notes={"rss_mib": memory, "instances": count},
                )
            )
        out.append(
            Figure(f"RSS after the {what} (largest instance)", peak, "MiB", target="<= 400 MB")
        )
    return out


def _measure(
    what: str, bootstrap: str, url: str, prefix: str, *, today: int, instances: int
) -> tuple[float, int, float]:
    """(seconds, tier changes, largest RSS) of one re-tier or sweep."""
    topic = prefix + topics.CUSTOMER_EVENTS
    with scorers(bootstrap, url, prefix, instances, maintain_every_seconds=0.5) as running:
        settled(url, topic)
        started = time.monotonic()
        if what == "retier":
            asyncio.run(_activate(url, _cheaper_ruleset()))
            done = _until(url, topic, lambda p: label_of(p.applied or "") == NEW_VERSION)
        else:
            asyncio.run(_day_boundary(url, topic))
            done = _until(url, topic, lambda p: (p.swept_day or 0) >= today)
        wait_for(done, 1800, f"the {what} did not finish")
        return time.monotonic() - started, transitions(running), rss(running)


def _cheaper_ruleset() -> str:
    text_ = (RULESETS / "default.yaml").read_text()
    return text_.replace("rfm-segments-1", NEW_VERSION).replace(
        'monetary: "10000.00"', 'monetary: "5000.00"'
    )


async def _fill(url: str, prefix: str, count: int, today: int, *, due_today: bool) -> None:
    """Customers with one to three purchases in the last 200 days, scored under the default
    ruleset yesterday and swept through today; with `due_today`, each also bought exactly 90
    days before today, so that purchase leaves the 90-day window today and every customer is
    due (and must be decoded: its stored snapshot ends today)."""
    source = (RULESETS / "default.yaml").read_text()
    ruleset = rules.load(source)
    windows = Windows()
    topic = prefix + topics.CUSTOMER_EVENTS
    since = datetime.now(UTC) - timedelta(days=1)
    async with bench_sessions(url) as make:
        for start in range(0, count, 20_000):
            rows = [
                _customer(n, today, ruleset, windows, since, due_today=due_today)
                for n in range(start, min(start + 20_000, count))
            ]
            async with unit_of_work(make) as session:
                await ScorerRepository(session).save(rows)
                await TierRepository(session).count_tiers(
                    Counter((r.partition, r.tier) for r in rows if r.tier is not None)
                )
        async with unit_of_work(make) as session:
            control = ControlRepository(session, topic)
            active = await control.activate(ruleset.version, source)
            applied = Standard(ruleset, ruleset.thresholds, active.activation or 0).key
            await control.save_partitions(
                [PartitionState(p, None, today, applied, None, None) for p in range(PARTITIONS)]
            )


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
        codec.encode(state),
        match.tier.id,
        since,
        ruleset.version,
        partition_index(customer.encode(), PARTITIONS),
        due,
        None,
        snap,
    )


async def _activate(url: str, ruleset: str) -> None:
    from services.scorer.core.state import Windows  # noqa: PLC0415
    from services.scorer.preview import activate  # noqa: PLC0415

    async with bench_sessions(url) as make:
        await activate(make, ruleset, "bench", Windows())


# The running instances read and rewrite their partitions' rows in every transaction: the
# table lock waits for those in flight and holds back the next, so none of them writes its
# older swept day over this one.
_LOCK = text("LOCK TABLE scorer_partitions IN ACCESS EXCLUSIVE MODE")
_DAY_BACK = text("UPDATE scorer_partitions SET swept_day = swept_day - 1 WHERE topic = :topic")


async def _day_boundary(url: str, topic: str) -> None:
    """The partitions were swept through today: move them back a day, as if today had just
    begun, while the instances run."""
    async with bench_sessions(url) as make, unit_of_work(make) as session:
        await session.execute(_LOCK)
        await session.execute(_DAY_BACK, {"topic": topic})


def _until(url: str, topic: str, done: Callable[[PartitionState], bool]) -> Callable[[], bool]:
    async def check() -> bool:
        async with bench_sessions(url) as make, unit_of_work(make) as session:
            parts = await ControlRepository(session, topic).partitions()
        return len(parts) == PARTITIONS and all(done(p) for p in parts.values())

    return lambda: asyncio.run(check())
