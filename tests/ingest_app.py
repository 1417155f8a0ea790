"""An ingest app wired to a real broker, and an HTTP client for it (in-process ASGI)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from schemas.v1 import topics
from services.effectively_once.producer import safe_producer
from services.ingest.api import create_app
from services.ingest.auth import new_key
from services.ingest.publisher import EventPublisher
from services.ingest.settings import IngestSettings

SINGLE = {"content-type": "application/cloudevents+json"}
BATCH = {"content-type": "application/cloudevents-batch+json"}


@dataclass
class IngestUnderTest:
    client: httpx.AsyncClient
    settings: IngestSettings
    topic: str
    erp_key: str  # may write erp/*
    shop_key: str  # may write shop/web only

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"authorization": f"Bearer {key or self.erp_key}"}

    async def post(self, body: Any, batch: bool = False, key: str | None = None) -> httpx.Response:
        return await self.client.post(
            "/v1/events:batch" if batch else "/v1/events",
            json=body,
            headers={**(BATCH if batch else SINGLE), **self.auth(key)},
        )


@asynccontextmanager
async def running_ingest(
    bootstrap: str, topic_prefix: str, **overrides: Any
) -> AsyncIterator[IngestUnderTest]:
    erp_key, erp = new_key("erp", ["erp/*"])
    shop_key, shop = new_key("shop", ["shop/web"])
    settings = IngestSettings(
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=topic_prefix,
        api_keys=(erp, shop),
        **overrides,
    )
    topic = topic_prefix + topics.CUSTOMER_EVENTS
    producer = safe_producer(bootstrap, "test-ingest", request_timeout_s=5)
    await producer.start()
    publisher = EventPublisher(producer, topic, settings.publish_timeout_seconds)
    app = create_app(
        settings, publisher, registry=CollectorRegistry(), now=lambda: datetime.now(UTC)
    )
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            yield IngestUnderTest(client, settings, topic, erp_key, shop_key)
    finally:
        await producer.stop()
