"""The fault suite (`make chaos`; a smaller run in `make test`): a replay through the whole
pipeline — ingest, scorer and notifier as real processes, on a Kafka broker and a PostgreSQL
server of this test's own — while each service is killed with SIGKILL at random moments,
the broker is stopped and restarted, and PostgreSQL is stopped (immediate: a crash) and
restarted. The test is the supervisor: whatever exits is started again, as systemd or
Kubernetes would. The upstream client retries every batch until it gets its 202.

After recovery: every customer's features equal the oracle's (each accepted event counted
exactly once); the tier changes on the topic, deduped by id, are exactly the oracle's; the
tasks are exactly those the policy makes from the oracle's changes (none twice, the
obsolete ones cancelled); every urgent task left open past its SLA has its one escalation
step. The figures are printed and written to bench/results/chaos.json.
"""

import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text

from devstack.kafka import run_isolated
from harness.processes import READER_TOKENS, caught_up, wait_for
from harness.scorer_run import RULESETS
from harness.stack import free_port, local_broker, scratch_dir
from harness.workload import Workload, expect, generate
from services import migrations
from services.effectively_once.topics import ensure_topics
from services.ingest.auth import new_key
from services.notifier.core import policy as policies
from services.notifier.core.policy import OpenTask, decide
from services.notifier.settings import DEFAULT_POLICY
from services.scorer.core import rules
from services.topology import tierstream_topics
from tests.e2e.test_scorer_replay import compare_features
from tests.kafka_reader import read_all
from tests.notifier_run import NOW, change, directory_yaml

pytestmark = pytest.mark.e2e
SCALE = float(os.environ.get("TIERSTREAM_CHAOS_SCALE", "1"))
EVENTS, CUSTOMERS = int(20_000 * SCALE), int(2_000 * SCALE)
ROUNDS = max(1, round(SCALE / 2))  # each round: every kind of fault once
SECRET, KEY = new_key("chaos", ["erp/*"])
SLA_S = 3
POLICY = DEFAULT_POLICY.read_text(encoding="utf-8").replace(
    "ack_within: 2h", f"ack_within: {SLA_S}s"
)
REPORT = Path(__file__).parents[2] / "bench" / "results" / "chaos.json"


@dataclass
class Supervised:
    """A service process the test keeps running: started again whenever it exits."""

    module: str
    port: int
    env: Mapping[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ensure(self) -> None:
        if self.process is None or self.process.poll() is not None:
            with self.log.open("ab") as out:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", self.module], stdout=out, stderr=subprocess.STDOUT,
                    env={**os.environ, **self.env},
                )  # fmt: skip
            self.starts += 1

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def healthy(self) -> bool:
        self.ensure()
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


@dataclass
class Chaos:
    services: dict[str, Supervised]
    broker: Any
    postgres: Any
    faults: Counter[str] = field(default_factory=Counter)

    def supervise(self) -> None:
        for one in self.services.values():
            one.ensure()

    def inject(self, fault: str) -> None:
        self.faults[fault] += 1
        if fault.startswith("kill -9 "):
            self.services[fault.removeprefix("kill -9 ")].kill()
        elif fault == "restart kafka":
            self.broker.stop()
            time.sleep(3)
            self.broker.start(timeout=120)
        elif fault == "restart postgres":
            self.postgres.stop("immediate")
            time.sleep(3)
            self.postgres.start()


@contextmanager
def _postgres() -> Iterator[Any]:
    from devstack.postgres import PostgresServer  # noqa: PLC0415

    server = PostgresServer(scratch_dir("chaos-pg"), free_port(), fast=True)
    server.start()
    try:
        yield server
    finally:
        server.stop("immediate")


