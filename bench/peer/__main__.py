"""The quix-streams peer alone, without the scorer or PostgreSQL: `python -m bench.peer` fills
one topic with bench/declared.py's events (TIERSTREAM_BENCH_SCALE, default 1: 101,956
events) and measures the peer on it as bench/declared.py does (bench/peer/run.py), on each
clock (or those given: `python -m bench.peer event`), TIERSTREAM_BENCH_ROUNDS times (default
3), every run with its own consumer group;
prints each run and the medians. The broker is a local one started here, or
TIERSTREAM_KAFKA_BOOTSTRAP_SERVERS. Nothing is written under bench/results/.
"""

import asyncio
import os
import sys
from contextlib import ExitStack

from bench.declared import workload
from bench.peer import run as peer
from bench.scorers import new_topics
from harness.scorer_run import produce, records
from harness.stack import local_broker
from schemas.v1 import topics

CLOCKS: tuple[peer.Clock, ...] = ("wall", "event")


def main() -> int:
    rounds = int(os.environ.get("TIERSTREAM_BENCH_ROUNDS", "3"))
    scale = float(os.environ.get("TIERSTREAM_BENCH_SCALE", "1"))
    clocks = [c for c in CLOCKS if c in sys.argv[1:]] or list(CLOCKS)
    with ExitStack() as stack:
        given = os.environ.get("TIERSTREAM_KAFKA_BOOTSTRAP_SERVERS")
        bootstrap = given or stack.enter_context(local_broker()).bootstrap
        batch = records(workload(int(100_000 * scale)).events)
        prefix = new_topics(bootstrap)
        asyncio.run(produce(bootstrap, prefix + topics.CUSTOMER_EVENTS, batch))
        for clock in clocks:
            runs = []
            for n in range(rounds):
                done = peer.measure(bootstrap, batch, clock=clock, prefix=prefix)
                runs.append(done)
                sys.stdout.write(
                    f"{clock} clock, round {n + 1}: {done.rate:,.0f} events/s, "
                    f"{done.cpu_us:.1f} µs/event, broker {done.broker_us or 0:.1f} µs/event, "
                    f"{done.seconds:.2f} s, {done.changes:,} changes\n"
                )
                sys.stdout.flush()
            middle = peer.median(runs)
            sys.stdout.write(
                f"{clock} clock, median of {rounds}: {middle.rate:,.0f} events/s, "
                f"{middle.cpu_us:.1f} µs/event ({middle.events:,} events, "
                f"{sum(middle.segments.values()):,} customers, {middle.segments})\n"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
