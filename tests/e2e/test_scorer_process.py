"""The scorer process when PostgreSQL goes away under it: no `log and continue` — the loop
raises, the process exits non-zero (to be restarted; everything it did is committed with its
offsets or not at all); and SIGTERM drains and exits cleanly."""

import signal
import time
import uuid

import pytest
from sqlalchemy.engine import make_url

from devstack.kafka import run_isolated
from harness.processes import service
from harness.stack import free_port
from services import migrations
from services.effectively_once.topics import ensure_topics
from services.topology import tierstream_topics

pytestmark = pytest.mark.e2e


def env(kafka_bootstrap: str, database_url: str, port: int) -> dict[str, str]:
    prefix = f"proc-{uuid.uuid4().hex[:8]}."
    run_isolated(ensure_topics(kafka_bootstrap, tierstream_topics(prefix, 3, 3)))
    return {
        "TIERSTREAM_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TIERSTREAM_DATABASE_URL": database_url,
        "TIERSTREAM_TOPIC_PREFIX": prefix,
        "TIERSTREAM_SCORER_PORT": str(port),
        "TIERSTREAM_SCORER_MAINTAIN_EVERY_SECONDS": "0.5",
    }


def test_losing_the_database_stops_the_process_with_an_error(
    kafka_bootstrap: str, database_url: str, postgres_url: str
) -> None:
    migrations.upgrade(database_url)
    port = free_port()
    with service("services.scorer.main", port, env(kafka_bootstrap, database_url, port)) as s:
        run_isolated(_drop(postgres_url, make_url(database_url).database or ""))
        deadline = time.monotonic() + 60
        while s.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert s.process.poll() not in (None, 0), s.output()[-2000:]
        assert "scorer_task_failed" in s.output()


def test_sigterm_drains_and_exits_cleanly(kafka_bootstrap: str, database_url: str) -> None:
    migrations.upgrade(database_url)
    port = free_port()
    with service("services.scorer.main", port, env(kafka_bootstrap, database_url, port)) as s:
        # uvicorn shuts down gracefully, then re-raises the signal it caught: the exit status
        # says "ended by SIGTERM", as a supervisor expects
        assert s.terminate(timeout=30) == -signal.SIGTERM
        output = s.output()
    assert output.index("scorer_stopped") < output.index("Finished server process")
    assert "LeaveGroup request succeeded" in output  # its partitions move on at once
    assert "scorer_task_failed" not in output


async def _drop(server_url: str, name: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine  # noqa: PLC0415

    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
    await engine.dispose()