@pytest.mark.timeout(1200)  # ~95 s here at scale 1; a slower machine gets room, not a flake
def test_the_pipeline_survives_kills_and_outages_and_ends_exactly_right() -> None:
    started = time.monotonic()
    workload = generate(CUSTOMERS, EVENTS, days=50, seed=13)
    ruleset = rules.load((RULESETS / "default.yaml").read_text())
    expected = expect(workload, ruleset, partitions=3)
    with local_broker() as broker, _postgres() as postgres:
        prefix = f"chaos-{uuid.uuid4().hex[:8]}."
        run_isolated(ensure_topics(broker.bootstrap, tierstream_topics(prefix, 3, 3)))
        migrations.upgrade(postgres.url)
        chaos = Chaos(_services(broker.bootstrap, postgres.url, prefix), broker, postgres)
        try:
            _run(chaos, workload)
            scorer = chaos.services["scorer"]
            wait_for(lambda: _recovered(chaos) and caught_up(scorer), 300, "no recovery")
            mismatches = run_isolated(compare_features(scorer.url, workload))
            found = run_isolated(
                read_all(broker.bootstrap, f"{prefix}tierstream.tier-changes.v1",
                         len(expected.changes), timeout_s=60)
            )  # fmt: skip
            changes = _deduped(found)
            _while_progressing(lambda: _notified(postgres.url), len(changes), "notifier")
            # every urgent task still open reaches the top of its chain (two steps)
            wait_for(lambda: _escalated(postgres.url), 60, "escalations missing")
            tasks, steps = _tasks(postgres.url)
        finally:
            for one in chaos.services.values():
                one.kill()
    want_tasks = _policy_tasks(expected.changes)
    report = {
        "events": EVENTS,
        "customers": CUSTOMERS,
        "faults": dict(chaos.faults),
        "service_starts": {n: s.starts for n, s in chaos.services.items()},
        "feature_mismatches": len(mismatches),
        "tier_changes": len(changes),
        "tier_change_mismatches": len(set(changes.items()) ^ set(expected.changes.items())),
        "tasks": len(tasks),
        "task_mismatches": len(set(tasks.items()) ^ set(want_tasks.items())),
        "escalation_steps": len(steps),
        "seconds": round(time.monotonic() - started, 1),
    }
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2))
    print(f"\nchaos: {json.dumps(report)}")  # noqa: T201 - the figures are the point
    assert mismatches == []
    assert changes == expected.changes
    assert tasks == want_tasks
    urgent_open = {cid for (cid, rule), status in tasks.items()
                   if rule == "high_value_retention" and status == "open"}  # fmt: skip
    assert {step for step in steps if step[0] in urgent_open} == {
        (cid, level) for cid in urgent_open for level in (1, 2)
    }
    assert {level for _, level in steps} <= {1, 2}


def _services(bootstrap: str, database: str, prefix: str) -> dict[str, Supervised]:
    home = scratch_dir("chaos")
    (home / "directory.yaml").write_text(directory_yaml(), encoding="utf-8")
    (home / "policy.yaml").write_text(POLICY, encoding="utf-8")
    common = {
        "TIERSTREAM_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "TIERSTREAM_DATABASE_URL": database,
        "TIERSTREAM_TOPIC_PREFIX": prefix,
    }
    ports = {name: free_port() for name in ("ingest", "scorer", "notifier")}
    env = {
        "ingest": {"TIERSTREAM_INGEST_API_KEYS": json.dumps([KEY.model_dump(mode="json")])},
        "scorer": {
            "TIERSTREAM_SCORER_CLOCK": "event",
            "TIERSTREAM_SCORER_MAINTAIN_EVERY_SECONDS": "1",
            "TIERSTREAM_SCORER_SESSION_TIMEOUT_SECONDS": "10",
            "TIERSTREAM_SCORER_STARTUP_TIMEOUT_SECONDS": "20",
            "TIERSTREAM_SCORER_TOKENS": READER_TOKENS,
        },
        "notifier": {
            "TIERSTREAM_NOTIFIER_DIRECTORY_FILE": str(home / "directory.yaml"),
            "TIERSTREAM_NOTIFIER_POLICY_FILE": str(home / "policy.yaml"),
            "TIERSTREAM_NOTIFIER_DEFAULT_TEAM": "queue",
            "TIERSTREAM_NOTIFIER_SESSION_TIMEOUT_SECONDS": "10",
            "TIERSTREAM_NOTIFIER_STARTUP_TIMEOUT_SECONDS": "20",
            "TIERSTREAM_NOTIFIER_ESCALATE_EVERY_SECONDS": "0.5",
        },
    }
    return {
        name: Supervised(
            f"services.{name}.main",
            port,
            common | env[name] | {f"TIERSTREAM_{name.upper()}_PORT": str(port)},
            home / f"{name}.log",
        )
        for name, port in ports.items()
    }


def _run(chaos: Chaos, workload: Workload) -> None:
    """Posts every event (each batch until its 202) while faults go off at random points."""
    kinds = ["kill -9 scorer", "kill -9 ingest", "kill -9 notifier", "restart kafka",
             "restart postgres"]  # fmt: skip
    rng = random.Random(21)
    plan = sorted(
        (rng.uniform(0.1, 0.9) * len(workload.events), kind)
        for _ in range(ROUNDS)
        for kind in kinds
    )
    wait_for(lambda: all(s.healthy() for s in chaos.services.values()), 120, "no start")
    headers = {"authorization": f"Bearer {SECRET}",
               "content-type": "application/cloudevents-batch+json"}  # fmt: skip
    events = workload.events
    with httpx.Client(base_url=chaos.services["ingest"].url, timeout=15) as client:
        for start in range(0, len(events), 500):
            while plan and plan[0][0] <= start:
                chaos.inject(plan.pop(0)[1])
                chaos.supervise()  # what died is started again at once, as systemd would
            body = orjson.dumps(events[start : start + 500])
            while not _accepted(client, body, headers):
                chaos.supervise()
                time.sleep(0.5)
    for _, kind in plan:
        chaos.inject(kind)


