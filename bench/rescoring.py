"""The scorer's day-boundary paths at 1,000,000 customers: a full re-tier after a ruleset
activation, and the day-boundary sweep with every customer due (a purchase leaves the 90-day
window that day, so every stored snapshot ends and every state is decoded: the worst case,
not the usual day).

The customers are stored directly (the rows the scorer itself writes), once per benchmark;
the run with the other number of instances gets a copy of that database. The instances are
started, the group settles, and only then does the work begin: the ruleset is activated, or
the day boundary passes (the partitions' last swept day is moved back by one).

The re-tier's baseline is the incumbents' nightly job, one SQL statement over the raw events
of the same customers, in the database the first run re-tiered, after it (bench/nightly.py):
the re-tier's figures give their ratio to it.

`python -m bench.rescoring` runs only these (--customers, default 1,000,000; --instances,
default 2,1; --what retier,sweep); with --sql-only, only the fill and the SQL baseline with
its check, on PostgreSQL alone (no broker, no scorer)."""

import argparse
import asyncio
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text

from bench import cpu, nightly
from bench.figure import Figure, table
from bench.scorers import (
    PARTITIONS,
    bench_sessions,
    clone,
    cpu_seconds,
    database,
    new_topics,
    rss,
    scorers,
    settled,
    transitions,
)
from harness.processes import wait_for
from harness.scorer_run import RULESETS
from harness.stack import local_broker, postgres
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
    bootstrap: str,
    server_url: str,
    customers: int,
    instances: tuple[int, ...],
    what: tuple[str, ...] = ("retier", "sweep"),
) -> list[Figure]:
    """The re-tier (beside its SQL baseline, bench/nightly.py) and the sweep, each with every
    number of `instances`."""
    out = []
    for one in what:
        prefix = new_topics(bootstrap)
        url = database(server_url)
        today = local_day(datetime.now(UTC), ZoneInfo("UTC"))
        asyncio.run(_fill(url, prefix, customers, today, due_today=one == "sweep"))
        copies = [url] + [clone(server_url, url) for _ in instances[1:]]
        measured = [
            (count, *_measure(one, bootstrap, copy, prefix, today=today, instances=count))
            for count, copy in zip(instances, copies, strict=True)
        ]
        sql = None
        if one == "retier":  # after the scorers, in the database they re-tiered
            sql = asyncio.run(nightly.run(url, _customers(customers, today), today))
            out += sql.figures()
        out += [_figure(one, customers, m, sql) for m in measured]
        peak = max(m[3] for m in measured)
        out.append(
            Figure(f"RSS after the {one} (largest instance)", peak, "MiB", target="<= 400 MB")
        )
    return out


def _figure(
    what: str,
    customers: int,
    measured: tuple[int, float, int, float, float, float | None],
    sql: nightly.Baseline | None,
) -> Figure:
    """One run's figure: `measured` is (instances, seconds, changes, largest RSS, scorer
    CPU s, PostgreSQL CPU s)."""
    instances, seconds, changes, memory, spent, postgres = measured
    label = (
        "full re-tier after a ruleset activation"
        if what == "retier"
        else "day-boundary sweep, every customer due"
    )
    figure = Figure(
        f"{label}, {instances} instance{'s' if instances > 1 else ''} "
        f"({customers:,} customers, {changes:,} changes)",
        seconds,
        "s",
        target="<= 10 s" if what == "retier" else "<= 15 s",
        notes={
            "rss_mib": memory,
            "instances": instances,
            "scorer_cpu_us_per_customer": round(spent / customers * 1e6, 1),
            "postgres_cpu_us_per_customer": (
                None if postgres is None else round(postgres / customers * 1e6, 1)
            ),
        },
    )
    if sql is not None:
        figure.baseline = "SQL statement: features from raw events + tiers"
        figure.ratio = seconds / sql.seconds
        figure.target += "; <= 2x the SQL statement"
    return figure


