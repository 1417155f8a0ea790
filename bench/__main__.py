"""Runs every benchmark and writes one report (markdown and JSON) under bench/results/."""

import json
import os
import sys
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from bench import ingest, machine, scorer
from bench.figure import Figure, table
from bench.ingest import Figures
from harness.stack import local_broker, postgres

RESULTS = Path(__file__).parent / "results"


def ingest_figures(report: dict[str, Figures]) -> list[Figure]:
    """Ingest's figures in the report's one shape, each beside the raw producer."""
    raw = report["raw"]
    out = []
    for key, fig in report.items():
        target = ""
        if key.startswith("batched"):
            target = ">= 50,000 events/s and >= 50% of raw"
        out.append(
            Figure(
                f"{'' if fig.name.startswith('ingest') else 'ingest: '}{fig.name} "
                f"({fig.events:,} events in {fig.seconds:.2f} s)",
                fig.rate,
                "events/s",
                "" if key == "raw" else "raw aiokafka producer, batch API",
                None if key == "raw" else fig.rate / raw.rate,
                target,
            )
        )
    return out


def main() -> int:
    """TIERSTREAM_BENCH_ONLY=ingest|scorer runs one part; TIERSTREAM_BENCH_SCALE shrinks the
    scorer's workloads (for a quick look; the report says which scale it ran at)."""
    only = os.environ.get("TIERSTREAM_BENCH_ONLY", "")
    given = os.environ.get("TIERSTREAM_KAFKA_BOOTSTRAP_SERVERS")
    with ExitStack() as stack:
        bootstrap = given or stack.enter_context(local_broker()).bootstrap
        report = ingest.run(bootstrap) if only in ("", "ingest") else {}
        server = os.environ.get("TIERSTREAM_DATABASE_URL") or stack.enter_context(postgres())
        scored = scorer.run(bootstrap, server) if only in ("", "scorer") else []
    about = machine.describe()
    markdown = (
        f"# tierstream benchmarks\n\nMachine: {about['cpus']} CPUs ({about['cpu']}), "
        f"{about['memory']}, Python {about['python']}; the broker, PostgreSQL, the services "
        "and the load clients all share it.\n"
    )
    figures = ingest_figures(report) if report else []
    figures += [replace(f, name=f"scorer: {f.name}") for f in scored]
    markdown += f"\nScorer workloads at scale {scorer.SCALE:g}.\n\n{table(figures)}\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "report.md").write_text(markdown)
    (RESULTS / "report.json").write_text(
        json.dumps(
            {"machine": about, "scale": scorer.SCALE, "figures": [vars(f) for f in figures]},
            indent=2,
            default=str,
        )
    )
    sys.stdout.write(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
