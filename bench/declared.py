"""The SPEC §10 example ruleset beside the default one (issue 15): the same events, consumed
by one scorer instance from a pre-filled topic to caught up, once with each ruleset.

The events are harness/workload.py's with `attributes` (the transactions' product lines and
the interactions' channels that the example's `where`s read); every run has its own copy of
the topic (a new prefix) and its own new database. A run gives:
- events/s, from the instance answering ready to caught up (offsets committed, outbox
  published), as bench/scorer.py's throughput;
- the scorer process's CPU per event: its user and system time (all its threads, from
  /proc) at caught up minus at ready;
- PostgreSQL's CPU per event over the same span: the postmaster's and every process's under
  it (backends, WAL writer, checkpointer, autovacuum; bench/cpu.py), the other half of what
  the scorer costs; and the Kafka broker's (its JVM), which the scorer's fetches, commits
  and outbox sends cost;
all over the records processed in that span: the topic's (duplicates included) but those
already committed when the instance was seen ready (it starts consuming before; a few
thousand records at small scales, in the notes);
- the state stored per customer: the mean size of `customers.state` after the run.

Beside the default ruleset's run, the quix-streams peer (bench/peer/: the same features and
segments, exactly-once, RocksDB state, one process) consumes the same events, measured the
same way; the scorer's events/s and CPU per event are given as ratios to it (scorer / peer).

Each pair runs on both clocks, on the same events: a history of 300 days over two years
whose last day is the bench's today (UTC; issue 16: an undated history ended months before
the bench's now, so at the wall clock every window was empty and every customer got one
`initial` change). On the wall clock the rules see the windows as they are today; on the
event clock (replay, SPEC §4: now is the latest event time in the partition) each event is
judged as of its own time, and every new day in a partition sweeps that partition's due
customers in memory, inside the batch (work the peer does not do: it has no sweep). A batch
whose sweeps hold the scorer's event loop past the relay's send bound (10 s) makes the
scorer exit, and the run fails with the end of its log rather than waiting.

`make bench` runs one round of each pair and of the peer within the scorer's throughput
(bench/scorer.py); `python -m bench.declared` runs only these, in interleaved rounds
(TIERSTREAM_BENCH_ROUNDS, default 3; TIERSTREAM_BENCH_SCALE as for `make bench`): per round
and clock the default ruleset, the peer and the example, every other round in reverse
order; it writes their medians to bench/results/declared.md and declared.json."""

import asyncio
import json
import os
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from bench import cpu, machine
from bench.figure import Figure, table
from bench.peer import run as peer
from bench.peer.run import PeerRun
from bench.scorers import (
    cpu_seconds,
    database,
    new_topics,
    rss,
    scorers,
    stored_state,
    transitions,
)
from harness.processes import ServiceProcess, caught_up, committed, wait_for
from harness.scorer_run import produce, records
from harness.stack import local_broker, postgres
from harness.workload import Workload, generate
from schemas.v1 import topics
from services.effectively_once.record import Record
from services.scorer.settings import DEFAULT_RULESET

Ruleset = Literal["default", "example"]
Clock = Literal["wall", "event"]
RULESET_FILES: dict[Ruleset, Path] = {
    "default": DEFAULT_RULESET,
    "example": DEFAULT_RULESET.parent / "abc-value.yaml",  # SPEC §10's A/B/C value score
}
NAMES: dict[Ruleset, str] = {"default": "default ruleset", "example": "§10 example ruleset"}
RESULTS = Path(__file__).parent / "results"
PEER = "quix-streams peer"
RATE_TARGET = ">= the peer and >= 25,000 events/s"
CPU_TARGET = "<= 30 µs/event"
POSTGRES_TARGET = "<= 15 µs/event"


