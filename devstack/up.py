"""`make up`: the whole stack on this machine, in the foreground; Ctrl-C or `make down` stops it.

Kafka (KRaft, from the Maven jars) and PostgreSQL (embedded wheel) are started unless
TIERSTREAM_KAFKA_BOOTSTRAP_SERVERS / TIERSTREAM_DATABASE_URL point at servers of your own.
State (data, logs, the local API key) lives in .tierstream/ and survives restarts.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import httpx

from devstack import prometheus
from devstack.config import StackConfig
from devstack.kafka import KafkaBroker, run_isolated
from devstack.postgres import PostgresServer
from services import migrations
from services.demo.people import demo_directory
from services.effectively_once.topics import ensure_topics
from services.ingest.auth import new_key
from services.topology import tierstream_topics
from services.web.tokens import Role, new_token


class Stack:
    """Starts the parts in dependency order and stops them in the reverse order."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.broker: KafkaBroker | None = None
        self.postgres: PostgresServer | None = None
        self.services: dict[str, subprocess.Popen[bytes]] = {}
        self.bootstrap = config.kafka_given or f"127.0.0.1:{config.kafka_port}"
        self.database_url = config.database_given or ""

    def start(self) -> str:
        self._check_ports_free()
        (self.config.state / "logs").mkdir(parents=True, exist_ok=True)
        if self.config.kafka_given is None:
            say(f"starting Kafka on {self.bootstrap} (jars cached outside the checkout)")
            self.broker = KafkaBroker(
                self.config.state / "kafka", self.config.kafka_port, self.config.controller_port
            )
            self.broker.start(timeout=120)
            self._record_children()
        if self.config.database_given is None:
            say(f"starting PostgreSQL on 127.0.0.1:{self.config.postgres_port}")
            self.postgres = PostgresServer(
                self.config.state / "postgres", self.config.postgres_port
            )
            self.postgres.start()
            self.database_url = self.postgres.url
        run_isolated(
            ensure_topics(
                self.bootstrap,
                tierstream_topics(
                    self.config.topic_prefix, self.config.partitions, self.config.partitions
                ),
            )
        )
        migrations.upgrade(self.database_url)
        secret, keys = self._api_key()
        self._start_sink()
        for name, (service, port) in self.config.instances().items():
            self._start_service(name, service, port, keys)
        say(f"starting Prometheus on 127.0.0.1:{self.config.prometheus_port}")
        self.services["prometheus"] = prometheus.start(
            self.config.state, self.config.prometheus_port, self.config.targets()
        )
        self._record_children()
        return secret

    def stop(self) -> None:
        for name, process in reversed(self.services.items()):
            _terminate(process, 15)
            say(f"stopped {name}")
        if self.broker is not None:
            self.broker.stop()
            say("stopped Kafka")
        if self.postgres is not None:
            self.postgres.stop()
            say("stopped PostgreSQL")

    def _record_children(self) -> None:
        """So that `make down` can still stop them if this supervisor was killed outright."""
        children = {name: process.pid for name, process in self.services.items()}
        if self.broker is not None and self.broker.process is not None:
            children["kafka"] = self.broker.process.pid
        (self.config.state / "children.json").write_text(json.dumps(children))

    def dead_service(self) -> str | None:
        return next((n for n, p in self.services.items() if p.poll() is not None), None)

    def _check_ports_free(self) -> None:
        wanted = {name: port for name, (_, port) in self.config.instances().items()} | {
            "Prometheus": self.config.prometheus_port,
            "the alert sink": self.config.sink_port,
        }
        if self.config.kafka_given is None:
            wanted |= {
                "Kafka": self.config.kafka_port,
                "Kafka controller": self.config.controller_port,
            }
        if self.config.database_given is None:
            wanted["PostgreSQL"] = self.config.postgres_port
        for name, port in wanted.items():
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    raise SystemExit(
                        f"port {port} for {name} is in use: is another `make up` "
                        "running (`make down` stops it)? Ports are overridable, "
                        "see README.md"
                    )

    def _api_key(self) -> tuple[str, str]:
        """A local key that may write any source; kept across restarts, gitignored."""
        secret_file = self.config.state / "ingest-api-key"
        keys_file = self.config.state / "ingest-api-keys.json"
        if not secret_file.exists() or not keys_file.exists():
            secret, entry = new_key("local", ["*"])
            keys_file.write_text(json.dumps([entry.model_dump(mode="json")]))
            secret_file.write_text(secret + "\n")
            secret_file.chmod(0o600)
        return secret_file.read_text().strip(), keys_file.read_text()

    def _scorer_tokens(self) -> str:
        """Local tokens for the scorer's API: an admin's (the ruleset lifecycle) and a
        service's (the read API, as a downstream system); kept across restarts, gitignored.
        Yours: `tierstream tokens new` and TIERSTREAM_SCORER_TOKENS."""
        files: list[tuple[Role, str]] = [("admin", "admin-token"), ("service", "service-token")]
        tokens_file = self.config.state / "scorer-tokens.json"
        missing = [name for _, name in files if not (self.config.state / name).exists()]
        if missing or not tokens_file.exists():
            entries = []
            for role, name in files:
                secret, entry = new_token(f"local-{role}", role)
                entries.append(entry.model_dump(mode="json"))
                (self.config.state / name).write_text(secret + "\n")
                (self.config.state / name).chmod(0o600)
            tokens_file.write_text(json.dumps(entries))
        return tokens_file.read_text()

    def _directory(self) -> Path:
        """A local demo directory (people, managers, a default team queue; every person's
        alerts go to the local sink), gitignored; tokens are kept across restarts. Your
        own directory: TIERSTREAM_NOTIFIER_DIRECTORY_FILE (and _DEFAULT_TEAM)."""
        path = self.config.state / "directory.yaml"
        tokens_file = self.config.state / "notifier-tokens.json"
        tokens = json.loads(tokens_file.read_text()) if tokens_file.exists() else None
        tokens = demo_directory(path, f"http://127.0.0.1:{self.config.sink_port}", tokens)
        tokens_file.write_text(json.dumps(tokens, indent=2))
        tokens_file.chmod(0o600)
        return path

    def _start_sink(self) -> None:
        log = self.config.state / "logs" / "alert-sink.log"
        with log.open("ab") as out:
            self.services["alert-sink"] = subprocess.Popen(
                [sys.executable, "-m", "devstack.sink", str(self.config.sink_port),
                 str(self.config.state / "logs" / "alerts.log")],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        wait_healthy(f"http://127.0.0.1:{self.config.sink_port}", self.services["alert-sink"], log)

    def _start_service(self, name: str, service: str, port: int, keys: str) -> None:
        env = {
            **os.environ,
            "TIERSTREAM_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "TIERSTREAM_DATABASE_URL": self.database_url,
            "TIERSTREAM_TOPIC_PREFIX": self.config.topic_prefix,
            f"TIERSTREAM_{service.upper()}_PORT": str(port),
        }
        if service == "ingest":
            env["TIERSTREAM_INGEST_API_KEYS"] = keys
        if service == "scorer" and "TIERSTREAM_SCORER_TOKENS" not in os.environ:
            env["TIERSTREAM_SCORER_TOKENS"] = self._scorer_tokens()
        if service == "notifier" and "TIERSTREAM_NOTIFIER_DIRECTORY_FILE" not in os.environ:
            env["TIERSTREAM_NOTIFIER_DIRECTORY_FILE"] = str(self._directory())
            env["TIERSTREAM_NOTIFIER_DEFAULT_TEAM"] = "unassigned"
        log = self.config.state / "logs" / f"{name}.log"
        with log.open("ab") as out:
            self.services[name] = subprocess.Popen(
                [sys.executable, "-m", f"services.{service}.main"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self._record_children()
        wait_healthy(f"http://127.0.0.1:{port}", self.services[name], log)


def wait_healthy(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 90.0
) -> None:
    """Polls `/healthz` with a deadline; fails at once, with the log, if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not healthy after {timeout:g} s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def _terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def say(message: str) -> None:
    print(f"[tierstream] {message}", flush=True)


def banner(stack: Stack, secret: str) -> str:
    ports = stack.config.ports
    more = stack.config.targets()["scorer"][1:]
    lines = [
        "",
        "tierstream is up:",
        f"  ingest    http://127.0.0.1:{ports['ingest']}    (docs: /docs)",
        f"  scorer    http://127.0.0.1:{ports['scorer']}    (/v1/tiers, /v1/status, /docs)"
        + (f"   +{len(more)} in its group on {', '.join(map(str, more))}" if more else ""),
        f"  notifier  http://127.0.0.1:{ports['notifier']}    (/v1/tasks, /v1/alerts, /docs)",
        f"  Kafka     {stack.bootstrap}",
        f"  Postgres  {stack.database_url}",
        f"  API key   {secret}   (also in {stack.config.state / 'ingest-api-key'})",
        f"  tokens    {stack.config.state / 'notifier-tokens.json'}   (task API, per person)",
        f"  admin     {stack.config.state / 'admin-token'}   (the scorer's /v1/rulesets)",
        f"  service   {stack.config.state / 'service-token'}   (the scorer's read API)",
        f"  Prometheus http://127.0.0.1:{stack.config.prometheus_port}   (alerts: /alerts)",
        f"  alerts    {stack.config.state / 'logs' / 'alerts.log'}   (the demo's local sink)",
        "  demo      `.venv/bin/tierstream demo` posts a realistic stream through ingest",
        f"  logs      {stack.config.state / 'logs'}",
        "Ctrl-C here, or `make down` elsewhere, stops everything.",
        "",
    ]
    return "\n".join(lines)


def up() -> int:
    config = StackConfig()
    config.state.mkdir(parents=True, exist_ok=True)
    pid_file = config.state / "up.pid"
    stopping: list[int] = []

    def on_signal(signum: int, _: FrameType | None) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stack = Stack(config)
    pid_file.write_text(str(os.getpid()))
    code = 0
    try:
        secret = stack.start()
        print(banner(stack, secret), flush=True)
        while not stopping and (dead := stack.dead_service()) is None:
            time.sleep(0.5)
        if not stopping:
            say(f"{dead} exited unexpectedly; see {config.state / 'logs'}; stopping")
            code = 1
    finally:
        say("stopping")
        stack.stop()
        pid_file.unlink(missing_ok=True)
    return code


def down() -> int:
    pid_file = StackConfig().state / "up.pid"
    if not pid_file.exists():
        say("nothing to stop (no .tierstream/up.pid)")
        return 0
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        say(f"the supervisor {pid} is gone; stopping what it left behind")
        _stop_orphans(StackConfig())
        pid_file.unlink()
        return 0
    deadline = time.monotonic() + 90
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return 0 if not pid_file.exists() else 1


def _stop_orphans(config: StackConfig) -> None:
    children_file = config.state / "children.json"
    children = json.loads(children_file.read_text()) if children_file.exists() else {}
    for name, pid in children.items():
        try:
            os.kill(pid, signal.SIGTERM)
            say(f"sent SIGTERM to {name} ({pid})")
        except ProcessLookupError:
            pass
    postgres = PostgresServer(config.state / "postgres", config.postgres_port)
    if (postgres.data / "postmaster.pid").exists():
        postgres.stop()
        say("stopped PostgreSQL")
