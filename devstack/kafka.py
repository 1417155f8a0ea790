"""One combined KRaft broker+controller on 127.0.0.1, run from the Maven Central jars."""

import asyncio
import base64
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient

KAFKA_VERSION = "4.1.1"
POM = Path(__file__).resolve().parents[1] / "deploy" / "kafka" / "pom.xml"

_SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{cport}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}
advertised.listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data}
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.cleaner.dedupe.buffer.size=2097152
auto.create.topics.enable=false
"""

_LOG4J = """\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = FILE
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
"""


def cache_dir() -> Path:
    """Outside the checkout, so a fresh clone on the same machine reuses the jars."""
    explicit = os.environ.get("TIERSTREAM_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tierstream"


def ensure_jars() -> Path:
    """The broker's runtime classpath; fetched with Maven on first use, then reused."""
    lib = cache_dir() / f"kafka-{KAFKA_VERSION}" / "lib"
    if (lib / ".complete").exists():
        return lib
    if shutil.which("java") is None or shutil.which("mvn") is None:
        raise RuntimeError("Kafka needs Java 17+ and Maven on PATH (apt-get install maven)")
    lib.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="lib-", dir=lib.parent))
    command = [
        "mvn",
        "-B",
        "-U",
        "-q",
        "-f",
        str(POM),
        "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise RuntimeError(f"fetching the Kafka jars failed:\n{result.stdout}\n{result.stderr}")
    (staging / ".complete").write_text(KAFKA_VERSION)
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)
    return lib


def new_cluster_id() -> str:
    return base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")


@dataclass
class KafkaBroker:
    """A broker process with its own ports and data directory."""

    home: Path
    port: int
    controller_port: int
    heap: str = "512m"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    def start(self, timeout: float = 60.0) -> None:
        lib = ensure_jars()
        config = self._write_config()
        if not (self.home / "data" / "meta.properties").exists():
            self._java(
                lib,
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                # one argument: a base64url id may start with "-", which would read as an option
                f"--cluster-id={new_cluster_id()}",
                "-c",
                str(config),
                check=True,
            )
        with (self.home / "stdout.log").open("ab") as out:
            self.process = subprocess.Popen(
                self._java_command(lib, "kafka.Kafka", str(config)),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        """Ready means a Kafka metadata answer from this cluster, not just an open port."""
        deadline = time.monotonic() + timeout
        expected = self.cluster_id()
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"Kafka exited with {self.process.returncode}:\n{self._tail()}")
            answered = probe(self.bootstrap, timeout=2.0)
            if answered == expected:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Kafka on {self.bootstrap} not ready after {timeout}s "
                    f"(answered cluster id {answered!r}, expected {expected!r}):\n{self._tail()}"
                )
            time.sleep(0.2)

    def cluster_id(self) -> str:
        meta = (self.home / "data" / "meta.properties").read_text()
        return next(
            line.split("=", 1)[1] for line in meta.splitlines() if line.startswith("cluster.id=")
        )

    def stop(self, timeout: float = 30.0) -> None:
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        self._signal(signal.SIGKILL, 10.0)

    def _signal(self, sig: signal.Signals, timeout: float) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def _write_config(self) -> Path:
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        config = self.home / "server.properties"
        config.write_text(
            _SERVER_PROPERTIES.format(
                port=self.port, cport=self.controller_port, data=self.home / "data"
            )
        )
        (self.home / "log4j2.properties").write_text(_LOG4J.format(log=self.log_file))
        return config

    def _java_command(self, lib: Path, main: str, *args: str) -> list[str]:
        # Short-lived tools start faster with the C1 compiler only.
        tuning = [] if main == "kafka.Kafka" else ["-XX:TieredStopAtLevel=1"]
        return [
            "java",
            "-Xms128m",
            f"-Xmx{self.heap}",
            "-XX:+ExitOnOutOfMemoryError",
            *tuning,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.home / 'logs'}",
            "-cp",
            f"{lib}/*",
            main,
            *args,
        ]

    def _java(self, lib: Path, main: str, *args: str, check: bool) -> None:
        result = subprocess.run(
            self._java_command(lib, main, *args), capture_output=True, text=True, check=False
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{main} failed:\n{result.stdout}\n{result.stderr}")

    def _tail(self, lines: int = 30) -> str:
        text = ""
        for path in (self.home / "stdout.log", self.log_file):
            if path.exists():
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        return text


T = TypeVar("T")


def run_isolated(coroutine: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine to the end on an event loop of its own, whatever the caller runs."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def probe(bootstrap: str, timeout: float) -> str | None:
    """The cluster id a broker answers with over the Kafka protocol, or None.

    A plain connect comes first: while the port is closed there is nothing to ask, and the
    Kafka client would only log a connection error per attempt."""
    host, _, port = bootstrap.split(",", maxsplit=1)[0].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError:
        return None
    return run_isolated(_probe(bootstrap, limit_s=timeout))


async def _probe(bootstrap: str, limit_s: float) -> str | None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(limit_s * 1000))
    try:
        async with asyncio.timeout(limit_s):
            await admin.start()
            cluster = await admin.describe_cluster()
    except Exception:
        return None
    finally:
        await admin.close()
    brokers = cluster.get("brokers") or []
    return str(cluster["cluster_id"]) if len(brokers) >= 1 else None
