"""The re-tier's baseline (issue 16): the incumbents' nightly job, one SQL statement that
computes every customer's features from the raw events and the default ruleset's tier, and
writes them to a table; in the database that holds the same customers as the scorer stores
them (bench/rescoring.py fills it).

The raw events (`raw_events`): one row per event the customers' states are made of (the
facts they are filled from): customer_id text, occurred_at timestamptz (a moment of the
fact's day in the business time zone, UTC), kind text (purchase, refund, interaction),
amount bigint (minor units; null for an interaction). In the order they happened, as in a
table events are appended to: COPY into a first table, rewritten in time order; then
vacuumed and analyzed, as a nightly job's table is long settled (pages all-visible,
statistics current). No index: the statement reads every event once, a sequential scan
into a hash aggregate. (Measured at 1,000,000 customers: with an index on (customer_id,
occurred_at) the planner takes it at the default work_mem, a group aggregate over an index
scan that visits the time-ordered heap at random, slower; with 512MB it keeps the scan.)

The statement evaluates at `today` (SPEC §4: an event of local day d is inside a W-day
window at t when t - W < d <= t): the window tests compare occurred_at with the starts of
those local days, constants, as a nightly job is written; recency and tenure turn the last
purchase and the first event into local dates once per customer. CREATE TABLE ... AS
SELECT, which PostgreSQL may give parallel workers (INSERT ... SELECT never gets any; the
planner chooses none here, and forced they were slower), in a session with work_mem 512MB
(a nightly job sets the memory its aggregate needs, so the hash aggregate of a million
customers does not spill to disk; at the default 4MB it was not measurably slower). It
writes each customer's features beside the tier: what a nightly job keeps, and a feature
no one selected would not be computed at all (the planner drops a subquery's unused
outputs).

A baseline computing something else is no baseline: every customer's tier and features
from the SQL are compared with the scorer's pure core on the customer's stored state
(codec.decode, state.features, rules.evaluate); first, the same statement runs on
bench/declared.py's workload (refunds, interactions, two years of history, evaluated at its
end and inside it), against the core on the same facts. Any difference fails the run."""

import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as midnight
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import create_async_engine

from bench import declared
from bench.figure import Figure
from harness.scorer_run import RULESETS
from services.scorer.core import codec, rules
from services.scorer.core.state import (
    Fact,
    Features,
    OutsideHistory,
    Windows,
    apply_all,
    features,
)

EVENTS = "raw_events"
TIERS = "nightly_tiers"
WORK_MEM = "512MB"
ZONE = "UTC"  # the bench's business time zone (the scorer's default)
CHECK_EVENTS = 20_000  # the workload the statement is checked on first (4,000 customers)
SHOWN = 5  # mismatches named in the error

Row = tuple[str, datetime, str, int | None]
# what is compared: recency_days, frequency, monetary, frequency_90d, monetary_90d,
# interactions_30d, tenure_days, tier
Outcome = tuple[int | None, int, int, int, int, int, int, str]


@dataclass(frozen=True)
class Baseline:
    seconds: float  # the statement
    customers: int  # rows it wrote
    events: int  # rows of raw_events
    table_mib: float  # raw_events on disk (no index)
    load_seconds: float  # COPY, the rewrite in time order, VACUUM ANALYZE
    checked: int  # customers compared with the scorer's core (all of them)
    plan: str  # the statement's plan, its nodes top down

    def figures(self) -> list[Figure]:
        notes = {
            "events": self.events,
            "customers": self.customers,
            "checked_against_core": self.checked,
            "mismatches": 0,
            "plan": self.plan,
            "work_mem": WORK_MEM,
            "events_order": "occurred_at (as appended)",
            "index": "none",
            "load_seconds": round(self.load_seconds, 1),
        }
        return [
            Figure(
                "SQL statement: features from raw events + tiers, "
                f"{self.customers:,} customers ({self.events:,} events)",
                self.seconds,
                "s",
                notes=notes,
            ),
            Figure(
                f"SQL baseline's raw events table: {self.events:,} rows, no index",
                self.table_mib,
                "MiB",
            ),
        ]


async def run(url: str, customers: Iterable[tuple[str, Sequence[Fact]]], today: int) -> Baseline:
    """Checks the statement on the workload, loads `customers`' facts as raw events beside the
    stored customers at `url`, times the statement at `today`, and checks its every row
    against the customers' stored states."""
    ruleset = rules.load((RULESETS / "default.yaml").read_text())
    windows = Windows()
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            db: Any = (await connection.get_raw_connection()).driver_connection
            await db.execute(f"SET work_mem = '{WORK_MEM}'")
            await _check_on_workload(db, ruleset, windows)
            started = time.monotonic()
            events = await _load(db, EVENTS, customers)
            load_seconds = time.monotonic() - started
            sql = statement(EVENTS, TIERS, today, ruleset.thresholds, windows)
            plan = await _plan(db, sql)
            started = time.monotonic()
            await db.execute(sql)
            seconds = time.monotonic() - started
            written = await db.fetchval(f"SELECT count(*) FROM {TIERS}")  # noqa: S608
            size = await db.fetchval(f"SELECT pg_total_relation_size('{EVENTS}')")
            checked = await _check_stored(db, today, ruleset, windows)
    finally:
        await engine.dispose()
    return Baseline(seconds, written, events, size / 2**20, load_seconds, checked, plan)


