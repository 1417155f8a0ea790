"""Runs every benchmark and writes one report (markdown and JSON) under bench/results/."""

import json
import os
import sys
from contextlib import ExitStack
from pathlib import Path

from bench import ingest, machine, scorer
from bench.ingest import Figures
from tests.stack import local_broker, postgres

RESULTS = Path(__file__).parent / "results"


def table(report: dict[str, Figures]) -> str:
    raw = report["raw"]
    header = [
        "| benchmark | events | seconds | events/s | vs raw batch API |",
        "|---|---:|---:|---:|---:|",
    ]
    rows = [
        f"| {fig.name} | {fig.events} | {fig.seconds:.2f} | {fig.rate:,.0f} | "
        f"{fig.rate / raw.rate:.0%} |"
        for fig in report.values()
    ]
    return "\n".join(header + rows)


def scorer_table(figures: list[scorer.Figure]) -> str:
    header = [
        "| benchmark | figure | baseline | ratio | target |",
        "|---|---:|---|---:|---|",
    ]
    rows = [
        f"| {f.name} | {f.value:,.1f} {f.unit} | {f.baseline} | "
        f"{'' if f.ratio is None else f'{f.ratio:.0%}'} | {f.target} |"
        for f in figures
    ]
    return "\n".join(header + rows)


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
    if report:
        markdown += (
            f"\n## Ingest\n\n{table(report)}\n\n"
            "Targets: >= 50,000 events/s batched and >= 50% of the raw producer.\n"
        )
    if scored:
        markdown += f"\n## Scorer (scale {scorer.SCALE:g})\n\n{scorer_table(scored)}\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "report.md").write_text(markdown)
    figures = {key: vars(value) | {"rate": value.rate} for key, value in report.items()}
    (RESULTS / "report.json").write_text(
        json.dumps(
            {"machine": about, "ingest": figures, "scorer": [vars(f) for f in scored]},
            indent=2,
            default=str,
        )
    )
    sys.stdout.write(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
