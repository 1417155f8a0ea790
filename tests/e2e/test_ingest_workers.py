"""ingest with several worker processes on one port: every request is answered, and /metrics
counts the events of all workers, whichever one a request reached."""

import json
import re
from collections.abc import Iterator

import httpx
import orjson
import pytest

from devstack.kafka import run_isolated
from harness.processes import ServiceProcess, service
from harness.stack import free_port
from services.effectively_once.topics import ensure_topics
from services.ingest.auth import new_key
from services.topology import tierstream_topics
from tests.events import transaction

pytestmark = pytest.mark.e2e
SECRET, KEY = new_key("workers", ["erp/*"])


@pytest.fixture(scope="module")
def ingest(kafka_bootstrap: str) -> Iterator[ServiceProcess]:
    run_isolated(ensure_topics(kafka_bootstrap, tierstream_topics("workers.", 3, 3)))
    port = free_port()
    env = {
        "TIERSTREAM_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TIERSTREAM_TOPIC_PREFIX": "workers.",
        "TIERSTREAM_INGEST_PORT": str(port),
        "TIERSTREAM_INGEST_WORKERS": "2",
        "TIERSTREAM_INGEST_API_KEYS": json.dumps([KEY.model_dump(mode="json")]),
    }
    with service("services.ingest.main", port, env) as running:
        yield running


def test_metrics_sum_every_worker(ingest: ServiceProcess) -> None:
    headers = {"authorization": f"Bearer {SECRET}", "content-type": "application/cloudevents+json"}
    for _ in range(40):  # new connections: the kernel spreads them over the workers
        with httpx.Client(base_url=ingest.url) as client:
            response = client.post(
                "/v1/events", content=orjson.dumps(transaction()), headers=headers
            )
            assert response.status_code == 202
    pids = set(re.findall(r"ingest_started.*pid=(\d+)", ingest.output()))
    assert len(pids) == 2, ingest.output()
    metrics = httpx.get(f"{ingest.url}/metrics").text
    assert 'tierstream_ingest_events_accepted_total{api_key="workers"} 40.0' in metrics


def test_sigterm_stops_all_workers(ingest: ServiceProcess) -> None:
    assert ingest.terminate() == 0
    assert ingest.output().count("ingest_stopped") == 2