def statement(
    source: str, target: str, today: int, thresholds: rules.Thresholds, windows: Windows
) -> str:
    """The nightly job: `source`'s events to every customer's features and tier at `today`,
    written to a new table `target`. The default ruleset's eight segments, first match wins
    (services/scorer/rulesets/default.yaml), with its fixed thresholds."""
    day = f"'{date.fromordinal(today).isoformat()}'::date"
    until, main, short, contacts = (
        _start(today + 1 - w) for w in (0, windows.main, windows.short, windows.interactions)
    )
    money = "CASE kind WHEN 'refund' THEN -amount ELSE amount END"
    # S608: built from this module's constants and computed dates and numbers, no input
    return f"""
        CREATE TABLE {target} AS
        SELECT customer_id, recency_days, frequency, monetary, frequency_90d, monetary_90d,
               interactions_30d, tenure_days,
               CASE
                   WHEN r AND f AND m THEN 'important_value'
                   WHEN r AND NOT f AND m THEN 'important_develop'
                   WHEN NOT r AND f AND m THEN 'important_retain'
                   WHEN NOT r AND NOT f AND m THEN 'important_winback'
                   WHEN r AND f THEN 'general_value'
                   WHEN r THEN 'general_develop'
                   WHEN f THEN 'general_retain'
                   ELSE 'general_winback'
               END AS tier
        FROM (
            SELECT *,
                   coalesce(recency_days <= {thresholds.recency_days}, false) AS r,
                   frequency >= {thresholds.frequency} AS f,
                   monetary >= {thresholds.monetary} AS m
            FROM (
                SELECT customer_id,
                       {day} - (max(occurred_at) FILTER (WHERE kind = 'purchase')
                                AT TIME ZONE '{ZONE}')::date AS recency_days,
                       count(*) FILTER (WHERE kind = 'purchase' AND occurred_at >= {main})
                           AS frequency,
                       coalesce(sum({money}) FILTER (
                           WHERE kind IN ('purchase', 'refund') AND occurred_at >= {main}), 0)
                           AS monetary,
                       count(*) FILTER (WHERE kind = 'purchase' AND occurred_at >= {short})
                           AS frequency_90d,
                       coalesce(sum({money}) FILTER (
                           WHERE kind IN ('purchase', 'refund') AND occurred_at >= {short}), 0)
                           AS monetary_90d,
                       count(*) FILTER (WHERE kind = 'interaction' AND occurred_at >= {contacts})
                           AS interactions_30d,
                       {day} - (min(occurred_at) AT TIME ZONE '{ZONE}')::date AS tenure_days
                FROM {source}
                WHERE occurred_at < {until}
                GROUP BY customer_id
            ) AS features
        ) AS levels
    """  # noqa: S608


def _start(day: int) -> str:
    """The first moment of local day `day`, as an SQL constant."""
    moment = datetime.combine(date.fromordinal(day), midnight(0), ZoneInfo(ZONE))
    return f"'{moment.isoformat()}'::timestamptz"


def rows(customers: Iterable[tuple[str, Sequence[Fact]]]) -> Iterator[Row]:
    """One raw event per fact, at a moment of its day (UTC) that varies by customer and event;
    None as the amount of an interaction."""
    zone = ZoneInfo(ZONE)
    for customer, facts in customers:
        spread = zlib.crc32(customer.encode())
        for k, fact in enumerate(facts):
            moment = datetime.combine(date.fromordinal(fact.day), midnight(0), zone)
            moment += timedelta(seconds=(spread + k * 7_919) % 86_400)
            amount = None if fact.kind == "interaction" else fact.amount
            yield customer, moment, fact.kind, amount


