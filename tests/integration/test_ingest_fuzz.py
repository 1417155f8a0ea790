"""Property-based fuzzing of the ingest OpenAPI schema against a real ingest process.

Every default check runs except "schema-valid data is accepted": two rules are not
expressible in a JSON Schema (an event time at most 5 minutes ahead of the clock, and one
(source, id) never carrying two different contents), so a schema-valid event may get a
precise 422. Everything else holds: no 5xx, every response as documented, invalid data
rejected, authentication not ignored.
"""

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from devstack.kafka import run_isolated
from harness.processes import service
from harness.stack import free_port
from services.effectively_once.topics import ensure_topics
from services.ingest.auth import new_key
from services.topology import tierstream_topics

pytestmark = pytest.mark.integration
SECRET, KEY = new_key("fuzz", ["*"])


@pytest.fixture(scope="module")
def ingest_url(kafka_bootstrap: str) -> Iterator[str]:
    port = free_port()
    run_isolated(ensure_topics(kafka_bootstrap, tierstream_topics("fuzz.", 3, 3)))
    env = {
        "TIERSTREAM_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TIERSTREAM_TOPIC_PREFIX": "fuzz.",
        "TIERSTREAM_INGEST_PORT": str(port),
        "TIERSTREAM_INGEST_API_KEYS": json.dumps([KEY.model_dump(mode="json")]),
        "TIERSTREAM_INGEST_PUBLISH_TIMEOUT_SECONDS": "5",
    }
    with service("services.ingest.main", port, env) as ingest:
        yield ingest.url
        assert "Traceback" not in ingest.output()


def test_no_server_errors_and_responses_match_the_schema(ingest_url: str) -> None:
    api = schemathesis.openapi.from_url(f"{ingest_url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]  # type: ignore[union-attr]
    assert {op.path for op in operations} >= {"/v1/events", "/v1/events:batch"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def check(case: Any) -> None:
            case.call_and_validate(
                headers={"Authorization": f"Bearer {SECRET}"},
                excluded_checks=[positive_data_acceptance],
            )

        check()
