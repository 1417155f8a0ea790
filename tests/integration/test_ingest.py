"""ingest against a real Kafka broker: what is accepted is on the topic, intact; nothing else is."""

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import pytest_asyncio

from tests.events import changed, customer, interaction, transaction
from tests.ingest_app import BATCH, SINGLE, IngestUnderTest, running_ingest
from tests.kafka_reader import read_all

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture
async def ingest(kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[IngestUnderTest]:
    async with running_ingest(kafka_bootstrap, topic_prefix) as under_test:
        yield under_test


async def test_a_posted_event_is_on_the_topic_intact(
    ingest: IngestUnderTest, kafka_bootstrap: str
) -> None:
    event = transaction(customer="C-10023", amount="1299.00", event_id="SO-88123-paid")
    response = await ingest.post(event)
    assert (response.status_code, response.json()) == (202, {"accepted": 1})

    [message] = await read_all(kafka_bootstrap, ingest.topic, expected=1)
    assert message.key == b"C-10023"
    assert message.headers == {
        "ce_specversion": b"1.0",
        "ce_id": b"SO-88123-paid",
        "ce_source": b"erp/sap-prod",
        "ce_type": b"tierstream.transaction",
        "ce_subject": b"C-10023",
        "ce_time": b"2026-11-20T10:00:00+08:00",
        "content-type": b"application/json",
    }
    assert orjson.loads(message.value or b"") == event["data"]


async def test_a_batch_keeps_every_event(ingest: IngestUnderTest, kafka_bootstrap: str) -> None:
    batch = [
        transaction(customer=f"C-{i % 7}", amount=f"{i}.50", source="erp/x") for i in range(1, 301)
    ] + [interaction(source="erp/crm"), customer(source="erp/crm")]
    response = await ingest.post(batch, batch=True)
    assert (response.status_code, response.json()) == (202, {"accepted": len(batch)})

    messages = await read_all(kafka_bootstrap, ingest.topic, expected=len(batch))
    assert sorted(m.headers["ce_id"].decode() for m in messages) == sorted(e["id"] for e in batch)
    for message in messages:  # key = subject, so a customer's events share a partition
        assert message.key == message.headers["ce_subject"]
    partitions = {m.key: m.partition for m in messages}
    assert all(partitions[m.key] == m.partition for m in messages)
    by_id = {m.headers["ce_id"].decode(): orjson.loads(m.value or b"") for m in messages}
    assert all(by_id[e["id"]] == e["data"] for e in batch if e["type"] != "tierstream.customer")


async def test_posting_the_same_event_again_is_accepted_and_harmless(
    ingest: IngestUnderTest, kafka_bootstrap: str
) -> None:
    event = transaction(event_id="SO-1-paid")
    assert (await ingest.post(event)).status_code == 202
    assert (await ingest.post(event)).status_code == 202
    messages = await read_all(kafka_bootstrap, ingest.topic, expected=2)
    # Both copies carry the same (source, id): consumers count it once.
    assert {(m.headers["ce_source"], m.headers["ce_id"]) for m in messages} == {
        (b"erp/sap-prod", b"SO-1-paid")
    }


BAD_INPUTS: list[tuple[str, Any, int, str, str | None]] = [
    ("schema", changed(transaction(), "data.kind", "gift"), 422, "invalid-events", "/data/kind"),
    ("three decimals", transaction(amount="10.001"), 422, "invalid-events", "/data/amount"),
    (
        "float amount",
        changed(transaction(), "data.amount", 10.5),
        422,
        "invalid-events",
        "/data/amount",
    ),
    (
        "unknown type",
        changed(transaction(), "type", "tierstream.order"),
        422,
        "invalid-events",
        "/type",
    ),
    ("naive timestamp", transaction(time="2026-11-20T10:00:00"), 422, "invalid-events", "/time"),
    (
        "wrong currency",
        changed(transaction(), "data.currency", "USD"),
        422,
        "invalid-events",
        "/data/currency",
    ),
]


@pytest.mark.parametrize(
    ("case", "event", "status", "slug", "pointer"), BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS]
)
async def test_bad_events_get_a_precise_error_and_nothing_is_published(
    ingest: IngestUnderTest,
    kafka_bootstrap: str,
    case: str,
    event: Any,
    status: int,
    slug: str,
    pointer: str | None,
) -> None:
    response = await ingest.post(event)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith(slug)
    assert [error["pointer"] for error in problem["errors"]] == [pointer]

    batch_response = await ingest.post([transaction(), event], batch=True)
    assert batch_response.status_code == status
    assert [(e["index"], e["pointer"]) for e in batch_response.json()["errors"]] == [
        (1, f"/1{pointer}")
    ]
    await _nothing_on(ingest, kafka_bootstrap)


