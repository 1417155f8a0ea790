"""Runs every benchmark and writes one report (markdown and JSON) under bench/results/."""

import json
import os
import sys
from pathlib import Path

from bench import ingest, machine
from bench.ingest import Figures
from tests.stack import local_broker

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


def main() -> int:
    given = os.environ.get("TIERSTREAM_KAFKA_BOOTSTRAP_SERVERS")
    if given:
        report = ingest.run(given)
    else:
        with local_broker() as broker:
            report = ingest.run(broker.bootstrap)
    about = machine.describe()
    markdown = (
        f"# tierstream benchmarks\n\nMachine: {about['cpus']} CPUs ({about['cpu']}), "
        f"{about['memory']}, Python {about['python']}; the broker, the services and the "
        f"load clients all share it.\n\n## Ingest\n\n{table(report)}\n\n"
        "Targets: >= 50,000 events/s batched and >= 50% of the raw producer.\n"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "report.md").write_text(markdown)
    figures = {key: vars(value) | {"rate": value.rate} for key, value in report.items()}
    (RESULTS / "report.json").write_text(
        json.dumps({"machine": about, "ingest": figures}, indent=2)
    )
    sys.stdout.write(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
