"""Monitoring as code: the Prometheus config and alert rules pass promtool (check and the
rules' unit tests), and the dashboard is provisioned by docker compose and reads only
metrics the services export."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARD = json.loads((DEPLOY / "grafana/dashboards/tierstream.json").read_text())
SERVICES = ROOT / "services"


def _promtool(*args: str) -> str:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make test` installs Debian's prometheus package"
    done = subprocess.run(
        [promtool, *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_promtool_checks_the_config_and_the_rules() -> None:
    assert "SUCCESS" in _promtool("check", "config", "prometheus.yml")
    assert "7 rules found" in _promtool("check", "rules", "rules/tierstream.yml")


def test_promtool_runs_the_alert_rules_unit_tests() -> None:
    assert "SUCCESS" in _promtool("test", "rules", "tests/rules_test.yml")


def _exported() -> set[str]:
    """Every metric name the services declare (counters are exported with _total)."""
    names = set()
    for source in SERVICES.rglob("*.py"):
        for kind, name in re.findall(
            r"(Counter|Gauge|Histogram)\(\s*\"(tierstream_\w+)\"", source.read_text()
        ):
            if kind == "Counter":
                names.add(name + "_total")
            elif kind == "Histogram":
                names.update({name + "_bucket", name + "_sum", name + "_count"})
            else:
                names.add(name)
    return names


def test_every_panel_and_rule_reads_metrics_the_services_export() -> None:
    exported = _exported()
    rules = yaml.safe_load((DEPLOY / "prometheus/rules/tierstream.yml").read_text())
    exprs = [t["expr"] for p in DASHBOARD["panels"] for t in p["targets"]]
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    for expr in exprs:
        used = set(re.findall(r"tierstream_\w+", expr))
        assert used, expr
        assert used <= exported, f"{expr}: {used - exported} not exported"


def test_the_dashboard_covers_what_operators_watch_and_compose_provisions_it() -> None:
    exprs = " ".join(t["expr"] for p in DASHBOARD["panels"] for t in p["targets"])
    for metric in (
        "ingest_events_accepted", "ingest_events_rejected", "ingest_publish_seconds",
        "consumer_lag_records", "scorer_event_time_lag_seconds", "scorer_processing_seconds",
        "tier_transitions", "tierstream_customers", "tierstream_tasks", "escalations_total",
        "alert_deliveries_total", "dead_letters_total",
    ):  # fmt: skip
        assert metric in exprs, metric
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    mounts = " ".join(compose["grafana"]["volumes"])
    assert "./deploy/grafana/dashboards" in mounts
    assert "./deploy/grafana/provisioning" in mounts
    assert "./deploy/prometheus:/etc/prometheus" in " ".join(compose["prometheus"]["volumes"])
    source = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    assert all(p["datasource"]["uid"] == source["uid"] for p in DASHBOARD["panels"])
