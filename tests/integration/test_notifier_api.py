"""The task API on real PostgreSQL: object-level authorization (another person's task is a
404, a manager acts for their reports), only a note is accepted, and the alerts list."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from harness.scorer_run import CUSTOMER_EVENTS, TIER_CHANGES, produce, records
from services import migrations
from services.notifier.api import Backend, create_app
from services.notifier.main import Notifier
from tests import events
from tests.notifier_run import (
    caught_up,
    change,
    change_record,
    directory_yaml,
    eventually,
    rows,
    running_notifier,
    settings,
    token,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(loop_scope="session")
async def tasks(
    kafka_bootstrap: str, database_url: str, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[tuple[Notifier, dict[str, str]]]:
    """One open retention task for `owner` (C-own) and one for `other` (C-oth)."""
    await asyncio.to_thread(migrations.upgrade, database_url)
    directory = tmp_path / "directory.yaml"
    hook = [{"kind": "webhook", "url": "http://127.0.0.1:9/unreachable"}]
    directory.write_text(directory_yaml({"manager": hook}), encoding="utf-8")
    config = settings(kafka_bootstrap, database_url, topic_prefix, directory, delivery_attempts=1)
    profiles = []
    for customer, owner in (("C-own", "owner"), ("C-oth", "other")):
        event = events.customer(customer)
        event["data"] = {"name": customer, "owner_id": owner}
        profiles.append(event)
    await produce(kafka_bootstrap, topic_prefix + CUSTOMER_EVENTS, records(profiles))
    async with running_notifier(config) as notifier:
        await caught_up(notifier)
        drops = [change(c, "important_value", "important_retain") for c in ("C-own", "C-oth")]
        await produce(kafka_bootstrap, topic_prefix + TIER_CHANGES, list(map(change_record, drops)))
        await caught_up(notifier)
        found = await rows(notifier, "SELECT id, customer_id FROM tasks")
        yield notifier, {r["customer_id"]: str(r["id"]) for r in found}


def _client(notifier: Notifier, person: str | None) -> httpx.AsyncClient:
    app = create_app(registry=CollectorRegistry(), checks={})
    app.state.backend = Backend(notifier.sessions, notifier.directory, notifier.now)
    headers = {} if person is None else {"Authorization": f"Bearer {token(person)}"}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://notifier", headers=headers
    )


async def _get(notifier: Notifier, person: str, path: str) -> httpx.Response:
    async with _client(notifier, person) as client:
        return await client.get(path)


async def _post(notifier: Notifier, person: str, path: str, body: Any = None) -> httpx.Response:
    async with _client(notifier, person) as client:
        return await client.post(path, json=body)


async def test_a_person_sees_and_acts_on_their_own_tasks_only(
    tasks: tuple[Notifier, dict[str, str]],
) -> None:
    notifier, ids = tasks
    own, other = ids["C-own"], ids["C-oth"]
    listed = (await _get(notifier, "owner", "/v1/tasks")).json()["tasks"]
    assert [t["id"] for t in listed] == [own]
    assert (await _get(notifier, "owner", f"/v1/tasks/{own}")).status_code == 200
    for response in (
        await _get(notifier, "owner", f"/v1/tasks/{other}"),
        await _post(notifier, "owner", f"/v1/tasks/{other}/ack"),
        await _post(notifier, "owner", f"/v1/tasks/{other}/complete"),
        await _get(notifier, "manager", f"/v1/tasks/{other}"),  # not in manager's chain
    ):
        assert response.status_code == 404, response.text
        assert response.json()["type"].endswith("/unknown-task")
    assert (await _get(notifier, "owner", "/v1/tasks?assignee=other")).json()["tasks"] == []
    still = await rows(notifier, "SELECT status FROM tasks WHERE id = CAST(:id AS uuid)", id=other)
    assert still == [{"status": "open"}]


async def test_managers_up_the_chain_act_for_their_reports(
    tasks: tuple[Notifier, dict[str, str]],
) -> None:
    notifier, ids = tasks
    own = ids["C-own"]
    assert [t["id"] for t in (await _get(notifier, "director", "/v1/tasks")).json()["tasks"]] == [
        own
    ]
    acked = await _post(notifier, "manager", f"/v1/tasks/{own}/ack", {"note": "calling them"})
    assert acked.status_code == 200
    body = acked.json()
    assert (body["status"], body["acknowledged_by"], body["note"]) == (
        "acknowledged", "manager", "calling them",
    )  # fmt: skip
    assert body["next_escalation_at"] is None
    assert (await _post(notifier, "manager", f"/v1/tasks/{own}/ack")).status_code == 200  # repeat
    done = await _post(notifier, "owner", f"/v1/tasks/{own}/complete")
    assert (done.status_code, done.json()["status"]) == (200, "completed")
    again = await _post(notifier, "owner", f"/v1/tasks/{own}/ack")
    assert again.status_code == 409
    assert "completed" in again.json()["detail"]
    everything = (await _get(notifier, "admin", "/v1/tasks")).json()["tasks"]
    assert len(everything) == 2


async def test_only_a_note_is_accepted_and_a_token_is_required(
    tasks: tuple[Notifier, dict[str, str]],
) -> None:
    notifier, ids = tasks
    own = ids["C-own"]
    for body in ({"status": "completed"}, {"assignee": "owner"}, {"note": "x", "priority": "low"}):
        response = await _post(notifier, "owner", f"/v1/tasks/{own}/ack", body)
        assert response.status_code == 422, body
    assert (await _get(notifier, "owner", f"/v1/tasks/{own}")).json()["status"] == "open"
    async with _client(notifier, None) as anonymous:
        response = await anonymous.get("/v1/tasks")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    async with _client(notifier, "nobody-with-this-token") as stranger:
        assert (await stranger.get("/v1/tasks")).status_code == 401


async def test_tasks_filter_and_page_and_alerts_are_listed(
    tasks: tuple[Notifier, dict[str, str]],
) -> None:
    notifier, ids = tasks
    first = (await _get(notifier, "admin", "/v1/tasks?limit=1")).json()
    assert len(first["tasks"]) == 1
    second = await _get(notifier, "admin", f"/v1/tasks?limit=1&cursor={first['next_cursor']}")
    rest = second.json()
    assert rest["next_cursor"] is None
    assert {first["tasks"][0]["id"], rest["tasks"][0]["id"]} == set(ids.values())
    by_customer = (await _get(notifier, "admin", "/v1/tasks?customer_id=C-oth")).json()["tasks"]
    assert [t["id"] for t in by_customer] == [ids["C-oth"]]
    assert (await _get(notifier, "admin", "/v1/tasks?status=bogus")).status_code == 422
    assert (await _get(notifier, "admin", "/v1/tasks?cursor=nonsense")).status_code == 400
    await eventually(lambda: _failed(notifier))  # port 9 refuses: one attempt, then failed
    (alert,) = (await _get(notifier, "owner", "/v1/alerts")).json()["alerts"]
    assert (alert["recipient"], alert["purpose"], alert["status"]) == (
        "manager", "manager_alert", "failed",
    )  # fmt: skip
    assert alert["task_id"] == ids["C-own"]
    assert "127.0.0.1:9" not in alert["last_error"]
    assert alert["target"].startswith("webhook:")
    assert (await _get(notifier, "other", "/v1/alerts?status=failed")).json()["alerts"] == []
    assert len((await _get(notifier, "manager", "/v1/alerts")).json()["alerts"]) == 1


async def _failed(notifier: Notifier) -> bool:
    found = await rows(notifier, "SELECT status FROM deliveries")
    return len(found) == 1 and found[0]["status"] == "failed"
