"""The notifier in-process against the real broker and PostgreSQL, a real local HTTP
receiver and a real local SMTP server: tasks, alerts, escalation, cancellation, restarts and
two instances at once."""

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from harness.scorer_run import CUSTOMER_EVENTS, DEAD_LETTERS, TIER_CHANGES, Clock, produce, records
from schemas.v1.deadletter import DeadLetterV1
from services import migrations
from services.db.engine import sessions
from services.effectively_once.loop import Batch
from services.effectively_once.record import Record
from services.notifier.core import directory as directories
from services.notifier.core import policy as policies
from services.notifier.handlers import ChangeHandler, ProfileHandler
from services.notifier.metrics import NotifierMetrics
from services.notifier.settings import DEFAULT_POLICY, NotifierSettings
from tests import events
from tests.kafka_reader import read_all
from tests.notifier_run import (
    NOW,
    caught_up,
    change,
    change_record,
    directory_yaml,
    eventually,
    rows,
    running_notifier,
    settings,
)
from tests.receivers import HttpReceiver, Reply, SmtpReceiver

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]
SHORT_SLA = """
version: short-sla
rules:
  - id: high_value_retention
    when: {out_of_high_value: true}
    task: {title: {zh: 挽留, en: Retain}, priority: urgent, ack_within: 60s}
    open_while: {high_value: false}
    alert: [manager]
"""


Configure = Callable[..., NotifierSettings]


@pytest_asyncio.fixture(loop_scope="session")
async def configure(
    kafka_bootstrap: str, database_url: str, topic_prefix: str, tmp_path: Path
) -> Configure:
    """A migrated database; `configure(channels, **settings)` gives the notifier's settings
    with a directory whose people have those channels."""
    await asyncio.to_thread(migrations.upgrade, database_url)

    def make(
        channels: dict[str, list[dict[str, Any]]] | None = None, **overrides: Any
    ) -> NotifierSettings:
        directory = _directory(tmp_path, channels)
        return settings(kafka_bootstrap, database_url, topic_prefix, directory, **overrides)

    return make


def _directory(tmp_path: Path, channels: dict[str, list[dict[str, Any]]] | None = None) -> Path:
    path = tmp_path / "directory.yaml"
    path.write_text(directory_yaml(channels), encoding="utf-8")
    return path


def _hook(receiver: HttpReceiver, who: str) -> list[dict[str, Any]]:
    return [{"kind": "webhook", "url": receiver.url(f"/{who}"), "secret": f"secret-{who}"}]


def _profile(customer: str, owner: str | None) -> dict[str, Any]:
    event = events.customer(customer)
    event["data"] = {"name": f"{customer} Ltd", "owner_id": owner, "team": None}
    return event


async def _profiles(bootstrap: str, prefix: str, *owners: tuple[str, str]) -> None:
    batch = records([_profile(customer, owner) for customer, owner in owners])
    await produce(bootstrap, prefix + CUSTOMER_EVENTS, batch)


async def test_a_downgrade_makes_one_urgent_task_and_one_manager_alert_even_when_redelivered(
    kafka_bootstrap: str, topic_prefix: str, configure: Configure
) -> None:
    async with HttpReceiver() as hooks, SmtpReceiver() as smtp:
        channels = {
            "manager": [*_hook(hooks, "manager"), {"kind": "email", "address": "m@example.com"}],
            "owner": _hook(hooks, "owner"),
        }
        config = configure(
            channels,
            smtp_host="127.0.0.1", smtp_port=smtp.port,
        )  # fmt: skip
        await _profiles(kafka_bootstrap, topic_prefix, ("C-1", "owner"))
        drop = change("C-1", "important_value", "important_retain")
        async with running_notifier(config) as notifier:
            await caught_up(notifier)
            twice = [change_record(drop), change_record(drop)]
            await produce(kafka_bootstrap, topic_prefix + TIER_CHANGES, twice)
            await caught_up(notifier)
            await eventually(lambda: _settled(notifier))
            tasks = await rows(notifier, "SELECT * FROM tasks")
            sent = await rows(notifier, "SELECT * FROM deliveries ORDER BY recipient, channel")
        (task,) = tasks
        assert (task["rule"], task["priority"], task["assignee"], task["status"]) == (
            "high_value_retention", "urgent", "owner", "open",
        )  # fmt: skip
        assert [(d["recipient"], d["purpose"], d["channel"], d["status"]) for d in sent] == [
            ("manager", "manager_alert", "email", "delivered"),
            ("manager", "manager_alert", "webhook", "delivered"),
            ("owner", "task_created", "webhook", "delivered"),
        ]
        (manager_hook,) = hooks.to("/manager")
        assert manager_hook.headers["x-tierstream-signature"].startswith("v1=")
        body = manager_hook.json()
        assert body["data"]["task_id"] == str(task["id"])
        assert "important_value" in body["text"]
        assert f"/v1/tasks/{task['id']}" in body["link"]
        assert len(hooks.to("/owner")) == 1
        (mail,) = smtp.messages
        assert mail.rcpt_tos == ("m@example.com",)
        assert "挽留" in str(mail.message["Subject"])


