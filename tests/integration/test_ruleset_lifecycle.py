"""The ruleset lifecycle over HTTP (SPEC §11) on running scorers (real broker and database,
through the ASGI app main builds): store, list, diff and refusals; preview equals
activation; rollback is a new activation with new change ids; a scheduled activation
happens once across two instances and after a restart; the audit log has every action;
only admin tokens may do any of it."""

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from harness.scorer_run import (
    CUSTOMER_EVENTS,
    RULESETS,
    TIER_CHANGES,
    Clock,
    applied,
    caught_up,
    produce,
    records,
    running_scorer,
    settings,
)
from schemas.v1.tiers import TierChangedV1
from services import migrations
from services.db.engine import create_engine, sessions
from services.scorer.api import create_app
from services.scorer.core.config import Scoring
from services.scorer.core.state import Windows
from services.scorer.lifecycle import Lifecycle
from services.scorer.main import Scorer
from services.scorer.settings import ScorerSettings
from services.web.tokens import new_token
from tests import events
from tests.kafka_reader import read_all

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ADMIN, ADMIN_TOKEN = new_token("ops-admin", "admin")
SERVICE, SERVICE_TOKEN = new_token("crm-sync", "service")
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
YAML = {"Content-Type": "application/yaml"}
V1 = (RULESETS / "default.yaml").read_text(encoding="utf-8")
V2 = V1.replace("version: rfm-segments-1", "version: rfm-segments-2").replace(
    'monetary: "10000.00"', 'monetary: "5000.00"'
)
EXAMPLE = (RULESETS / "abc-value.yaml").read_text(encoding="utf-8")
V3 = V1.replace("version: rfm-segments-1", "version: rfm-segments-3").replace(
    "frequency: 3", "frequency: 2"
)


def config(
    kafka_bootstrap: str,
    database_url: str,
    topic_prefix: str,
    core: str = "compiled",
    lanes: int = 4,
) -> ScorerSettings:
    return settings(
        kafka_bootstrap,
        database_url,
        topic_prefix,
        tokens=(ADMIN_TOKEN, SERVICE_TOKEN),
        schedule_check_seconds=0.1,
        transaction_budget=9,  # a re-tier takes several transactions
        core=core,
        maintenance_lanes=lanes,
    )


@asynccontextmanager
async def client(scorer: Scorer) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(registry=scorer.metrics_registry, tokens=scorer.settings.tokens)
    app.state.queries = scorer.queries
    app.state.consumer = scorer.consumer
    app.state.lifecycle = scorer.lifecycle
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://scorer", headers=AS_ADMIN
    ) as found:
        yield found


async def put(api: httpx.AsyncClient, version: str, text: str, **headers: str) -> httpx.Response:
    return await api.put(f"/v1/rulesets/{version}", content=text, headers={**YAML, **headers})


async def customers(kafka_bootstrap: str, topic_prefix: str, count: int = 45) -> None:
    amounts = ["3000.00", "6000.00", "7500.00", "12000.00", "800.00"]
    posted = [
        events.transaction(
            customer=f"L-{n}",
            amount=amounts[n % 5],
            time=(NOW - timedelta(days=n % 120)).isoformat(),
        )
        for n in range(count)
    ]
    await produce(kafka_bootstrap, topic_prefix + CUSTOMER_EVENTS, records(posted))


def moves(changes: list[TierChangedV1], version: str) -> Counter[tuple[str, str]]:
    return Counter(
        (c.from_tier.id if c.from_tier else "none", c.to_tier.id)
        for c in changes
        if c.cause.kind == "clock"
        and c.cause.reason == "ruleset_activated"
        and c.ruleset_version == version
    )


