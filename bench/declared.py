"""The SPEC §10 example ruleset beside the default one (issue 15): the same events, consumed
by one scorer instance from a pre-filled topic to caught up, once with each ruleset.

The events are harness/workload.py's with `attributes` (the transactions' product lines and
the interactions' channels that the example's `where`s read); every run has its own copy of
the topic (a new prefix) and its own new database. A run gives:
- events/s, from the instance answering ready to caught up (offsets committed, outbox
  published), as bench/scorer.py's throughput;
- the scorer process's CPU per event: its user and system time (all its threads, from
  /proc) at caught up minus at ready;
both over the records processed in that span: the topic's (duplicates included) but those
already committed when the instance was seen ready (it starts consuming before; a few
thousand records at small scales, in the notes);
- the state stored per customer: the mean size of `customers.state` after the run.

Each pair runs on both clocks. The generated history is in 2023-2025: on the wall clock
most of it is older than the rulesets' windows by the time the bench runs, so the rules see
mostly empty windows; on the event clock (replay, SPEC §4: now is the latest event time in
the partition) the windows hold the history and the rules move customers. There every new
day in a partition sweeps that partition's due customers in memory, inside the batch: a
batch whose sweeps hold the scorer's event loop past the relay's send bound (10 s) makes the
scorer exit, and the run fails with the end of its log rather than waiting.

`make bench` runs one round of each pair within the scorer's throughput (bench/scorer.py);
`python -m bench.declared` runs only these pairs, in interleaved rounds
(TIERSTREAM_BENCH_ROUNDS, default 3; TIERSTREAM_BENCH_SCALE as for `make bench`), and
writes their medians to bench/results/declared.md and declared.json."""

import asyncio
import json
import os
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from bench import machine
from bench.figure import Figure, table
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
        if self.rounds:
            out["rounds"] = self.rounds
        return out


def workload(count: int) -> Workload:
    """bench/scorer.py's throughput workload, with the attributes the example reads."""
    return generate(count // 5, count, days=300, seed=3, attributes=True)


def measure(
    bootstrap: str,
    server_url: str,
    batch: list[Record],
    *,
    ruleset: Ruleset = "default",
    clock: Clock = "wall",
    prefix: str | None = None,
) -> Run:
    """One scorer instance, a new database, from a pre-filled topic to caught up. `prefix`:
    topics that already hold `batch`; without it, a new copy of them is made and filled."""
    if prefix is None:
        prefix = new_topics(bootstrap)
        asyncio.run(produce(bootstrap, prefix + topics.CUSTOMER_EVENTS, batch))
    url = database(server_url)
    settings: dict[str, object] = {"clock": clock}
    if ruleset != "default":
        settings["ruleset_file"] = RULESET_FILES[ruleset].resolve()
    with scorers(bootstrap, url, prefix, 1, **settings) as running:
        started = time.monotonic()
        cpu = cpu_seconds(running)
        early = committed(running[0])
        wait_for(lambda: _caught_up(running[0]), 1800, "the scorer did not catch up")
        seconds = time.monotonic() - started
        cpu = cpu_seconds(running) - cpu
        memory = rss(running)
        changes = transitions(running)
    size, customers, tiers = stored_state(url)
    return Run(
        ruleset, clock, len(batch), seconds, cpu, size, customers, tiers, changes, memory, early
    )


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


def figures(default: Run, example: Run, *, default_rate: bool = True) -> list[Figure]:
    """The default's figures, then the example's, each beside the default's (same events,
    same clock). `default_rate=False` when the default's events/s is reported elsewhere."""
    clock = f"{default.clock} clock"
    about = f"({default.events:,} events, {default.customers:,} customers)"
    baseline = f"default ruleset, {clock}"
    out = []
    if default_rate:
        out.append(
            Figure(
                f"default ruleset, {clock}: 1 instance, pre-filled topic to caught up {about}",
                default.rate,
                "events/s",
                notes=default.notes(),
            )
        )
    out += [
        Figure(
            f"default ruleset, {clock}: scorer CPU per event {about}",
            default.cpu_us,
            "µs/event",
            notes=default.notes(),
        ),
        Figure(f"default ruleset, {clock}: state per customer", default.state_bytes, "bytes"),
    ]
    name = f"{NAMES[example.ruleset]} ({RULESET_FILES[example.ruleset].name}), {clock}"
    for what, unit, value, base in (
        ("1 instance, pre-filled topic to caught up", "events/s", example.rate, default.rate),
        ("scorer CPU per event", "µs/event", example.cpu_us, default.cpu_us),
        ("state per customer", "bytes", example.state_bytes, default.state_bytes),
    ):
        ratio = value / base if base else None
        out.append(Figure(f"{name}: {what}", value, unit, baseline, ratio, notes=example.notes()))
    return out


def median(runs: list[Run]) -> Run:
    """The runs' median events/s, CPU per event and state size (the runs of one ruleset and
    clock), as one run; each run's own figures in `rounds`."""
    rate = statistics.median(r.rate for r in runs)
    cpu_us = statistics.median(r.cpu_us for r in runs)
    first = runs[0]
    return replace(
        first,
        seconds=first.events / rate,
        cpu_seconds=cpu_us * first.events / 1e6,
        committed_at_ready=0,
        state_bytes=statistics.median(r.state_bytes for r in runs),
        rss_mib=max(r.rss_mib for r in runs),
        rounds=[
            {
                "events_per_s": round(r.rate),
                "cpu_us_per_event": round(r.cpu_us, 1),
                "state_bytes": round(r.state_bytes, 1),
                "committed_at_ready": r.committed_at_ready,
            }
            for r in runs
        ],
    )


def interleaved(bootstrap: str, server_url: str, count: int, rounds: int) -> list[Run]:
    """`rounds` rounds of every ruleset on every clock; every other round in reverse order,
    so that neither ruleset always runs first."""
    batch = records(workload(count).events)
    order: list[tuple[Ruleset, Clock]] = [
        (ruleset, clock) for clock in ("wall", "event") for ruleset in ("default", "example")
    ]
    runs = []
    for n in range(rounds):
        for ruleset, clock in order if n % 2 == 0 else order[::-1]:
            run = measure(bootstrap, server_url, batch, ruleset=ruleset, clock=clock)
            sys.stderr.write(
                f"round {n + 1}: {ruleset} ruleset, {clock} clock: {run.rate:,.0f} events/s, "
                f"{run.cpu_us:.1f} µs/event, {run.state_bytes:.0f} bytes/customer\n"
            )
            runs.append(run)
    return runs


def main() -> int:
    rounds = int(os.environ.get("TIERSTREAM_BENCH_ROUNDS", "3"))
    scale = float(os.environ.get("TIERSTREAM_BENCH_SCALE", "1"))
    count = int(100_000 * scale)
    with ExitStack() as stack:
        given = os.environ.get("TIERSTREAM_KAFKA_BOOTSTRAP_SERVERS")
        bootstrap = given or stack.enter_context(local_broker()).bootstrap
        server = os.environ.get("TIERSTREAM_DATABASE_URL") or stack.enter_context(postgres())
        runs = interleaved(bootstrap, server, count, rounds)
    out: list[Figure] = []
    for clock in ("wall", "event"):
        default, example = (
            median([r for r in runs if r.ruleset == ruleset and r.clock == clock])
            for ruleset in ("default", "example")
        )
        out += figures(default, example)
    about = machine.describe()
    markdown = (
        "# tierstream benchmarks: the §10 example ruleset beside the default\n\n"
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
