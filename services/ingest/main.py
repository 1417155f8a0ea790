"""Wiring of ingest: settings, producer, app; started and closed here and nowhere else.

With `workers` > 1, uvicorn runs that many processes on one port (ingest keeps no state);
each builds its own producer through `app_from_environment`, inside its own event loop, and
the metrics of all of them are summed (prometheus_client multiprocess mode).
"""

import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from schemas.v1 import topics
from services.clock import wall_clock
from services.effectively_once.producer import safe_producer, start_producer
from services.ingest.api import create_app
from services.ingest.publisher import EventPublisher
from services.ingest.settings import IngestSettings
from services.logs import configure_logging
from services.web.serve import settle_heap

log = structlog.get_logger()
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def build(settings: IngestSettings) -> FastAPI:
    """Must run inside the event loop that will serve (aiokafka binds to it)."""
    producer = safe_producer(
        settings.kafka_bootstrap_servers,
        "tierstream-ingest",
        request_timeout_s=max(settings.publish_timeout_seconds, 5.0),
    )
    publisher = EventPublisher(
        producer, settings.topic_prefix + topics.CUSTOMER_EVENTS, settings.publish_timeout_seconds
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await start_producer(producer, settings.startup_timeout_seconds)
        settle_heap()
        log.info(
            "ingest_started",
            kafka=settings.kafka_bootstrap_servers,
            keys=len(settings.api_keys),
            port=settings.port,
            pid=os.getpid(),
        )
        try:
            yield
        finally:
            await producer.stop()
            log.info("ingest_stopped", pid=os.getpid())

    return create_app(
        settings,
        publisher,
        registry=CollectorRegistry(),
        now=wall_clock,
        lifespan=lifespan,
        metrics_dir=os.environ.get(MULTIPROCESS_DIR),
    )


def app_from_environment() -> FastAPI:
    """uvicorn's app factory: called in each worker process, inside its event loop."""
    settings = IngestSettings()
    configure_logging(settings.log_level, "ingest")
    return build(settings)


def main() -> None:
    settings = IngestSettings()
    configure_logging(settings.log_level, "ingest")
    if not settings.api_keys:
        log.warning("no_api_keys", hint="every request will get 401; see `tierstream keys new`")
    with tempfile.TemporaryDirectory(prefix="tierstream-ingest-metrics-") as metrics_dir:
        if settings.workers > 1:
            os.environ[MULTIPROCESS_DIR] = metrics_dir  # read by each worker at import
        uvicorn.run(
            f"{__name__}:app_from_environment",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=10,
        )


if __name__ == "__main__":
    main()
