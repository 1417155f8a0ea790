"""The quix-streams peer's run (bench/peer/app.py), measured as the scorer's 1-instance run is
(bench/declared.py): one process, its own new consumer group, from a pre-filled topic to
caught up.

- events/s: from the moment the app processes its first record (it says so on stdout:
  its start-up, topic creation and state recovery are left out, as the scorer's are before
  it answers ready) to the moment its group's committed offsets are every partition's end
  offset, over the records not yet committed at the start (the topic's, duplicates
  included). Exactly-once processing commits a transaction every COMMIT_INTERVAL_S (quix's
  default is 5 s; 1 s keeps the wait for the last commit short beside a run of seconds,
  and the app's polls time out after 0.1 s, not quix's 1 s, which would hold the last
  commit up to a second more): the span ends about half an interval after the last record;
- CPU per event: the app process's user and system time (all its threads: librdkafka's,
  RocksDB's) and its children's, over the same span;
- the broker's CPU per event over the same span (bench/cpu.py), beside the broker's during
  the scorer's run;
- the segment changes it produced, and each customer's last segment (read back from its
  output topic, committed records only): on the wall clock they are the scorer's tier
  changes and tiers, a check that the two did the same work.
"""

import asyncio
import os
import shutil
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench import cpu
from bench.scorers import PARTITIONS, new_topics
from harness.scorer_run import produce
from harness.stack import scratch_dir
from schemas.v1 import topics
from services.effectively_once.record import Record

Clock = Literal["wall", "event"]
ROOT = Path(__file__).resolve().parents[2]
# the peer's own virtualenv (make bench-peer): quixstreams and what it needs, nothing else
PYTHON = Path(
    os.environ.get("TIERSTREAM_BENCH_PEER_PYTHON", str(ROOT / ".venv" / "peer" / "bin" / "python"))
)
OUTPUT = "bench.peer-segment-changes"
COMMIT_INTERVAL_S = 1.0
STARTUP_S = 180.0  # to its first record: topics, group, state stores
CAUGHT_UP_S = 1800.0


@dataclass(frozen=True)
class PeerRun:
    clock: Clock
    events: int  # records on the topic, duplicates included
    seconds: float  # first record processed to everything committed
    cpu_seconds: float  # the app process's, over the same span
    broker_cpu_seconds: float | None  # the broker's, over the same span
    committed_at_start: int
    changes: int  # segment changes produced
    segments: dict[str, int]  # customers by their last segment
    rss_mib: float
    rounds: list[dict[str, float]] = field(default_factory=list)  # a median's runs

    @property
    def measured(self) -> int:
        return self.events - self.committed_at_start

    @property
    def rate(self) -> float:
        return self.measured / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu_seconds / self.measured * 1e6

    @property
    def broker_us(self) -> float | None:
        seconds = self.broker_cpu_seconds
        return None if seconds is None else seconds / self.measured * 1e6

    def notes(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "peer": "quixstreams, exactly-once, RocksDB state",
            "clock": self.clock,
            "events": self.events,
            "seconds": round(self.seconds, 2),
            "cpu_seconds": round(self.cpu_seconds, 2),
            "customers": sum(self.segments.values()),
            "segments": self.segments,
            "segment_changes": self.changes,
            "rss_mib": round(self.rss_mib, 1),
            "committed_at_start": self.committed_at_start,
            "commit_interval_s": COMMIT_INTERVAL_S,
        }
        if self.broker_cpu_seconds is not None:
            out["broker_cpu_seconds"] = round(self.broker_cpu_seconds, 2)
        if self.rounds:
            out["rounds"] = self.rounds
        return out


def measure(
    bootstrap: str, batch: list[Record], *, clock: Clock = "wall", prefix: str | None = None
) -> PeerRun:
    """The peer from a pre-filled topic to caught up. `prefix`: topics that already hold
    `batch`; without it, a new copy of them is made and filled."""
    if not PYTHON.exists():
        raise RuntimeError(f"no peer interpreter at {PYTHON}: run `make bench-peer` first")
    if prefix is None:
        prefix = new_topics(bootstrap)
        asyncio.run(produce(bootstrap, prefix + topics.CUSTOMER_EVENTS, batch))
    return asyncio.run(_measure(bootstrap, prefix, clock, len(batch)))


