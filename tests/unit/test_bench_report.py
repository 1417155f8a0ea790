"""`make bench` writes one table: every figure with its baseline and ratio."""

from pathlib import Path

from bench import arrivals
from bench.__main__ import ingest_figures
from bench.figure import Figure, table
from bench.ingest import Figures


def test_one_table_with_baselines_and_ratios() -> None:
    ingest = ingest_figures(
        {
            "raw": Figures("raw aiokafka producer", 100_000, 1.0),
            "batched_1w": Figures("POST /v1/events:batch, 1 worker", 60_000, 1.0),
        }
    )
    scored = Figure("scorer events", 6_000.0, "events/s", "raw consumption", 0.03, ">= 30,000")
    lines = table([*ingest, scored]).splitlines()
    assert lines[0] == "| benchmark | figure | baseline | ratio | target |"
    assert "| 100,000.0 events/s |  |  |" in lines[2]  # the baseline itself
    assert "60,000.0 events/s | raw aiokafka producer, batch API | 60% |" in lines[3]
    assert lines[4].endswith("| 6,000.0 events/s | raw consumption | 3% | >= 30,000 |")


def test_the_latency_reader_keeps_each_keys_first_arrival(tmp_path: Path) -> None:
    out = tmp_path / "arrivals"
    out.write_text("L-1 10.500000\nL-2 10.750000\nL-1 11.000000\n")
    assert arrivals.read(out) == {"L-1": 10.5, "L-2": 10.75}