@dataclass(frozen=True)
class Run:
    ruleset: Ruleset
    clock: Clock
    events: int  # records on the topic, duplicates included
    seconds: float  # ready to caught up
    cpu_seconds: float  # the scorer process's, over the same span
    state_bytes: float  # mean stored state per customer
    customers: int
    tiers: dict[str, int]
    changes: int
    rss_mib: float
    committed_at_ready: int
    postgres_cpu_seconds: float | None = None  # the server's processes', same span
    broker_cpu_seconds: float | None = None  # the broker's, same span
    rounds: list[dict[str, float]] = field(default_factory=list)  # a median's runs

    @property
    def measured(self) -> int:
        """The records processed between ready and caught up."""
        return self.events - self.committed_at_ready

    @property
    def rate(self) -> float:
        return self.measured / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu_seconds / self.measured * 1e6

    @property
    def postgres_us(self) -> float | None:
        seconds = self.postgres_cpu_seconds
        return None if seconds is None else seconds / self.measured * 1e6

    @property
    def broker_us(self) -> float | None:
        seconds = self.broker_cpu_seconds
        return None if seconds is None else seconds / self.measured * 1e6

    def notes(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ruleset": RULESET_FILES[self.ruleset].name,
            "clock": self.clock,
            "events": self.events,
            "seconds": round(self.seconds, 2),
            "cpu_seconds": round(self.cpu_seconds, 2),
            "customers": self.customers,
            "tiers": self.tiers,
            "tier_changes": self.changes,
            "rss_mib": round(self.rss_mib, 1),
            "committed_at_ready": self.committed_at_ready,
        }
        for name, seconds in (
            ("postgres_cpu_seconds", self.postgres_cpu_seconds),
            ("broker_cpu_seconds", self.broker_cpu_seconds),
        ):
            if seconds is not None:
                out[name] = round(seconds, 2)
        if self.rounds:
            out["rounds"] = self.rounds
        return out