async def _settled(notifier: Any) -> bool:
    pending = await rows(notifier, "SELECT id FROM deliveries WHERE status = 'pending'")
    return not pending


async def test_unacknowledged_urgent_task_escalates_level_by_level_and_an_ack_stops_it(
    kafka_bootstrap: str, topic_prefix: str, configure: Configure, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(SHORT_SLA, encoding="utf-8")
    async with HttpReceiver() as hooks:
        channels = {who: _hook(hooks, who) for who in ("manager", "director", "vp")}
        config = configure(
            channels,
            policy_file=policy,
        )  # fmt: skip
        clock = Clock(NOW)
        await _profiles(kafka_bootstrap, topic_prefix, ("C-late", "owner"), ("C-acked", "owner"))
        async with running_notifier(config, clock) as notifier:
            await caught_up(notifier)
            drops = [change(c, "important_value", "general_retain") for c in ("C-late", "C-acked")]
            await produce(
                kafka_bootstrap, topic_prefix + TIER_CHANGES, list(map(change_record, drops))
            )
            await caught_up(notifier)
            acked = (await rows(notifier, "SELECT id FROM tasks WHERE customer_id = 'C-acked'"))[0]
            async with notifier.sessions() as session, session.begin():
                from services.notifier.store.tasks import TaskRepository  # noqa: PLC0415

                assert await TaskRepository(session, None).acknowledge(
                    str(acked["id"]), "owner", "on it", clock()
                )
            clock.advance(59)
            await notifier.escalator.tick()
            assert await _steps(notifier) == []
            clock.advance(2)  # past the SLA
            await eventually(lambda: _steps(notifier))
            assert await _steps(notifier) == [("C-late", 1, "director")]
            clock.advance(30)  # the director has a full period
            await notifier.escalator.tick()
            assert await _steps(notifier) == [("C-late", 1, "director")]
            clock.advance(31)
            await eventually(lambda: _at_level(notifier, 2))
            await eventually(lambda: _settled(notifier))
            clock.advance(3600)  # nobody above the vp: no more steps
            await notifier.escalator.tick()
            steps = await _steps(notifier)
        assert steps == [("C-late", 1, "director"), ("C-late", 2, "vp")]
        assert len(hooks.to("/director")) == 1
        assert len(hooks.to("/vp")) == 1
        assert "第2级" in hooks.to("/vp")[0].json()["title"]  # the vp reads zh


async def _steps(notifier: Any) -> list[tuple[str, int, str]]:
    found = await rows(
        notifier,
        "SELECT t.customer_id, e.level, e.escalated_to FROM task_escalations e "
        "JOIN tasks t ON t.id = e.task_id ORDER BY t.customer_id, e.level",
    )
    return [(r["customer_id"], r["level"], r["escalated_to"]) for r in found]


async def _at_level(notifier: Any, level: int) -> bool:
    return any(step[1] >= level for step in await _steps(notifier))


async def test_a_pending_escalation_survives_a_restart_and_happens_once(
    kafka_bootstrap: str, topic_prefix: str, configure: Configure, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(SHORT_SLA, encoding="utf-8")
    async with HttpReceiver() as hooks:
        channels = {"director": _hook(hooks, "director")}
        config = configure(
            channels,
            policy_file=policy,
        )  # fmt: skip
        clock = Clock(NOW)
        await _profiles(kafka_bootstrap, topic_prefix, ("C-1", "owner"))
        drop = change("C-1", "important_develop", "important_retain")
        await produce(kafka_bootstrap, topic_prefix + TIER_CHANGES, [change_record(drop)])
        async with running_notifier(config, clock) as notifier:
            await caught_up(notifier)
            assert len(await rows(notifier, "SELECT id FROM tasks")) == 1
        clock.advance(120)  # the SLA passes while no notifier runs
        async with running_notifier(config, clock) as first, running_notifier(config, clock):
            await eventually(lambda: _steps(first))
            await eventually(lambda: _settled(first))
            await first.escalator.tick()
            steps = await _steps(first)
        assert steps == [("C-1", 1, "director")]
        assert len(hooks.to("/director")) == 1


async def test_two_instances_make_no_task_or_escalation_twice(
    kafka_bootstrap: str, topic_prefix: str, configure: Configure, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(SHORT_SLA, encoding="utf-8")
    config = configure(policy_file=policy)
    clock = Clock(NOW)
    customers = [f"C-{n}" for n in range(60)]
    await _profiles(kafka_bootstrap, topic_prefix, *((c, "owner") for c in customers))
    drops = [change(c, "important_value", "general_value") for c in customers]
    async with running_notifier(config, clock) as one, running_notifier(config, clock) as two:
        # every change twice, half before the second instance joined the group's balance
        await produce(kafka_bootstrap, topic_prefix + TIER_CHANGES, list(map(change_record, drops)))
        await produce(kafka_bootstrap, topic_prefix + TIER_CHANGES, list(map(change_record, drops)))
        await caught_up(one)
        await caught_up(two)
        clock.advance(61)
        await eventually(lambda: _escalated_all(one, len(customers)))
        await asyncio.gather(one.escalator.tick(), two.escalator.tick())
        tasks = await rows(one, "SELECT customer_id FROM tasks")
        steps = await _steps(one)
    assert sorted(t["customer_id"] for t in tasks) == sorted(customers)
    assert sorted(s[0] for s in steps) == sorted(customers)
    assert {s[1:] for s in steps} == {(1, "director")}


async def _escalated_all(notifier: Any, count: int) -> bool:
    return len(await _steps(notifier)) >= count


async def test_a_later_upgrade_cancels_the_open_retention_task_with_its_reason(
    kafka_bootstrap: str, topic_prefix: str, configure: Configure
) -> None:
    config = configure()
    await _profiles(kafka_bootstrap, topic_prefix, ("C-1", "owner"))
    down = change("C-1", "important_value", "important_retain", change_id="down-1")
    up = change("C-1", "important_retain", "important_value", change_id="up-1")
    async with running_notifier(config) as notifier:
        await caught_up(notifier)
        await produce(kafka_bootstrap, topic_prefix + TIER_CHANGES, [change_record(down)])
        await caught_up(notifier)
        await produce(kafka_bootstrap, topic_prefix + TIER_CHANGES, [change_record(up)])
        await caught_up(notifier)
        tasks = await rows(
            notifier, "SELECT rule, status, cancel_reason, next_escalation_at FROM tasks "
            "ORDER BY created_at, rule",
        )  # fmt: skip
    retention = next(t for t in tasks if t["rule"] == "high_value_retention")
    assert retention["status"] == "cancelled"
    assert retention["next_escalation_at"] is None
    assert "important_retain to important_value" in retention["cancel_reason"]
    assert "up-1" in retention["cancel_reason"]
    welcome = next(t for t in tasks if t["rule"] == "high_value_welcome")
    assert welcome["status"] == "open"


async def test_no_owner_goes_to_the_team_queue_and_a_later_owner_takes_the_task(
    kafka_bootstrap: str, topic_prefix: str, configure: Configure
) -> None:
    config = configure()
    drop = change("C-new", "important_value", "important_retain")
    async with running_notifier(config) as notifier:
        await produce(kafka_bootstrap, topic_prefix + TIER_CHANGES, [change_record(drop)])
        await caught_up(notifier)
        before = await rows(notifier, "SELECT assignee FROM tasks")
        await _profiles(kafka_bootstrap, topic_prefix, ("C-new", "other"))
        await caught_up(notifier)
        after = await rows(notifier, "SELECT assignee FROM tasks")
    assert before == [{"assignee": "team:queue"}]
    assert after == [{"assignee": "other"}]


async def test_a_bad_change_record_goes_to_the_dead_letter_topic_and_the_rest_goes_on(
    kafka_bootstrap: str, topic_prefix: str, configure: Configure
) -> None:
    config = configure()
    good = change("C-1", "important_value", "important_retain")
    poison = Record(b"C-1", b'{"change_id": 42}', [("ce_type", b"tierstream.tier.changed")])
    async with running_notifier(config) as notifier:
        await produce(kafka_bootstrap, topic_prefix + TIER_CHANGES, [poison, change_record(good)])
        await caught_up(notifier)
        tasks = await rows(notifier, "SELECT change_id FROM tasks")
        letters = await read_all(kafka_bootstrap, topic_prefix + DEAD_LETTERS, 1)
        metrics = generate_latest(notifier.registry).decode()
    assert 'tierstream_dead_letters_total{reason="invalid_event",service="notifier"} 1.0' in (
        metrics
    )
    assert tasks == [{"change_id": good.change_id}]
    (letter,) = letters
    why = DeadLetterV1.from_headers(list(letter.headers.items()))
    assert (why.reason, why.service) == ("invalid_event", "notifier")
    assert letter.value == b'{"change_id": 42}'


async def test_a_failing_webhook_is_retried_with_backoff_and_ends_failed(
    kafka_bootstrap: str, topic_prefix: str, configure: Configure
) -> None:
    async with HttpReceiver() as hooks:
        hooks.program("/manager", Reply(500, b"boom"))
        hooks.program("/robot", Reply.json({"errcode": 310000, "errmsg": "sign not match"}))
        channels = {
            "manager": [
                *_hook(hooks, "manager"),
                {"kind": "dingtalk", "url": hooks.url("/robot?access_token=t"), "secret": "SECx"},
            ]
        }
        config = configure(
            channels,
            delivery_attempts=4, delivery_backoff_seconds=0.2, delivery_backoff_cap_seconds=5,
        )  # fmt: skip
        await _profiles(kafka_bootstrap, topic_prefix, ("C-1", "owner"))
        drop = change("C-1", "important_value", "important_retain")
        async with running_notifier(config) as notifier:
            await caught_up(notifier)
            await produce(kafka_bootstrap, topic_prefix + TIER_CHANGES, [change_record(drop)])
            await caught_up(notifier)
            await eventually(lambda: _settled(notifier), 60)
            failed = await rows(
                notifier,
                "SELECT d.channel, d.status, d.attempts, d.last_error, "
                "array_agg(a.started_at ORDER BY a.attempt) AS started "
                "FROM deliveries d JOIN delivery_attempts a ON a.delivery_id = d.id "
                "WHERE d.recipient = 'manager' GROUP BY d.id ORDER BY d.channel",
            )
    dingtalk, webhook = failed
    assert (dingtalk["status"], dingtalk["attempts"]) == ("failed", 1)  # a sign error: final
    assert "310000" in dingtalk["last_error"]
    assert (webhook["status"], webhook["attempts"]) == ("failed", 4)
    assert "500" in webhook["last_error"]
    assert len(hooks.to("/manager")) == 4
    started = webhook["started"]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(started)]
    assert gaps[0] >= 0.1  # base 0.2 s, equal jitter: at least half of it
    assert gaps[2] >= 0.4  # the third wait is 0.8 s before jitter: at least half


async def test_a_robot_gets_at_most_its_rate_per_minute_and_the_rest_waits(
    kafka_bootstrap: str, topic_prefix: str, configure: Configure
) -> None:
    """DingTalk: 20 messages a minute per robot; the 21st waits for the next minute."""
    async with HttpReceiver() as hooks:
        hooks.program("/robot", Reply.json({"errcode": 0, "errmsg": "ok"}))
        robot = {"kind": "dingtalk", "url": hooks.url("/robot?access_token=t"), "secret": "SECx"}
        config = configure({"manager": [robot]})
        clock = Clock(NOW)
        customers = [f"C-{n}" for n in range(25)]
        await _profiles(kafka_bootstrap, topic_prefix, *((c, "owner") for c in customers))
        drops = [change(c, "important_value", "important_retain") for c in customers]
        async with running_notifier(config, clock) as notifier:
            await caught_up(notifier)
            await produce(
                kafka_bootstrap, topic_prefix + TIER_CHANGES, list(map(change_record, drops))
            )
            await caught_up(notifier)
            await eventually(lambda: _delivered(notifier, 20))
            await notifier.delivery.tick()
            in_the_minute = len(hooks.to("/robot"))
            clock.advance(61)
            await eventually(lambda: _delivered(notifier, 25))
            await notifier.refresh_gauges()
            metrics = generate_latest(notifier.registry).decode()
        assert in_the_minute == 20
        assert len(hooks.to("/robot")) == 25
        assert 'tierstream_tasks{priority="urgent",status="open"} 25.0' in metrics
        assert 'tierstream_alert_deliveries_total{channel="dingtalk",outcome="delivered"} 25.0' in (
            metrics
        )
        assert "tierstream_oldest_unacknowledged_urgent_task_seconds 61.0" in metrics


async def _delivered(notifier: Any, count: int) -> bool:
    done = await rows(notifier, "SELECT id FROM deliveries WHERE status = 'delivered'")
    return len(done) >= count


async def test_changes_seen_are_forgotten_after_the_retention(
    kafka_bootstrap: str, topic_prefix: str, configure: Configure
) -> None:
    config = configure(dedupe_retention_days=30)
    async with running_notifier(config) as notifier:
        await rows(
            notifier,
            "INSERT INTO notifier_changes (change_id, customer_id, seen_at) VALUES "
            "('old', 'C', now() - interval '31 days'), ('recent', 'C', now() - interval '29 days')"
            " RETURNING change_id",
        )
        await notifier.escalator.tick()
        kept = await rows(notifier, "SELECT change_id FROM notifier_changes")
    assert kept == [{"change_id": "recent"}]


async def test_an_upgrade_in_the_same_batch_cancels_the_task_its_downgrade_made(
    kafka_bootstrap: str, topic_prefix: str, configure: Configure
) -> None:
    config = configure()
    down = change("C-1", "important_value", "important_retain", change_id="down-1")
    up = change("C-1", "important_retain", "important_value", change_id="up-1")
    await produce(
        kafka_bootstrap, topic_prefix + TIER_CHANGES, [change_record(down), change_record(up)]
    )
    async with running_notifier(config) as notifier:  # both records in its first batch
        await caught_up(notifier)
        tasks = await rows(notifier, "SELECT change_id, rule, status, cancel_reason FROM tasks")
        alerts = await rows(notifier, "SELECT task_id FROM deliveries")
    by_rule = {t["rule"]: t for t in tasks}
    assert by_rule["high_value_retention"]["status"] == "cancelled"
    assert "up-1" in by_rule["high_value_retention"]["cancel_reason"]
    assert by_rule["high_value_welcome"]["status"] == "open"
    assert alerts == []  # nobody in this directory has a channel


@dataclass(frozen=True)
class _Consumed:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def _batch(topic: str, record: Record) -> Batch:
    consumed = _Consumed(topic, 0, 0, record.key, record.value, record.headers)
    return {TopicPartition(topic, 0): [consumed]}


async def test_a_profile_landing_while_its_customers_change_is_handled_reaches_the_task(
    engine: AsyncEngine,
) -> None:
    """The two loops on one customer at once: the profile loop's transaction has written the
    owner but not committed when the change loop makes the task. The change loop waits for
    it (a per-customer lock) and makes the task for the owner; before, it read no profile,
    made the task for the team queue, and the profile's reassignment, run before the task
    existed, never moved it."""
    make = sessions(engine)
    directory = directories.parse(directory_yaml())
    profiles = ProfileHandler(directory, "queue")
    changes = ChangeHandler(
        policy=policies.parse(DEFAULT_POLICY.read_text(encoding="utf-8")),
        directory=directory,
        default_team="queue",
        task_link="http://console/tasks/{id}",
        dead_letters="dead-letters",
        now=lambda: NOW,
        metrics=NotifierMetrics(CollectorRegistry()),
    )
    [profile] = records([_profile("C-race", "other")])
    drop = change_record(change("C-race", "important_value", "important_retain"))

    async def handled_change() -> None:
        async with make() as session, session.begin():
            await changes(session, _batch("changes", drop))

    async with make() as session, session.begin():
        await profiles(session, _batch("events", profile))
        waiting = asyncio.create_task(handled_change())
        await asyncio.sleep(1.0)
        assert not waiting.done()  # held until the profile's transaction ends
    await asyncio.wait_for(waiting, 10)
    async with make() as session:
        assignees = (await session.execute(text("SELECT assignee FROM tasks"))).scalars().all()
    assert assignees == ["other"]