def _measure(
    what: str, bootstrap: str, url: str, prefix: str, *, today: int, instances: int
) -> tuple[float, int, float, float, float | None]:
    """(seconds, tier changes, largest RSS, the instances' CPU s, PostgreSQL's CPU s) of one
    re-tier or sweep."""
    topic = prefix + topics.CUSTOMER_EVENTS
    server = cpu.postgres_pid(url)
    with scorers(bootstrap, url, prefix, instances, maintain_every_seconds=0.5) as running:
        settled(url, topic)
        started = time.monotonic()
        spent, postgres = cpu_seconds(running), cpu.seconds(server)
        if what == "retier":
            asyncio.run(_activate(url, cheaper((RULESETS / "default.yaml").read_text())))
            done = until(url, topic, lambda p: label_of(p.applied or "") == NEW_VERSION)
        else:
            asyncio.run(day_boundary(url, topic))
            done = until(url, topic, lambda p: (p.swept_day or 0) >= today)
        wait_for(done, 1800, f"the {what} did not finish")
        seconds = time.monotonic() - started
        spent, postgres = cpu_seconds(running) - spent, cpu.spent(postgres, cpu.seconds(server))
        return seconds, transitions(running), rss(running), spent, postgres


def cheaper(source: str) -> str:
    """The default ruleset `source` as NEW_VERSION, its monetary threshold halved."""
    found = source.replace("rfm-segments-1", NEW_VERSION).replace(
        'monetary: "10000.00"', 'monetary: "5000.00"'
    )
    if NEW_VERSION not in found or '"5000.00"' not in found:
        raise ValueError("not the default ruleset: its version or threshold was not found")
    return found


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
    customer = _customer_id(n)
    state = apply_all(None, _facts(n, today, due_today=due_today), windows)
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


def _customer_id(n: int) -> str:
    return f"M-{n:07d}"


def _facts(n: int, today: int, *, due_today: bool) -> list[Fact]:
    """Bench customer `n`'s facts: one to three purchases in the 200 days before today (1,000
    to 20,600.00 CNY); with `due_today`, one more exactly 90 days before today."""
    facts = [
        Fact(today - 1 - (n * 7 + k * 61) % 200, "purchase", 100_000 + (n % 50) * 40_000)
        for k in range(1 + n % 3)
    ]
    if due_today:
        facts.append(Fact(today - 90, "purchase", 50_000))
    return facts


def _customers(count: int, today: int) -> Iterator[tuple[str, list[Fact]]]:
    """The re-tier's customers and their facts, as `_fill` stores them."""
    for n in range(count):
        yield _customer_id(n), _facts(n, today, due_today=False)


async def _activate(url: str, ruleset: str) -> None:
    from services.scorer.core.state import Windows  # noqa: PLC0415
    from services.scorer.lifecycle import activate_text  # noqa: PLC0415

    async with bench_sessions(url) as make:
        await activate_text(make, ruleset, "bench", Windows(), actor="bench")


# The running instances read and rewrite their partitions' rows in every transaction: the
# table lock waits for those in flight and holds back the next, so none of them writes its
# older swept day over this one.
_LOCK = text("LOCK TABLE scorer_partitions IN ACCESS EXCLUSIVE MODE")
_DAY_BACK = text("UPDATE scorer_partitions SET swept_day = swept_day - 1 WHERE topic = :topic")


async def day_boundary(url: str, topic: str) -> None:
    """The partitions were swept through today: move them back a day, as if today had just
    begun, while the instances run."""
    async with bench_sessions(url) as make, unit_of_work(make) as session:
        await session.execute(_LOCK)
        await session.execute(_DAY_BACK, {"topic": topic})


def until(url: str, topic: str, done: Callable[[PartitionState], bool]) -> Callable[[], bool]:
    async def check() -> bool:
        async with bench_sessions(url) as make, unit_of_work(make) as session:
            parts = await ControlRepository(session, topic).partitions()
        return len(parts) == PARTITIONS and all(done(p) for p in parts.values())

    return lambda: asyncio.run(check())


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rescoring", description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--instances", default="2,1", help="instance counts, in order")
    parser.add_argument("--what", default="retier,sweep", help="retier, sweep or both")
    parser.add_argument("--sql-only", action="store_true", help="the SQL baseline alone")
    args = parser.parse_args()
    with postgres() as server:
        if args.sql_only:
            url = database(server)
            today = local_day(datetime.now(UTC), ZoneInfo("UTC"))
            asyncio.run(_fill(url, "bench-nightly.", args.customers, today, due_today=False))
            sql = asyncio.run(nightly.run(url, _customers(args.customers, today), today))
            figures = sql.figures()
        else:
            with local_broker() as broker:
                instances = tuple(int(n) for n in args.instances.split(","))
                what = tuple(args.what.split(","))
                figures = run(broker.bootstrap, server, args.customers, instances, what)
    sys.stdout.write(table(figures) + "\n")
    for figure in figures:
        if figure.notes:
            sys.stdout.write(f"{figure.name}: {figure.notes}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
