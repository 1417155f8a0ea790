"""Where the tests' Kafka and PostgreSQL come from, in this order:

1. endpoints given in the environment (TIERSTREAM_TEST_KAFKA_BOOTSTRAP,
   TIERSTREAM_TEST_DATABASE_URL): the user's own servers;
2. testcontainers, when a Docker engine answers;
3. the local stack (devstack): Kafka from its Maven jars, PostgreSQL from its wheel.

Never an in-memory stand-in, and never a silent skip.
"""

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devstack.kafka import KafkaBroker, probe
from devstack.postgres import PostgresServer

KAFKA_IMAGE = "apache/kafka:4.1.1"
POSTGRES_IMAGE = "postgres:18"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def scratch_dir(name: str) -> Path:
    """Readable by the unprivileged PostgreSQL user too (pytest's tmp dirs are 0700)."""
    path = Path(tempfile.mkdtemp(prefix=f"tierstream-{name}-"))
    path.chmod(0o755)
    return path


@contextmanager
def local_broker() -> Iterator[KafkaBroker]:
    home = scratch_dir("kafka")
    broker = KafkaBroker(home, free_port(), free_port())
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def kafka() -> Iterator[str]:
    given = os.environ.get("TIERSTREAM_TEST_KAFKA_BOOTSTRAP")
    if given:
        if probe(given, timeout=10) is None:
            raise RuntimeError(f"TIERSTREAM_TEST_KAFKA_BOOTSTRAP={given} does not answer")
        yield given
    elif docker_available():
        with _kafka_container() as bootstrap:
            yield bootstrap
    else:
        with local_broker() as broker:
            yield broker.bootstrap


@contextmanager
def postgres() -> Iterator[str]:
    given = os.environ.get("TIERSTREAM_TEST_DATABASE_URL")
    if given:
        yield given
    elif docker_available():
        from testcontainers.postgres import PostgresContainer  # noqa: PLC0415

        with PostgresContainer(POSTGRES_IMAGE, driver="asyncpg") as container:
            yield container.get_connection_url()
    else:
        home = scratch_dir("pg")
        server = PostgresServer(home, free_port(), fast=True)
        try:
            server.start()
            yield server.url
        finally:
            server.stop("immediate")
            shutil.rmtree(home, ignore_errors=True)


@contextmanager
def _kafka_container() -> Iterator[str]:
    """The official image, one KRaft node, advertised on the same host port it listens on."""
    from testcontainers.core.container import DockerContainer  # noqa: PLC0415

    port, controller = free_port(), free_port()
    container = (
        DockerContainer(KAFKA_IMAGE)
        .with_bind_ports(port, port)
        .with_env("KAFKA_NODE_ID", "1")
        .with_env("KAFKA_PROCESS_ROLES", "broker,controller")
        .with_env("KAFKA_LISTENERS", f"PLAINTEXT://:{port},CONTROLLER://:{controller}")
        .with_env("KAFKA_ADVERTISED_LISTENERS", f"PLAINTEXT://127.0.0.1:{port}")
        .with_env("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
        .with_env(
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
        )
        .with_env("KAFKA_CONTROLLER_QUORUM_VOTERS", f"1@localhost:{controller}")
        .with_env("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
        .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
    )
    with container:
        bootstrap = f"127.0.0.1:{port}"
        for _ in range(120):
            if probe(bootstrap, timeout=1) is not None:
                break
        else:
            raise RuntimeError(f"{KAFKA_IMAGE} did not become ready on {bootstrap}")
        yield bootstrap