async def _load(db: Any, table: str, customers: Iterable[tuple[str, Sequence[Fact]]]) -> int:
    """A new raw events table holding `customers`' facts in the order they happened (as a
    table events are appended to holds them), vacuumed and analyzed. They are copied in
    customer order (COPY) into a first table, rewritten in time order into `table`."""
    await db.execute(f"""
        CREATE TABLE {table}_load (
            customer_id text        NOT NULL,
            occurred_at timestamptz NOT NULL,
            kind        text        NOT NULL,
            amount      bigint
        )
    """)
    status: str = await db.copy_records_to_table(
        f"{table}_load",
        records=rows(customers),
        columns=["customer_id", "occurred_at", "kind", "amount"],
    )
    await db.execute(f"CREATE TABLE {table} AS TABLE {table}_load ORDER BY occurred_at")
    await db.execute(f"DROP TABLE {table}_load")
    await db.execute(f"VACUUM (ANALYZE) {table}")
    return int(status.rsplit(maxsplit=1)[-1])


async def _plan(db: Any, sql: str) -> str:
    """The statement's plan, one node per line stripped of costs, joined by ' / '."""
    lines = await db.fetch(f"EXPLAIN (COSTS OFF) {sql}")
    nodes = [r[0].strip().removeprefix("->").strip() for r in lines]
    return " / ".join(n for n in nodes if n and not n.startswith(("Filter", "Group Key")))


def _sql_outcome(row: Mapping[str, Any]) -> Outcome:
    money: list[int] = [int(Decimal(row[k])) for k in ("monetary", "monetary_90d")]
    return (
        row["recency_days"],
        row["frequency"],
        money[0],
        row["frequency_90d"],
        money[1],
        row["interactions_30d"],
        row["tenure_days"],
        row["tier"],
    )


def _core_outcome(found: Features, ruleset: rules.Ruleset) -> Outcome:
    match = rules.evaluate(ruleset, found, ruleset.thresholds)
    if match is None:
        raise AssertionError("the default ruleset has a catch-all")
    return (
        found.recency_days,
        found.frequency,
        found.monetary,
        found.frequency_90d,
        found.monetary_90d,
        found.interactions_30d,
        found.tenure_days,
        match.tier.id,
    )


class Mismatches:
    """Customers whose SQL outcome is not the core's (None: no row on that side)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.checked = 0
        self.found: list[tuple[str, Outcome | None, Outcome | None]] = []

    def compare(self, customer: str, sql: Outcome | None, core: Outcome | None) -> None:
        self.checked += 1
        if sql != core:
            self.found.append((customer, sql, core))

    def fail_if_any(self) -> None:
        if self.found:
            tiers = sum(1 for _, s, c in self.found if s is None or c is None or s[-1] != c[-1])
            shown = "; ".join(f"{c}: sql {s}, core {k}" for c, s, k in self.found[:SHOWN])
            raise AssertionError(
                f"the SQL baseline differs from the scorer's core on {self.what}: "
                f"{len(self.found):,} of {self.checked:,} customers ({tiers:,} tiers): {shown}"
            )


async def _check_stored(db: Any, today: int, ruleset: rules.Ruleset, windows: Windows) -> int:
    """Every customer's row from the statement against the core on its stored state."""
    found = Mismatches("the stored customers")
    query = (
        f"SELECT coalesce(c.customer_id, n.customer_id) AS customer, c.state, n.* "  # noqa: S608
        f"FROM customers c FULL JOIN {TIERS} n USING (customer_id)"
    )
    async with db.transaction():
        async for row in db.cursor(query, prefetch=10_000):
            core = None
            if row["state"] is not None:
                state = codec.decode(row["state"], windows)
                core = _core_outcome(features(state, today, windows), ruleset)
            sql = None if row["tier"] is None else _sql_outcome(row)
            found.compare(row["customer"], sql, core)
    found.fail_if_any()
    return found.checked


async def _check_on_workload(db: Any, ruleset: rules.Ruleset, windows: Windows) -> None:
    """The statement on bench/declared.py's workload (what the fill's purchases alone would
    not test: refunds, interactions, events older than the windows and, inside the history,
    events after the day), at the day after its last event and 100 days before that."""
    facts = declared.workload(CHECK_EVENTS).facts
    states = {customer: apply_all(None, f, windows) for customer, f in facts.items()}
    await _load(db, f"{EVENTS}_check", facts.items())
    last = max(fact.day for f in facts.values() for fact in f)
    for today in (last + 1, last - 100):
        target = f"{TIERS}_check_{today}"
        await db.execute(statement(f"{EVENTS}_check", target, today, ruleset.thresholds, windows))
        sql = {r["customer_id"]: _sql_outcome(r) for r in await db.fetch(f"TABLE {target}")}
        found = Mismatches(f"the workload's {len(facts):,} customers at day {today}")
        for customer, state in states.items():
            core = None
            if state is not None:
                try:
                    core = _core_outcome(features(state, today, windows), ruleset)
                except OutsideHistory:  # its first event is after `today`
                    core = None
            found.compare(customer, sql.get(customer), core)
        found.fail_if_any()
        await db.execute(f"DROP TABLE {target}")
    await db.execute(f"DROP TABLE {EVENTS}_check")