def workload(count: int) -> Workload:
    """bench/scorer.py's throughput workload, with the attributes the example reads, dated
    so that its last day is today (UTC): the wall clock's windows hold its recent history."""
    today = datetime.now(UTC).date()
    return generate(count // 5, count, days=300, seed=3, attributes=True, end=today)


def measure(
    bootstrap: str,
    server_url: str,
    batch: list[Record],
    *,
    ruleset: Ruleset = "default",
    clock: Clock = "wall",
    prefix: str | None = None,
    shadow: bool = False,
) -> Run:
    """One scorer instance, a new database, from a pre-filled topic to caught up. `prefix`:
    topics that already hold `batch`; without it, a new copy of them is made and filled.
    `shadow`: with SHADOW_RULESET running in shadow beside the active one (SPEC §11)."""
    if prefix is None:
        prefix = new_topics(bootstrap)
        asyncio.run(produce(bootstrap, prefix + topics.CUSTOMER_EVENTS, batch))
    url = database(server_url)
    if shadow:
        asyncio.run(_start_shadow(url))
    settings: dict[str, object] = {"clock": clock}
    if ruleset != "default":
        settings["ruleset_file"] = RULESET_FILES[ruleset].resolve()
    servers = (cpu.postgres_pid(server_url), cpu.broker_pid(bootstrap))
    with scorers(bootstrap, url, prefix, 1, **settings) as running:
        started = time.monotonic()
        spent = cpu_seconds(running)
        postgres, broker = (cpu.seconds(pid) for pid in servers)
        early = committed(running[0])
        wait_for(lambda: _caught_up(running[0]), 1800, "the scorer did not catch up")
        seconds = time.monotonic() - started
        spent = cpu_seconds(running) - spent
        postgres, broker = (
            cpu.spent(before, cpu.seconds(pid))
            for before, pid in zip((postgres, broker), servers, strict=True)
        )
        memory = rss(running)
        changes = transitions(running)
    size, customers, tiers = stored_state(url)
    return Run(
        ruleset,
        clock,
        len(batch),
        seconds,
        spent,
        size,
        customers,
        tiers,
        changes,
        memory,
        early,
        postgres,
        broker,
    )


# the default ruleset with a lower monetary threshold: it disagrees with it on many customers
SHADOW_RULESET = (
    DEFAULT_RULESET.read_text(encoding="utf-8")
    .replace("version: rfm-segments-1", "version: rfm-segments-shadow")
    .replace('monetary: "10000.00"', 'monetary: "5000.00"')
)


async def _start_shadow(url: str) -> None:
    """SHADOW_RULESET stored and started in shadow in a new database, before any scorer."""
    from services.db.engine import create_engine, sessions  # noqa: PLC0415
    from services.db.unit_of_work import unit_of_work  # noqa: PLC0415
    from services.scorer.store.control import ControlRepository  # noqa: PLC0415
    from services.scorer.store.shadow import ShadowRepository  # noqa: PLC0415

    engine = create_engine(url, "bench")
    try:
        async with unit_of_work(sessions(engine)) as session:
            await ControlRepository(session, "").store_ruleset(
                "rfm-segments-shadow", SHADOW_RULESET, "bench"
            )
            if await ShadowRepository(session).start("rfm-segments-shadow", "bench") is None:
                raise RuntimeError("a new database already runs a shadow")
    finally:
        await engine.dispose()


def _caught_up(scorer: ServiceProcess) -> bool:
    """caught_up, or the scorer's exit and the end of its log (not the wait's timeout)."""
    if scorer.process.poll() is not None:
        raise RuntimeError(
            f"the scorer exited ({scorer.process.returncode}): {scorer.output()[-2000:]}"
        )
    return caught_up(scorer)


def pair(bootstrap: str, server_url: str, batch: list[Record], clock: Clock) -> tuple[Run, Run]:
    """The default ruleset's run and the example's, each on its own copy of the topic."""
    default = measure(bootstrap, server_url, batch, clock=clock)
    return default, measure(bootstrap, server_url, batch, ruleset="example", clock=clock)


def figures(
    default: Run, example: Run, *, default_rate: bool = True, peer_run: PeerRun | None = None
) -> list[Figure]:
    """The default's figures (beside the peer's, on the same clock, when given), the peer's,
    then the example's, each beside the default's (same events, same clock).
    `default_rate=False` when the default's events/s is reported elsewhere (it is given
    beside the peer's all the same)."""
    clock = f"{default.clock} clock"
    about = f"({default.events:,} events, {default.customers:,} customers)"
    baseline = f"default ruleset, {clock}"
    versus = f"{PEER}, {clock}" if peer_run else ""

    def to_peer(value: float | None, base: float | None) -> float | None:
        return value / base if value is not None and base else None

    out = []
    if default_rate or peer_run:
        out.append(
            Figure(
                f"default ruleset, {clock}: 1 instance, pre-filled topic to caught up {about}",
                default.rate,
                "events/s",
                versus,
                to_peer(default.rate, peer_run.rate if peer_run else None),
                RATE_TARGET,
                notes=default.notes(),
            )
        )
    out.append(
        Figure(
            f"default ruleset, {clock}: scorer CPU per event {about}",
            default.cpu_us,
            "µs/event",
            versus,
            to_peer(default.cpu_us, peer_run.cpu_us if peer_run else None),
            CPU_TARGET,
            notes=default.notes(),
        )
    )
    if default.postgres_us is not None:
        out.append(
            Figure(
                f"default ruleset, {clock}: PostgreSQL CPU per event",
                default.postgres_us,
                "µs/event",
                target=POSTGRES_TARGET,
            )
        )
    if default.broker_us is not None:
        out.append(
            Figure(
                f"default ruleset, {clock}: Kafka broker CPU per event",
                default.broker_us,
                "µs/event",
                versus,
                to_peer(default.broker_us, peer_run.broker_us if peer_run else None),
            )
        )
    out.append(
        Figure(f"default ruleset, {clock}: state per customer", default.state_bytes, "bytes")
    )
    if peer_run:
        out += peer_figures(peer_run)
    name = f"{NAMES[example.ruleset]} ({RULESET_FILES[example.ruleset].name}), {clock}"
    for what, unit, value, base in (
        ("1 instance, pre-filled topic to caught up", "events/s", example.rate, default.rate),
        ("scorer CPU per event", "µs/event", example.cpu_us, default.cpu_us),
        ("PostgreSQL CPU per event", "µs/event", example.postgres_us, default.postgres_us),
        ("state per customer", "bytes", example.state_bytes, default.state_bytes),
    ):
        if value is not None:
            ratio = value / base if base else None
            out.append(
                Figure(f"{name}: {what}", value, unit, baseline, ratio, notes=example.notes())
            )
    return out


def peer_figures(run: PeerRun) -> list[Figure]:
    """The quix-streams peer's events/s, CPU per event and the broker's CPU per event."""
    clock = f"{run.clock} clock"
    about = f"({run.events:,} events, {sum(run.segments.values()):,} customers)"
    out = [
        Figure(
            f"{PEER}, {clock}: 1 process, pre-filled topic to caught up {about}",
            run.rate,
            "events/s",
            notes=run.notes(),
        ),
        Figure(f"{PEER}, {clock}: its CPU per event", run.cpu_us, "µs/event"),
    ]
    if run.broker_us is not None:
        out.append(
            Figure(f"{PEER}, {clock}: Kafka broker CPU per event", run.broker_us, "µs/event")
        )
    return out


def _median_of(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if len(known) == len(values) else None


def median(runs: list[Run]) -> Run:
    """The runs' median events/s, CPU per event (the scorer's, PostgreSQL's, the broker's)
    and state size (the runs of one ruleset and clock), as one run; each run's own figures
    in `rounds`."""
    rate = statistics.median(r.rate for r in runs)
    cpu_us = statistics.median(r.cpu_us for r in runs)
    postgres_us = _median_of([r.postgres_us for r in runs])
    broker_us = _median_of([r.broker_us for r in runs])
    first = runs[0]
    return replace(
        first,
        seconds=first.events / rate,
        cpu_seconds=cpu_us * first.events / 1e6,
        postgres_cpu_seconds=None if postgres_us is None else postgres_us * first.events / 1e6,
        broker_cpu_seconds=None if broker_us is None else broker_us * first.events / 1e6,
        committed_at_ready=0,
        state_bytes=statistics.median(r.state_bytes for r in runs),
        rss_mib=max(r.rss_mib for r in runs),
        rounds=[
            {
                "events_per_s": round(r.rate),
                "cpu_us_per_event": round(r.cpu_us, 1),
                "postgres_us_per_event": round(r.postgres_us or 0.0, 1),
                "broker_us_per_event": round(r.broker_us or 0.0, 1),
                "state_bytes": round(r.state_bytes, 1),
                "committed_at_ready": r.committed_at_ready,
            }
            for r in runs
        ],
    )


Who = Ruleset | Literal["peer"]


def interleaved(
    bootstrap: str, server_url: str, count: int, rounds: int
) -> tuple[list[Run], list[PeerRun]]:
    """`rounds` rounds of every ruleset and of the peer on every clock; every other round in
    reverse order, so that none always runs first."""
    batch = records(workload(count).events)
    order: list[tuple[Who, Clock]] = [
        (who, clock) for clock in ("wall", "event") for who in ("default", "peer", "example")
    ]
    runs, peers = [], []
    for n in range(rounds):
        for who, clock in order if n % 2 == 0 else order[::-1]:
            if who == "peer":
                done = peer.measure(bootstrap, batch, clock=clock)
                sys.stderr.write(
                    f"round {n + 1}: {PEER}, {clock} clock: {done.rate:,.0f} events/s, "
                    f"{done.cpu_us:.1f} µs/event, broker {done.broker_us or 0:.1f} µs/event\n"
                )
                peers.append(done)
                continue
            run = measure(bootstrap, server_url, batch, ruleset=who, clock=clock)
            sys.stderr.write(
                f"round {n + 1}: {who} ruleset, {clock} clock: {run.rate:,.0f} events/s, "
                f"{run.cpu_us:.1f} µs/event, PostgreSQL {run.postgres_us or 0:.1f} µs/event, "
                f"broker {run.broker_us or 0:.1f} µs/event, "
                f"{run.state_bytes:.0f} bytes/customer, {run.changes:,} changes, {run.tiers}\n"
            )
            runs.append(run)
    return runs, peers


def main() -> int:
    rounds = int(os.environ.get("TIERSTREAM_BENCH_ROUNDS", "3"))
    scale = float(os.environ.get("TIERSTREAM_BENCH_SCALE", "1"))
    count = int(100_000 * scale)
    with ExitStack() as stack:
        given = os.environ.get("TIERSTREAM_KAFKA_BOOTSTRAP_SERVERS")
        bootstrap = given or stack.enter_context(local_broker()).bootstrap
        server = os.environ.get("TIERSTREAM_DATABASE_URL") or stack.enter_context(postgres())
        runs, peers = interleaved(bootstrap, server, count, rounds)
    out: list[Figure] = []
    for clock in ("wall", "event"):
        default, example = (
            median([r for r in runs if r.ruleset == ruleset and r.clock == clock])
            for ruleset in ("default", "example")
        )
        beside = peer.median([r for r in peers if r.clock == clock])
        out += figures(default, example, peer_run=beside)
    about = machine.describe()
    markdown = (
        "# tierstream benchmarks: the §10 example ruleset beside the default, and the "
        "quix-streams peer\n\n"
        f"Machine: {about['cpus']} CPUs ({about['cpu']}), {about['memory']}, Python "
        f"{about['python']}. Scale {scale:g}; medians of {rounds} interleaved rounds.\n\n"
        f"{table(out)}\n"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "declared.md").write_text(markdown)
    (RESULTS / "declared.json").write_text(
        json.dumps(
            {
                "machine": about,
                "scale": scale,
                "rounds": rounds,
                "figures": [vars(f) for f in out],
            },
            indent=2,
            default=str,
        )
    )
    sys.stdout.write(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