def _accepted(client: httpx.Client, body: bytes, headers: dict[str, str]) -> bool:
    try:
        response = client.post("/v1/events:batch", content=body, headers=headers)
    except httpx.HTTPError:
        return False
    if response.status_code not in (202, 503):
        raise AssertionError(f"ingest answered {response.status_code}: {response.text}")
    return response.status_code == 202


def _recovered(chaos: Chaos) -> bool:
    return all(s.healthy() for s in chaos.services.values())


def _deduped(found: list[Any]) -> dict[str, tuple[str, str | None, str]]:
    by_id: dict[str, tuple[str, str | None, str]] = {}
    for message in found:
        c = orjson.loads(message.value or b"")
        seen = (c["customer_id"], c["from_tier"]["id"] if c["from_tier"] else None,
                c["to_tier"]["id"])  # fmt: skip
        assert by_id.setdefault(c["change_id"], seen) == seen  # a redelivery: the same change
    return by_id


def _policy_tasks(
    changes: Mapping[str, tuple[str, str | None, str]],
) -> dict[tuple[str, str], str]:
    """The oracle of tasks: the default policy applied to the oracle's changes, customer by
    customer in order; (change id, rule) -> final status (open or cancelled)."""
    policy = policies.parse(POLICY)
    open_: dict[str, list[OpenTask]] = {}
    status: dict[tuple[str, str], str] = {}
    ids: dict[str, tuple[str, str]] = {}
    for change_id, (customer, before, after) in changes.items():
        decision = decide(
            policy, change(customer, before, after, change_id=change_id), "team:queue",
            open_.get(customer, []), NOW,
        )  # fmt: skip
        gone = {c.task_id for c in decision.cancellations}
        for task_id in gone:
            status[ids[task_id]] = "cancelled"
        kept = [t for t in open_.get(customer, []) if t.id not in gone]
        for task in decision.tasks:
            key = (change_id, task.rule)
            ids[f"{change_id}/{task.rule}"] = key
            status[key] = "open"
            kept.append(OpenTask(f"{change_id}/{task.rule}", task.rule, task.open_while))
        open_[customer] = kept
    return status


def _notified(url: str) -> int:
    rows = run_isolated(_fetch(url, "SELECT count(*) FROM notifier_changes"))
    return int(rows[0][0])


def _while_progressing(count: Callable[[], int], target: int, what: str) -> None:
    """Waits until `count()` reaches `target`, as long as it keeps moving (a stall of 60 s
    fails); the notifier's pace, not a guess at it, sets how long that takes."""
    last, moved = -1, time.monotonic()
    while (now := count()) < target:
        if now != last:
            last, moved = now, time.monotonic()
        elif time.monotonic() - moved > 60:
            raise TimeoutError(f"{what} stalled at {now} of {target}")
        time.sleep(1)


def _escalated(url: str) -> bool:
    due = run_isolated(
        _fetch(url, "SELECT count(*) FROM tasks WHERE status = 'open' "
                    "AND next_escalation_at IS NOT NULL")
    )  # fmt: skip
    return bool(due[0][0] == 0)


def _tasks(url: str) -> tuple[dict[tuple[str, str], str], set[tuple[str, int]]]:
    tasks = run_isolated(_fetch(url, "SELECT change_id, rule, status FROM tasks"))
    steps = run_isolated(
        _fetch(url, "SELECT t.change_id, e.level FROM task_escalations e "
                    "JOIN tasks t ON t.id = e.task_id")
    )  # fmt: skip
    found = {(r[0], r[1]): r[2] for r in tasks}
    assert len(found) == len(tasks)  # (change, rule) is unique: no task twice
    pairs = [(r[0], r[1]) for r in steps]
    assert len(set(pairs)) == len(pairs)  # no step twice
    return found, set(pairs)


async def _fetch(url: str, sql: str) -> list[Any]:
    from sqlalchemy.ext.asyncio import create_async_engine  # noqa: PLC0415

    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return list(await connection.execute(text(sql)))
    finally:
        await engine.dispose()
