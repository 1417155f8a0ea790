"""The scorer's HTTP API (SPEC §3) and metrics, on a running scorer (real broker and
database), through the ASGI app main builds."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio

from harness.scorer_run import (
    CUSTOMER_EVENTS,
    Clock,
    caught_up,
    produce,
    records,
    running_scorer,
    settings,
)
from services import migrations
from services.scorer.api import create_app
from services.scorer.main import Scorer
from services.web.tokens import new_token
from tests import events

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
READER, READER_TOKEN = new_token("crm-sync", "service")
AS_READER = {"authorization": f"Bearer {READER}"}


@dataclass
class Api:
    client: httpx.AsyncClient
    scorer: Scorer


@pytest_asyncio.fixture
async def api(kafka_bootstrap: str, database_url: str, topic_prefix: str) -> AsyncIterator[Api]:
    await asyncio.to_thread(migrations.upgrade, database_url)
    config = settings(kafka_bootstrap, database_url, topic_prefix)
    posted = [
        events.transaction(
            customer=f"Q-{n}", amount="20000.00", time=(NOW - timedelta(days=n)).isoformat()
        )
        for n in range(5)
    ]
    posted += [events.interaction("Q-9")]
    broken = records([events.interaction("Q-8")])[0]
    await produce(
        kafka_bootstrap,
        topic_prefix + CUSTOMER_EVENTS,
        [*records(posted), type(broken)(broken.key, b"not json", broken.headers)],
    )
    async with running_scorer(config, Clock(NOW)) as scorer:
        await caught_up(scorer)
        app = create_app(registry=scorer.metrics_registry, tokens=(READER_TOKEN,))
        app.state.queries = scorer.queries
        app.state.consumer = scorer.consumer
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://scorer", headers=AS_READER
        ) as client:
            yield Api(client, scorer)


async def test_a_customer_with_the_why(api: Api) -> None:
    response = await api.client.get("/v1/customers/Q-1")
    assert response.status_code == 200
    body = response.json()
    assert body["tier"]["id"] == "important_develop"
    assert body["tier"]["labels"] == {"zh": "重要发展客户", "en": "Important to develop"}
    why = body["why"]
    assert why["matched_rule"] == "important_develop"
    assert why["ruleset_version"] == "rfm-segments-1"
    assert why["features"]["recency_days"] == 1
    assert why["features"]["monetary"] == "20000"
    assert why["levels"] == {
        "recency": "high",
        "frequency": "low",
        "monetary": "high",
        "segment": "important_develop",
    }
    assert why["thresholds"] == {
        "mode": "fixed",
        "recency_days": "90",
        "frequency": "3",
        "monetary": "10000",
    }


async def test_as_of_evaluates_another_instant(api: Api) -> None:
    later = (NOW + timedelta(days=100)).isoformat()
    body = (await api.client.get("/v1/customers/Q-1", params={"as_of": later})).json()
    assert body["why"]["features"]["recency_days"] == 101
    assert body["why"]["matched_rule"] == "important_winback"
    assert body["tier"]["id"] == "important_develop"  # the stored tier; the sweep moves it


async def test_bad_questions_get_precise_problems(api: Api) -> None:
    unknown = await api.client.get("/v1/customers/nobody")
    assert unknown.status_code == 404
    assert "nobody" in unknown.json()["detail"]
    naive = await api.client.get("/v1/customers/Q-1", params={"as_of": "2026-11-20T10:00:00"})
    assert naive.status_code == 422
    ancient = await api.client.get("/v1/customers/Q-1", params={"as_of": "2020-01-01T00:00:00Z"})
    assert ancient.status_code == 422
    assert "before the customer's first event" in ancient.json()["detail"]
    cursor = await api.client.get("/v1/customers", params={"tier": "x", "cursor": "%%%"})
    assert cursor.status_code == 400
    history = await api.client.get("/v1/customers/nobody/tier-history")
    assert history.status_code == 404


async def test_customers_in_a_tier_page_by_cursor(api: Api) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        params = {"tier": "important_develop", "limit": "2"} | (
            {"cursor": cursor} if cursor else {}
        )
        page = (await api.client.get("/v1/customers", params=params)).json()
        seen += [c["customer_id"] for c in page["customers"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"Q-{n}" for n in range(5)]


async def test_history_tiers_and_status(api: Api) -> None:
    history = (await api.client.get("/v1/customers/Q-2/tier-history")).json()
    assert [c["direction"] for c in history["changes"]] == ["initial"]
    tiers = (await api.client.get("/v1/tiers")).json()
    assert tiers == {"tiers": {"important_develop": 5, "general_winback": 1}}
    status = (await api.client.get("/v1/status")).json()
    assert status["ruleset_version"] == "rfm-segments-1"
    assert status["outbox_pending"] == 0
    assert sum(p["end_offset"] for p in status["partitions"]) == 7
    assert all(p["lag"] == 0 for p in status["partitions"])
    assert status["last_event_time"] is not None


async def test_metrics_count_what_happened(api: Api) -> None:
    await api.scorer.refresh_gauges()
    text = (await api.client.get("/metrics")).text
    assert 'tierstream_scorer_events_total{outcome="applied"} 6.0' in text
    assert 'tierstream_dead_letters_total{reason="undecodable",service="scorer"} 1.0' in text
    assert (
        'tierstream_tier_transitions_total{from_tier="none",to_tier="important_develop"} 5.0'
        in text
    )
    assert 'tierstream_customers{tier="important_develop"} 5.0' in text
    assert "tierstream_scorer_processing_seconds_bucket" in text
    assert "tierstream_scorer_event_time_lag_seconds{" in text
    assert 'tierstream_consumer_lag_records{consumer="scorer",partition=' in text
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200, ready.text


async def test_every_read_needs_a_token_health_and_metrics_do_not(api: Api) -> None:
    for path in ("/v1/customers/Q-1", "/v1/customers?tier=x", "/v1/tiers", "/v1/status",
                 "/v1/customers/Q-1/tier-history"):  # fmt: skip
        for headers in ({"authorization": ""}, {"authorization": "Bearer nope"}):
            refused = await api.client.get(path, headers=headers)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"] == "Bearer"
            assert refused.json()["type"].endswith("/unauthenticated")
        assert (await api.client.get(path)).status_code in (200, 404), path
    for path in ("/healthz", "/metrics"):
        assert (await api.client.get(path, headers={"authorization": ""})).status_code == 200
    documented = (await api.client.get("/openapi.json")).json()
    assert documented["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert documented["paths"]["/v1/tiers"]["get"]["security"] == [{"HTTPBearer": []}]
