"""`make up` as a user runs it: everything starts, an event goes in, Ctrl-C stops it all."""

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import orjson
import pytest

from devstack.kafka import run_isolated
from harness.processes import wait_for
from harness.stack import free_port, scratch_dir
from tests.events import customer, transaction
from tests.kafka_reader import read_all

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack_up() -> Iterator[tuple[subprocess.Popen[bytes], Path, dict[str, int]]]:
    state = scratch_dir("stack")
    ports = {
        "kafka": free_port(),
        "controller": free_port(),
        "pg": free_port(),
        "ingest": free_port(),
        "scorer": free_port(),
        "scorer-2": free_port(),
        "notifier": free_port(),
        "prometheus": free_port(),
        "sink": free_port(),
    }
    env = {
        **os.environ,
        "TIERSTREAM_STATE_DIR": str(state),
        "TIERSTREAM_KAFKA_PORT": str(ports["kafka"]),
        "TIERSTREAM_KAFKA_CONTROLLER_PORT": str(ports["controller"]),
        "TIERSTREAM_PG_PORT": str(ports["pg"]),
        "TIERSTREAM_INGEST_PORT": str(ports["ingest"]),
        "TIERSTREAM_SCORER_PORT": str(ports["scorer"]),
        "TIERSTREAM_SCORERS": "2",
        "TIERSTREAM_SCORER_2_PORT": str(ports["scorer-2"]),
        "TIERSTREAM_NOTIFIER_PORT": str(ports["notifier"]),
        "TIERSTREAM_PROMETHEUS_PORT": str(ports["prometheus"]),
        "TIERSTREAM_ALERT_SINK_PORT": str(ports["sink"]),
        "TIERSTREAM_CUSTOMER_EVENTS_PARTITIONS": "3",
    }
    for name in ("TIERSTREAM_KAFKA_BOOTSTRAP_SERVERS", "TIERSTREAM_DATABASE_URL"):
        env.pop(name, None)
    with (state / "up.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack", "up"], stdout=log, stderr=subprocess.STDOUT, env=env
        )
    try:
        wait_for(
            lambda: (
                b"tierstream is up" in (state / "up.log").read_bytes() or process.poll() is not None
            ),
            180,
            "make up did not finish starting",
        )
        assert process.poll() is None, (state / "up.log").read_text()
        yield process, state, ports
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(60)


def test_everything_answers_and_an_event_reaches_kafka(
    stack_up: tuple[subprocess.Popen[bytes], Path, dict[str, int]],
) -> None:
    _, state, ports = stack_up
    key = (state / "ingest-api-key").read_text().strip()
    assert oct((state / "ingest-api-key").stat().st_mode)[-3:] == "600"
    for service in ("ingest", "scorer", "scorer-2", "notifier"):
        assert httpx.get(f"http://127.0.0.1:{ports[service]}/healthz").status_code == 200
    scorer = f"http://127.0.0.1:{ports['scorer']}"
    for instance in ("scorer", "scorer-2"):
        wait_for(partial(_ready, ports[instance]), 60, f"{instance} is not ready")
    assert "+1 in its group on" in (state / "up.log").read_text()

    reader = {"authorization": f"Bearer {(state / 'service-token').read_text().strip()}"}
    assert httpx.get(f"{scorer}/v1/tiers").status_code == 401  # every API is authenticated
    event = transaction(event_id="e2e-1")
    response = httpx.post(
        f"http://127.0.0.1:{ports['ingest']}/v1/events",
        content=orjson.dumps(event),
        headers={"authorization": f"Bearer {key}", "content-type": "application/cloudevents+json"},
    )
    assert response.status_code == 202, response.text
    [message] = run_isolated(
        read_all(f"127.0.0.1:{ports['kafka']}", "tierstream.customer-events.v1", expected=1)
    )
    assert message.headers["ce_id"] == b"e2e-1"
    wait_for(
        lambda: (
            httpx.get(f"{scorer}/v1/customers/{event['subject']}", headers=reader).status_code
            == 200
        ),
        60,
        "the scorer did not score the event",
    )
    answer = httpx.get(f"{scorer}/v1/customers/{event['subject']}", headers=reader).json()
    assert answer["tier"]["id"] == answer["why"]["matched_rule"]
    assert answer["why"]["features"]["frequency"] == 1
    [change] = run_isolated(
        read_all(f"127.0.0.1:{ports['kafka']}", "tierstream.tier-changes.v1", expected=1)
    )
    assert change.headers["ce_id"].decode() == answer["change_id"]
    # the group split the partitions; either instance answers for all of them
    for instance in ("scorer", "scorer-2"):
        status = httpx.get(f"http://127.0.0.1:{ports[instance]}/v1/status", headers=reader).json()
        assert [p["partition"] for p in status["partitions"]] == [0, 1, 2]
        other = httpx.get(
            f"http://127.0.0.1:{ports[instance]}/v1/customers/{event['subject']}", headers=reader
        )
        assert other.json()["change_id"] == answer["change_id"]
    # the ruleset lifecycle, for the admin token `make up` wrote
    admin = (state / "admin-token").read_text().strip()
    assert oct((state / "admin-token").stat().st_mode)[-3:] == "600"
    for instance in ("scorer", "scorer-2"):
        rulesets = f"http://127.0.0.1:{ports[instance]}/v1/rulesets"
        assert httpx.get(rulesets).status_code == 401
        listed = httpx.get(rulesets, headers={"authorization": f"Bearer {admin}"})
        assert listed.status_code == 200, listed.text
        assert ("rfm-segments-1", "active") in {(r["version"], r["state"]) for r in listed.json()}