async def test_missing_and_bad_keys_get_401(ingest: IngestUnderTest, kafka_bootstrap: str) -> None:
    missing = await ingest.client.post("/v1/events", json=transaction(), headers=SINGLE)
    wrong = await ingest.post(transaction(), key="tsk_not-a-key")
    in_query = await ingest.client.post(
        f"/v1/events?api_key={ingest.erp_key}", json=transaction(), headers=SINGLE
    )
    for response in (missing, wrong, in_query):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
    await _nothing_on(ingest, kafka_bootstrap)


async def test_a_source_the_key_may_not_write_gets_403(
    ingest: IngestUnderTest, kafka_bootstrap: str
) -> None:
    batch = [transaction(source="shop/web"), transaction(source="erp/sap-prod")]
    response = await ingest.post(batch, batch=True, key=ingest.shop_key)
    assert response.status_code == 403
    assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [(1, "source")]
    await _nothing_on(ingest, kafka_bootstrap)


async def test_oversize_bodies_get_413_before_parsing(
    ingest: IngestUnderTest, kafka_bootstrap: str
) -> None:
    limit = ingest.settings.max_body_bytes
    oversize = b"[" + b" " * limit + b"]"
    response = await ingest.client.post(
        "/v1/events:batch", content=oversize, headers={**BATCH, **ingest.auth()}
    )
    assert response.status_code == 413
    assert str(limit) in response.json()["detail"]

    too_many = [transaction(amount="1.00") for _ in range(ingest.settings.max_batch_events + 1)]
    response = await ingest.post(too_many, batch=True)
    assert response.status_code == 413
    assert "1001 events" in response.json()["detail"]
    await _nothing_on(ingest, kafka_bootstrap)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "text/plain",
        "",
        "application/cloudevents+json; charset=latin-1",
        "application/cloudevents-batch+json",
    ],
)
async def test_other_content_types_get_415(
    ingest: IngestUnderTest, kafka_bootstrap: str, content_type: str
) -> None:
    response = await ingest.client.post(
        "/v1/events",
        content=orjson.dumps(transaction()),
        headers={"content-type": content_type, **ingest.auth()},
    )
    assert response.status_code == 415
    await _nothing_on(ingest, kafka_bootstrap)


async def test_malformed_json_gets_400(ingest: IngestUnderTest, kafka_bootstrap: str) -> None:
    response = await ingest.client.post(
        "/v1/events", content=b'{"specversion": "1.0",', headers={**SINGLE, **ingest.auth()}
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["detail"]
    await _nothing_on(ingest, kafka_bootstrap)


async def test_one_bad_event_rejects_the_whole_batch(
    ingest: IngestUnderTest, kafka_bootstrap: str
) -> None:
    batch = [transaction() for _ in range(50)]
    batch[17] = transaction(amount="-1.00")
    batch[42] = changed(transaction(), "subject", ...)
    response = await ingest.post(batch, batch=True)
    assert response.status_code == 422
    assert [e["index"] for e in response.json()["errors"]] == [17, 42]
    await _nothing_on(ingest, kafka_bootstrap)


async def test_health_readiness_and_metrics(ingest: IngestUnderTest) -> None:
    assert (await ingest.client.get("/healthz")).json() == {"status": "ok"}
    ready = await ingest.client.get("/readyz")
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")
    await ingest.post([transaction(), transaction()], batch=True)
    await ingest.post(transaction(amount="1.001"))
    metrics = (await ingest.client.get("/metrics")).text
    assert 'tierstream_ingest_events_accepted_total{api_key="erp"} 2.0' in metrics
    assert 'tierstream_ingest_events_rejected_total{reason="invalid-events"} 1.0' in metrics
    assert "tierstream_ingest_publish_seconds_count 1.0" in metrics


async def _nothing_on(ingest: IngestUnderTest, bootstrap: str) -> None:
    """Proves the negative with a marker: once the marker is read, nothing came before it."""
    marker = transaction(event_id="marker")
    assert (await ingest.post(marker)).status_code == 202
    messages = await read_all(bootstrap, ingest.topic, expected=1)
    assert [m.headers["ce_id"] for m in messages] == [b"marker"]