async def test_store_list_show_diff_and_every_refusal(
    kafka_bootstrap: str, database_url: str, topic_prefix: str
) -> None:
    await asyncio.to_thread(migrations.upgrade, database_url)
    async with (
        running_scorer(config(kafka_bootstrap, database_url, topic_prefix), Clock(NOW)) as scorer,
        client(scorer) as api,
    ):
        # who may: nobody without a token, a service token may not, an admin token may
        anonymous = await api.get("/v1/rulesets", headers={"Authorization": ""})
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert anonymous.headers["content-type"] == "application/problem+json"
        wrong = await api.get("/v1/rulesets", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        service = await put(api, "rfm-segments-2", V2, Authorization=f"Bearer {SERVICE}")
        assert service.status_code == 403
        assert "crm-sync" in service.json()["detail"]

        stored = await put(api, "rfm-segments-2", V2)
        assert stored.status_code == 201, stored.text
        assert stored.json()["state"] == "stored"
        assert stored.json()["stored_by"] == "ops-admin"
        again = await put(api, "rfm-segments-2", V2)
        assert again.status_code == 200  # the same text again: nothing changes
        other = await put(api, "rfm-segments-2", V2.replace("5000.00", "6000.00"))
        assert other.status_code == 409
        assert other.json()["type"].endswith("/version-conflict")
        mismatch = await put(api, "rfm-segments-9", V2)
        assert mismatch.status_code == 422
        assert "rfm-segments-2" in mismatch.json()["detail"]
        broken = V3.replace(
            'condition: segment == "general_value"', "condition: frequency >"
        ).replace('condition: segment == "general_develop"', "condition: loyalty > 1")
        invalid = await put(api, "rfm-segments-3", broken)
        assert invalid.status_code == 422
        errors = invalid.json()["errors"]
        assert {e["pointer"] for e in errors} == {"/tiers/general_value", "/tiers/general_develop"}
        assert any("loyalty" in e["detail"] for e in errors)
        text = await api.put(
            "/v1/rulesets/rfm-segments-3", content=V3, headers={"Content-Type": "application/json"}
        )
        assert text.status_code == 415
        assert (await api.get("/v1/rulesets/rfm-segments-3")).status_code == 404  # none stored

        listing = {r["version"]: r for r in (await api.get("/v1/rulesets")).json()}
        assert listing["rfm-segments-1"]["state"] == "active"  # the configured one
        assert listing["rfm-segments-1"]["stored_by"] == "configuration"
        assert listing["rfm-segments-2"]["state"] == "stored"
        shown = (await api.get("/v1/rulesets/rfm-segments-2")).json()
        assert shown["body"] == V2
        assert [a["action"] for a in shown["audit"]] == ["stored"]
        assert shown["progress"] is None
        active = (await api.get("/v1/rulesets/rfm-segments-1")).json()
        assert active["progress"]["version"] == "rfm-segments-1"

        diff = (await api.get("/v1/rulesets/rfm-segments-1/diff/rfm-segments-2")).json()
        assert diff["from"] == "rfm-segments-1"
        assert diff["to"] == "rfm-segments-2"
        assert diff["thresholds"] == {"monetary": {"from": "10000.00", "to": "5000.00"}}
        assert diff["tiers"] == {"added": [], "removed": [], "changed": []}
        assert not diff["same_rules"]
        assert '-  monetary: "10000.00"' in diff["text"]
        missing = await api.get("/v1/rulesets/rfm-segments-1/diff/nope")
        assert missing.status_code == 404
        assert "nope" in missing.json()["detail"]
        nothing = await api.post("/v1/rulesets/rollback", json={})
        assert nothing.status_code == 409  # only one version was ever active

        audit = (await api.get("/v1/rulesets/audit")).json()
        assert [(a["actor"], a["action"], a["version"]) for a in audit] == [
            ("ops-admin", "stored", "rfm-segments-2"),
            ("configuration", "activated", "rfm-segments-1"),  # the first start's
        ]


@pytest.mark.parametrize(
    ("version", "text"), [("rfm-segments-2", V2), ("abc-value-1", EXAMPLE)], ids=["rfm", "declared"]
)
async def test_preview_equals_activation_and_rollback_moves_back_with_new_ids(
    kafka_bootstrap: str, database_url: str, topic_prefix: str, version: str, text: str
) -> None:
    """Over HTTP, for a change of thresholds and for SPEC §10's example (declared features,
    scores, stability): the preview's moves and samples are what activation emits."""
    await asyncio.to_thread(migrations.upgrade, database_url)
    await customers(kafka_bootstrap, topic_prefix)
    async with (
        running_scorer(config(kafka_bootstrap, database_url, topic_prefix), Clock(NOW)) as scorer,
        client(scorer) as api,
    ):
        await caught_up(scorer)
        assert (await put(api, version, text)).status_code == 201
        preview = (await api.post(f"/v1/rulesets/{version}/preview")).json()
        assert preview["customers"] == 45
        assert preview["changes"] > 0
        activated = await api.post(f"/v1/rulesets/{version}/activate", json={"note": "Q1 review"})
        assert activated.status_code == 200, activated.text
        assert activated.json()["cause"] == "activate"
        await applied(scorer, version)
        await caught_up(scorer)
        status = (await api.get("/v1/status")).json()
        assert status["retier"]["complete"]
        assert status["retier"]["done"] == status["retier"]["customers"] == 45
        back = await api.post("/v1/rulesets/rollback", json={"note": "too generous"})
        assert back.status_code == 200, back.text
        assert back.json()["version"] == "rfm-segments-1"
        assert back.json()["cause"] == "rollback"
        await applied(scorer, "rfm-segments-1")
        await caught_up(scorer)
        audit = (await api.get("/v1/rulesets/audit")).json()

    found = [
        TierChangedV1.model_validate_json(m.value or b"")
        for m in await read_all(
            kafka_bootstrap, topic_prefix + TIER_CHANGES, 45 + 2 * preview["changes"]
        )
    ]
    forward = moves(found, version)
    assert forward == Counter(
        {(m["from_tier"], m["to_tier"]): m["customers"] for m in preview["moves"]}
    )
    for move in preview["moves"]:  # the samples are customers that made that move
        assert 0 < len(move["samples"]) <= min(3, move["customers"])
        moved = {
            c.customer_id
            for c in found
            if c.ruleset_version == version
            and c.from_tier is not None
            and (c.from_tier.id, c.to_tier.id) == (move["from_tier"], move["to_tier"])
        }
        assert set(move["samples"]) <= moved
    backward = moves(found, "rfm-segments-1")
    assert backward == Counter({(b, a): n for (a, b), n in forward.items()})
    ids = [c.change_id for c in found]
    assert len(set(ids)) == len(ids)  # every move its own id, the rollback's too
    assert [(a["action"], a["version"], a["note"]) for a in reversed(audit)] == [
        ("activated", "rfm-segments-1", "the configured ruleset file (none was ever activated)"),
        ("stored", version, ""),
        ("previewed", version, ""),
        ("activated", version, "Q1 review"),
        ("rolled_back", "rfm-segments-1", "too generous"),
    ]
    assert audit[0]["detail"]["rolled_back"] == version
    assert {a["actor"] for a in audit[:-1]} == {"ops-admin"}


async def wait_for(check: Callable[[], Any], what: str, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.1)


async def test_a_scheduled_activation_happens_once_across_instances_and_after_a_restart(
    kafka_bootstrap: str, database_url: str, topic_prefix: str
) -> None:
    """Instances look for due schedules every 0.1 s: each schedule is carried out once.
    With two running, one is carried out when the clock passes it; with the first stopped,
    the second carries out the next; with none running when one falls due, the next
    instance to start carries it out; a cancelled one never is."""
    await asyncio.to_thread(migrations.upgrade, database_url)
    await customers(kafka_bootstrap, topic_prefix, 12)
    clock = Clock(NOW)
    conf = config(kafka_bootstrap, database_url, topic_prefix)

    def at(hours: int, note: str = "") -> dict[str, str]:
        return {"at": (NOW + timedelta(hours=hours)).isoformat(), "note": note}

    async with AsyncExitStack() as second_running:
        async with AsyncExitStack() as first_running:
            first = await first_running.enter_async_context(running_scorer(conf, clock))
            second = await second_running.enter_async_context(running_scorer(conf, clock))
            api = await first_running.enter_async_context(client(first))
            await caught_up(first)
            for version, text in (("rfm-segments-2", V2), ("rfm-segments-3", V3)):
                assert (await put(api, version, text)).status_code == 201
            scheduled = await api.post("/v1/rulesets/rfm-segments-2/activate", json=at(1))
            assert scheduled.status_code == 202, scheduled.text
            assert scheduled.json()["state"] == "pending"
            twice = await api.post("/v1/rulesets/rfm-segments-2/activate", json=at(1))
            assert twice.status_code == 409
            later = await api.post("/v1/rulesets/rfm-segments-3/activate", json=at(3))
            assert later.status_code == 202
            listing = {r["version"]: r["state"] for r in (await api.get("/v1/rulesets")).json()}
            assert listing["rfm-segments-2"] == listing["rfm-segments-3"] == "scheduled"
            await first.refresh_gauges()
            pending = "tierstream_scorer_ruleset_schedules_pending"
            assert first.metrics_registry.get_sample_value(pending) == 2

            await asyncio.sleep(0.5)  # both instances looked: nothing is due yet
            assert (await api.get("/v1/rulesets/rfm-segments-2")).json()["state"] == "scheduled"
            clock.advance(3600)
            await wait_for(lambda: _state(api, "rfm-segments-2", "active"), "not carried out")
            await applied(first, "rfm-segments-2")
            await asyncio.sleep(0.5)  # both looked again, and again

        # the first instance stopped: the second carries out the next schedule
        api = await second_running.enter_async_context(client(second))
        cancelled = await api.delete("/v1/rulesets/rfm-segments-3/schedule")
        assert cancelled.status_code == 200
        assert (await api.delete("/v1/rulesets/rfm-segments-3/schedule")).status_code == 404
        again = await api.post(
            "/v1/rulesets/rfm-segments-3/activate", json=at(2, "after the review")
        )
        assert again.status_code == 202
        clock.advance(3600)
        await wait_for(lambda: _state(api, "rfm-segments-3", "active"), "not carried out")
        await applied(second, "rfm-segments-3")
        back = await api.post("/v1/rulesets/rfm-segments-1/activate", json=at(4, "back"))
        assert back.status_code == 202

    # nobody runs when it falls due; the next instance to start carries it out
    clock.advance(2 * 3600)
    async with running_scorer(conf, clock) as third, client(third) as api:
        await wait_for(
            lambda: _state(api, "rfm-segments-1", "active"), "not carried out after a restart"
        )
        await applied(third, "rfm-segments-1")
        schedules = (await api.get("/v1/rulesets/schedules", params={"all": "true"})).json()
        audit = (await api.get("/v1/rulesets/audit")).json()
        listing = {r["version"]: r for r in (await api.get("/v1/rulesets")).json()}
        await third.refresh_gauges()
        info = {"version": "rfm-segments-1", "activation": str(schedules[-1]["activation"])}
        assert third.metrics_registry.get_sample_value("tierstream_scorer_ruleset_info", info) == 1
        assert third.metrics_registry.get_sample_value(pending) == 0
    assert [(s["version"], s["state"]) for s in schedules] == [
        ("rfm-segments-2", "done"),
        ("rfm-segments-3", "done"),
        ("rfm-segments-3", "cancelled"),
        ("rfm-segments-1", "done"),
    ]
    activations = [a for a in audit if a["action"] == "activated" and a["actor"] != "configuration"]
    assert [(a["version"], a["note"], a["detail"]["cause"]) for a in reversed(activations)] == [
        ("rfm-segments-2", "", "schedule"),
        ("rfm-segments-3", "after the review", "schedule"),
        ("rfm-segments-1", "back", "schedule"),
    ]
    assert {a["actor"] for a in activations} == {"ops-admin"}
    assert {a["action"] for a in audit} == {
        "stored",
        "scheduled",
        "schedule_cancelled",
        "activated",
    }
    assert listing["rfm-segments-1"]["activated_by"] == "ops-admin"
    assert listing["rfm-segments-2"]["state"] == listing["rfm-segments-3"]["state"] == "retired"


async def _state(api: httpx.AsyncClient, version: str, state: str) -> bool:
    answer = await api.get(f"/v1/rulesets/{version}")
    return bool(answer.json()["state"] == state)


@pytest.mark.parametrize("core", ["compiled", "python"])
async def test_a_shadow_counts_what_its_promotion_then_moves(
    kafka_bootstrap: str, database_url: str, topic_prefix: str, core: str
) -> None:
    """A shadow ruleset evaluated beside the active one, with events arriving and a day
    boundary passing during the run: whenever its matrix is current, its cells off the
    diagonal are the from -> to moves that promoting it makes, and it emitted nothing.
    On either path of the per-event work."""
    await asyncio.to_thread(migrations.upgrade, database_url)
    await customers(kafka_bootstrap, topic_prefix)
    clock = Clock(NOW)
    # one maintenance lane: a transaction's budget runs out in one partition's pass while
    # the others wait for theirs (their passes must go on in the next transactions)
    conf = config(kafka_bootstrap, database_url, topic_prefix, core, lanes=1)
    async with (
        running_scorer(conf, clock) as scorer,
        client(scorer) as api,
    ):
        await caught_up(scorer)
        assert (await put(api, "rfm-segments-2", V2)).status_code == 201
        assert (await put(api, "rfm-segments-3", V3)).status_code == 201
        started = await api.post("/v1/rulesets/rfm-segments-2/shadow", json={"note": "try"})
        assert started.status_code == 201, started.text
        assert (await api.post("/v1/rulesets/rfm-segments-3/shadow")).status_code == 409
        assert (await api.post("/v1/rulesets/rfm-segments-1/shadow")).status_code == 409
        assert (await api.get("/v1/rulesets/rfm-segments-3/shadow")).status_code == 404
        listing = {r["version"]: r["state"] for r in (await api.get("/v1/rulesets")).json()}
        assert listing["rfm-segments-2"] == "shadow"

        first = await current_shadow(api, scorer, 45)
        preview = (await api.post("/v1/rulesets/rfm-segments-2/preview")).json()
        assert disagreements(first) == {
            (m["from_tier"], m["to_tier"]): m["customers"] for m in preview["moves"]
        }
        # events for new and known customers, then 40 days pass (recency moves tiers)
        later = [
            events.transaction(customer=f"L-{n}", amount="4000.00", time=NOW.isoformat())
            for n in range(30, 60)
        ]
        await produce(kafka_bootstrap, topic_prefix + CUSTOMER_EVENTS, records(later))
        await caught_up(scorer)
        await current_shadow(api, scorer, 60)
        clock.advance(40 * 86_400)
        shadow = await current_shadow(api, scorer, 60)
        for cell in shadow["matrix"]:
            if cell["active_tier"] != cell["shadow_tier"]:
                assert 0 < len(cell["samples"]) <= min(3, cell["customers"])
        await scorer.refresh_gauges()
        assert scorer.metrics_registry.get_sample_value(
            "tierstream_scorer_shadow_agreement_ratio", {"version": "rfm-segments-2"}
        ) == pytest.approx(shadow["agreement"])
        emitted_before = await scorer.queries.tier_counts()
        await caught_up(scorer)  # every change so far is on the topic
        before = [
            TierChangedV1.model_validate_json(m.value or b"")
            for m in await read_all(kafka_bootstrap, topic_prefix + TIER_CHANGES, 1)
        ]

        promoted = await api.post("/v1/rulesets/rfm-segments-2/activate", json={"note": "go"})
        assert promoted.status_code == 200, promoted.text
        assert (await api.get("/v1/rulesets/rfm-segments-2/shadow")).status_code == 404
        await applied(scorer, "rfm-segments-2")
        await caught_up(scorer)
        audit = (await api.get("/v1/rulesets/audit", params={"version": "rfm-segments-2"})).json()

    expected = disagreements(shadow)
    assert expected  # the shadow disagrees somewhere, or this test proves nothing
    assert sum(emitted_before.values()) == 60
    assert len(before) >= 60  # every customer's first tier, and the 40 days' moves
    assert not [c for c in before if c.ruleset_version == "rfm-segments-2"]  # shadow: none
    found = [
        TierChangedV1.model_validate_json(m.value or b"")
        for m in await read_all(kafka_bootstrap, topic_prefix + TIER_CHANGES, 1)
    ]
    assert moves(found, "rfm-segments-2") == Counter(expected)
    assert not [
        c for c in found if c.ruleset_version == "rfm-segments-2" and c.cause.kind != "clock"
    ]
    assert [a["action"] for a in reversed(audit)] == [
        "stored",
        "shadow_started",
        "previewed",
        "activated",
        "shadow_promoted",
    ]
    assert audit[0]["detail"]["matrix"] == [
        [c["active_tier"], c["shadow_tier"], c["customers"]] for c in shadow["matrix"]
    ]


def disagreements(shadow: dict[str, Any]) -> dict[tuple[str, str], int]:
    return {
        (c["active_tier"], c["shadow_tier"]): c["customers"]
        for c in shadow["matrix"]
        if c["active_tier"] != c["shadow_tier"]
    }


async def current_shadow(api: httpx.AsyncClient, scorer: Scorer, count: int) -> dict[str, Any]:
    """The shadow once every partition's pass is current and it counts `count` customers."""

    last: list[dict[str, Any]] = []

    async def check() -> dict[str, Any] | None:
        found: dict[str, Any] = (await api.get("/v1/rulesets/rfm-segments-2/shadow")).json()
        last[:] = [found]
        return found if found["current"] and found["customers"] == count else None

    await caught_up(scorer)
    try:
        found: dict[str, Any] = await wait_for(check, "the shadow")
    except TimeoutError as error:
        raise TimeoutError(
            f"the shadow never counted {count} customers, current: {last}"
        ) from error
    return found


def lifecycle_on(engine: AsyncEngine, windows: Windows, clock: Clock) -> Lifecycle:
    scoring = Scoring(ZoneInfo("UTC"), windows, "CNY", {})
    return Lifecycle(sessions(engine), scoring=scoring, topic="t", clock="wall", now=clock)


async def test_a_schedule_no_longer_valid_when_due_fails_naming_the_problems(
    database_url: str,
) -> None:
    """SPEC §10's example, scheduled where its 180- and 365-day features are within the
    windows, falls due on an instance whose longest window is 120 days: the schedule ends
    `failed` with an audit entry naming the features, nothing is activated, and the instance
    goes on (a refusal is not a crash)."""
    await asyncio.to_thread(migrations.upgrade, database_url)
    engine = create_engine(database_url, "test")
    clock = Clock(NOW)
    try:
        wide = lifecycle_on(engine, Windows(), clock)
        narrow = lifecycle_on(engine, Windows(120, 90, 30, 365), clock)
        assert await wide.store("abc-value-1", EXAMPLE, "ops-admin")
        await wide.schedule("abc-value-1", NOW + timedelta(minutes=5), "ops-admin", "q1")
        assert await narrow.run_due() == []  # not due yet
        clock.advance(600)
        assert await narrow.run_due() == []  # due, refused
        [schedule] = await wide.schedules(everything=True)
        [failed, *_] = await wide.audit()
        assert await wide.progress() is None  # nothing was ever activated
    finally:
        await engine.dispose()
    assert (schedule.state, schedule.activation) == ("failed", None)
    assert (failed.action, failed.version, failed.note) == ("schedule_failed", "abc-value-1", "q1")
    assert failed.detail["schedule"] == schedule.id
    problems = " ".join(failed.detail["problems"])
    assert "orders_180d" in problems
    assert "120" in problems