def _ready(port: int) -> bool:
    return httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200


def test_a_new_high_value_customer_becomes_a_task_for_its_owner(
    stack_up: tuple[subprocess.Popen[bytes], Path, dict[str, int]],
) -> None:
    """ingest -> scorer -> notifier: the owner (from a profile event) sees a welcome task."""
    _, state, ports = stack_up
    key = (state / "ingest-api-key").read_text().strip()
    tokens = orjson.loads((state / "notifier-tokens.json").read_text())
    profile = customer("C-e2e-vip")
    profile["data"]["owner_id"] = "liu.yang"
    big = transaction(customer="C-e2e-vip", amount="50000.00", event_id="e2e-vip-1")
    response = httpx.post(
        f"http://127.0.0.1:{ports['ingest']}/v1/events:batch",
        content=orjson.dumps([profile, big]),
        headers={
            "authorization": f"Bearer {key}",
            "content-type": "application/cloudevents-batch+json",
        },
    )
    assert response.status_code == 202, response.text
    notifier = f"http://127.0.0.1:{ports['notifier']}"
    owner = {"authorization": f"Bearer {tokens['liu.yang']}"}

    def welcome() -> list[dict[str, object]]:
        found = httpx.get(f"{notifier}/v1/tasks?customer_id=C-e2e-vip", headers=owner).json()
        return [t for t in found["tasks"] if t["assignee"] == "liu.yang"]

    wait_for(lambda: bool(welcome()), 60, "no task reached the owner")
    [task] = welcome()
    assert (task["rule"], task["priority"]) == ("high_value_welcome", "high")
    stranger = {"authorization": f"Bearer {tokens['sun.li']}"}
    assert httpx.get(f"{notifier}/v1/tasks/{task['id']}", headers=stranger).status_code == 404
    assert httpx.get(f"{notifier}/readyz").status_code == 200


def test_the_demo_moves_every_dashboard_panel_in_the_real_prometheus(
    stack_up: tuple[subprocess.Popen[bytes], Path, dict[str, int]],
) -> None:
    """`tierstream demo` through the stack; then every panel's PromQL answers with data from
    the Prometheus `make up` runs, and the alerts reached the local sink."""
    _, state, ports = stack_up
    demo = subprocess.run(
        [sys.executable, "-m", "services.cli", "demo", "--url",
         f"http://127.0.0.1:{ports['ingest']}", "--customers", "80", "--seconds", "12",
         "--rate", "40", "--scorer-url", f"http://127.0.0.1:{ports['scorer']}"],
        env={**os.environ, "TIERSTREAM_STATE_DIR": str(state)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert re.search(r"[1-9]\d* malformed ones rejected", demo.stdout), demo.stdout
    assert "ruleset rfm-review-1 runs in shadow" in demo.stdout, demo.stdout
    prometheus = f"http://127.0.0.1:{ports['prometheus']}"
    dashboard = orjson.loads(
        (Path(__file__).parents[2] / "deploy/grafana/dashboards/tierstream.json").read_bytes()
    )
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]

    def empty() -> list[str]:
        answers = {
            expr: httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}).json()
            for expr in exprs
        }
        return [
            e for e, a in answers.items() if a["status"] != "success" or not a["data"]["result"]
        ]

    missing: list[str] = []

    def all_answer() -> bool:
        missing[:] = empty()
        return not missing

    try:
        wait_for(all_answer, 120, "panels without data")
    except TimeoutError as error:
        raise AssertionError(f"panels without data: {missing}\n{demo.stdout}") from error
    targets = httpx.get(f"{prometheus}/api/v1/targets").json()["data"]["activeTargets"]
    assert sorted((t["labels"]["job"], t["health"]) for t in targets) == [
        ("ingest", "up"), ("notifier", "up"), ("scorer", "up"), ("scorer", "up"),
    ]  # fmt: skip
    rules = httpx.get(f"{prometheus}/api/v1/rules").json()["data"]["groups"]
    assert len(rules[0]["rules"]) == 7
    assert (state / "logs" / "alerts.log").read_text().strip()  # alerts really delivered
    checked = subprocess.run(
        ["promtool", "check", "config", str(state / "prometheus" / "prometheus.yml")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_chunked_oversize_body_is_cut_off_with_413(
    stack_up: tuple[subprocess.Popen[bytes], Path, dict[str, int]],
) -> None:
    _, state, ports = stack_up
    key = (state / "ingest-api-key").read_text().strip()

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must count as it reads
        yield b"["
        for _ in range(2048):
            yield b" " * 1024
        yield b"]"

    response = httpx.post(
        f"http://127.0.0.1:{ports['ingest']}/v1/events:batch",
        content=chunks(),
        headers={
            "authorization": f"Bearer {key}",
            "content-type": "application/cloudevents-batch+json",
        },
    )
    assert response.status_code == 413


def test_ctrl_c_stops_everything_cleanly(
    stack_up: tuple[subprocess.Popen[bytes], Path, dict[str, int]],
) -> None:
    process, state, ports = stack_up
    process.send_signal(signal.SIGINT)
    assert process.wait(60) == 0
    output = (state / "up.log").read_text()
    parts = ("ingest", "scorer", "scorer-2", "notifier", "prometheus", "alert-sink", "Kafka")
    for part in (*parts, "PostgreSQL"):
        assert f"stopped {part}" in output
    assert not (state / "up.pid").exists()
    for port in ports.values():
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
