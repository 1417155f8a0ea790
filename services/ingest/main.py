"""Wiring of ingest: settings, producer, app; started and closed here and nowhere else."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import structlog
import uvicorn
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from schemas.v1 import topics
from services.ingest.api import create_app
from services.ingest.publisher import EventPublisher
from services.ingest.settings import IngestSettings
from services.kafka_io.producer import safe_producer
from services.logs import configure_logging

log = structlog.get_logger()


def wall_clock() -> datetime:
    return datetime.now(UTC)


async def serve(settings: IngestSettings) -> None:
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
        log.info(
            "ingest_started",
            kafka=settings.kafka_bootstrap_servers,
            keys=len(settings.api_keys),
            port=settings.port,
        )
        try:
            yield
        finally:
            await producer.stop()
            log.info("ingest_stopped")

    app = create_app(settings, publisher, CollectorRegistry(), wall_clock, lifespan)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    await uvicorn.Server(config).serve()


async def start_producer(producer: AIOKafkaProducer, timeout_s: float) -> None:
    """Waits for Kafka at start-up, within a bound, instead of failing on the first try."""
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                await producer.start()
            except KafkaConnectionError as error:
                log.warning("kafka_not_reachable", error=str(error))
                await asyncio.sleep(1.0)
            else:
                return


def main() -> None:
    settings = IngestSettings()
    configure_logging(settings.log_level, "ingest")
    if not settings.api_keys:
        log.warning("no_api_keys", hint="every request will get 401; see `tierstream keys new`")
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