async def _measure(bootstrap: str, prefix: str, clock: Clock, events: int) -> PeerRun:
    topic, output = prefix + topics.CUSTOMER_EVENTS, f"{prefix}{OUTPUT}-{uuid.uuid4().hex[:6]}"
    group = f"{prefix}peer-{uuid.uuid4().hex[:8]}"
    ends = await _end_offsets(bootstrap, topic)
    home = scratch_dir("peer")
    broker = cpu.broker_pid(bootstrap)
    with (home / "peer.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            str(PYTHON),
            "-m",
            "bench.peer.app",
            f"--bootstrap={bootstrap}",
            f"--input={topic}",
            f"--output={output}",
            f"--group={group}",
            f"--state-dir={home / 'state'}",
            f"--clock={clock}",
            f"--partitions={PARTITIONS}",
            f"--commit-interval={COMMIT_INTERVAL_S}",
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
    try:
        assert process.stdout is not None  # noqa: S101 - asked for above
        try:
            line = await asyncio.wait_for(process.stdout.readline(), STARTUP_S)
        except TimeoutError:
            line = b""
        if line.strip() != b"started":
            raise RuntimeError(f"the peer did not start: {_tail(home)}")
        started = time.monotonic()
        cpu_before, broker_before = cpu.tree_seconds(process.pid), cpu.seconds(broker)
        early = await _caught_up(bootstrap, group, ends, process, home)
        seconds = time.monotonic() - started
        spent = cpu.tree_seconds(process.pid) - cpu_before
        broker_spent = cpu.spent(broker_before, cpu.seconds(broker))
        memory = _peak_rss(process.pid)
    finally:
        await _stop(process)
        shutil.rmtree(home, ignore_errors=True)
    changes, segments = await _segments(bootstrap, output)
    return PeerRun(clock, events, seconds, spent, broker_spent, early, changes, segments, memory)


async def _caught_up(
    bootstrap: str,
    group: str,
    ends: dict[TopicPartition, int],
    process: asyncio.subprocess.Process,
    home: Path,
) -> int:
    """Waits until the group's committed offsets are the end offsets; returns the records
    committed when it started waiting."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        early: int | None = None
        deadline = time.monotonic() + CAUGHT_UP_S
        while True:
            offsets = await admin.list_consumer_group_offsets(group)
            done = {tp: max(found.offset, 0) for tp, found in offsets.items()}
            if early is None:
                early = sum(done.get(tp, 0) for tp in ends)
            if all(done.get(tp, 0) >= end for tp, end in ends.items()):
                return early
            if process.returncode is not None:
                raise RuntimeError(f"the peer exited ({process.returncode}): {_tail(home)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the peer did not catch up: {done} of {ends}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def _end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    client = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await client.start()
    try:
        ends: dict[TopicPartition, int] = await client.end_offsets(
            [TopicPartition(topic, p) for p in range(PARTITIONS)]
        )
        return ends
    finally:
        await client.stop()


async def _segments(bootstrap: str, topic: str) -> tuple[int, dict[str, int]]:
    """The changes on the peer's output topic (committed ones) and every customer's last
    segment, counted by segment."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=5000,
    )
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        last: dict[bytes, str] = {}
        changes = 0
        deadline = time.monotonic() + 120
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the peer's changes on {topic} were not read to the end")
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    changes += 1
                    last[record.key] = orjson.loads(record.value)["to"]
        return changes, dict(sorted(Counter(last.values()).items()))
    finally:
        await consumer.stop()


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM (the app stops its loop and closes its stores), then SIGKILL after 30 s."""
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()


def _peak_rss(pid: int) -> float:
    """The process's peak resident memory, MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def _tail(home: Path) -> str:
    log = home / "peer.log"
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"


def median(runs: list[PeerRun]) -> PeerRun:
    """The runs' median events/s and CPU per event (the runs of one clock), as one run;
    each run's own figures in `rounds`."""
    rate = statistics.median(r.rate for r in runs)
    cpu_us = statistics.median(r.cpu_us for r in runs)
    brokers = [r.broker_us for r in runs]
    first = runs[0]
    return replace(
        first,
        seconds=first.events / rate,
        cpu_seconds=cpu_us * first.events / 1e6,
        broker_cpu_seconds=(
            None
            if None in brokers
            else statistics.median(b or 0.0 for b in brokers) * first.events / 1e6
        ),
        committed_at_start=0,
        rss_mib=max(r.rss_mib for r in runs),
        rounds=[
            {
                "events_per_s": round(r.rate),
                "cpu_us_per_event": round(r.cpu_us, 1),
                "committed_at_start": r.committed_at_start,
            }
            for r in runs
        ],
    )
