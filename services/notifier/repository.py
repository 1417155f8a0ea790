"""The notifier consumer's and escalation worker's SQL: profiles, tier changes seen, tasks,
escalation timers and steps, and new deliveries. Takes the caller's session; never commits."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifier.escalation import Due, Step
from services.notifier.policy import Cancellation, NewTask, OpenTask, OpenWhile
from services.notifier.routing import NewDelivery, Profile

_UPSERT_PROFILES = text("""
    INSERT INTO notifier_profiles (customer_id, name, owner_id, team, updated_at)
    SELECT *, now() FROM unnest(CAST(:ids AS text[]), CAST(:names AS text[]),
                                CAST(:owners AS text[]), CAST(:teams AS text[]))
    ON CONFLICT (customer_id) DO UPDATE SET name = excluded.name, owner_id = excluded.owner_id,
        team = excluded.team, updated_at = excluded.updated_at
""")
_PROFILES = text("""
    SELECT customer_id, name, owner_id, team FROM notifier_profiles
    WHERE customer_id = ANY(CAST(:ids AS text[]))
""")
_REASSIGN = text("""
    UPDATE tasks SET assignee = :assignee
    WHERE customer_id = :customer AND status IN ('open', 'acknowledged') AND assignee <> :assignee
    RETURNING id
""")
_SEEN = text("""
    INSERT INTO notifier_changes (change_id, customer_id) VALUES (:change_id, :customer)
    ON CONFLICT (change_id) DO NOTHING RETURNING change_id
""")
_FORGET = text("""
    DELETE FROM notifier_changes WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM notifier_changes
        WHERE seen_at < clock_timestamp() - make_interval(days => :days) LIMIT :limit))
""")
_OPEN = text("""
    SELECT id, rule, open_while FROM tasks
    WHERE customer_id = :customer AND status IN ('open', 'acknowledged')
    ORDER BY created_at, id
""")
_CANCEL = text("""
    UPDATE tasks SET status = 'cancelled', cancelled_at = :now, cancel_reason = :reason,
        next_escalation_at = NULL
    WHERE id = :id AND status IN ('open', 'acknowledged')
""")
_CREATE = text("""
    INSERT INTO tasks (change_id, rule, customer_id, customer_name, title_zh, title_en, priority,
        assignee, open_while, due_at, ack_sla_seconds, next_escalation_at, change, created_at)
    VALUES (:change_id, :rule, :customer, :name, :title_zh, :title_en, :priority, :assignee,
        CAST(:open_while AS jsonb), :due_at, :sla, :next_at, CAST(:change AS jsonb), :now)
    ON CONFLICT (change_id, rule) DO NOTHING
    RETURNING id
""")
_DELIVER = text("""
    INSERT INTO deliveries (key, task_id, purpose, recipient, channel, target, language, message,
        next_attempt_at, created_at)
    VALUES (:key, :task_id, :purpose, :recipient, :channel, :target, :language,
        CAST(:message AS jsonb), :now, :now)
    ON CONFLICT (key) DO NOTHING
""")
_DUE = text("""
    SELECT id, assignee, escalation_level, ack_sla_seconds FROM tasks
    WHERE next_escalation_at <= :now AND status = 'open'
    ORDER BY next_escalation_at LIMIT :limit
    FOR UPDATE SKIP LOCKED
""")
_STEP = text("""
    INSERT INTO task_escalations (task_id, level, escalated_to, escalated_at)
    VALUES (:id, :level, :to, :now) ON CONFLICT DO NOTHING RETURNING level
""")
_TIMER = text("""
    UPDATE tasks SET escalation_level = :level, next_escalation_at = :next_at WHERE id = :id
""")
_ALERT_FACTS = text("""
    SELECT id, title_zh, title_en, priority, assignee, customer_id, customer_name, change
    FROM tasks WHERE id = :id
""")


class NotifierRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def save_profiles(self, profiles: Sequence[Profile]) -> None:
        """Upserts; when a customer appears twice, the last one (log order) is kept."""
        last = {p.customer_id: p for p in profiles}
        if last:
            await self._session.execute(
                _UPSERT_PROFILES,
                {
                    "ids": list(last),
                    "names": [p.name for p in last.values()],
                    "owners": [p.owner_id for p in last.values()],
                    "teams": [p.team for p in last.values()],
                },
            )

    async def profiles(self, customer_ids: Sequence[str]) -> dict[str, Profile]:
        rows = await self._session.execute(_PROFILES, {"ids": list(customer_ids)})
        return {r.customer_id: Profile(r.customer_id, r.name, r.owner_id, r.team) for r in rows}

    async def reassign(self, customer_id: str, assignee: str) -> int:
        result = await self._session.execute(
            _REASSIGN, {"customer": customer_id, "assignee": assignee}
        )
        return len(result.all())

    async def first_time(self, change_id: str, customer_id: str) -> bool:
        """Records the change as seen; False when it was seen before (a redelivery)."""
        result = await self._session.execute(
            _SEEN, {"change_id": change_id, "customer": customer_id}
        )
        return result.first() is not None

    async def forget_changes(self, days: int, limit: int) -> int:
        """Changes seen longer ago than the retention are forgotten, a bounded step at a time
        (a redelivery older than that would make its tasks again)."""
        result = await self._session.execute(_FORGET, {"days": days, "limit": limit})
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def open_tasks(self, customer_id: str) -> list[OpenTask]:
        rows = await self._session.execute(_OPEN, {"customer": customer_id})
        return [OpenTask(str(r.id), r.rule, OpenWhile.model_validate(r.open_while)) for r in rows]

    async def cancel(self, cancellations: Sequence[Cancellation], now: datetime) -> None:
        for c in cancellations:
            await self._session.execute(_CANCEL, {"id": c.task_id, "reason": c.reason, "now": now})

    async def create_task(
        self, task: NewTask, change: dict[str, Any], name: str | None, now: datetime
    ) -> str | None:
        """The new task's id; None when this change already made a task of this rule."""
        result = await self._session.execute(
            _CREATE,
            {
                "change_id": change["change_id"],
                "rule": task.rule,
                "customer": change["customer_id"],
                "name": name,
                "title_zh": task.title_zh,
                "title_en": task.title_en,
                "priority": task.priority,
                "assignee": task.assignee,
                "open_while": task.open_while.model_dump_json(exclude_none=True),
                "due_at": task.due_at,
                "sla": task.ack_sla_seconds,
                "next_at": task.next_escalation_at,
                "change": orjson.dumps(change).decode(),
                "now": now,
            },
        )
        row = result.first()
        return None if row is None else str(row.id)

    async def add_deliveries(self, deliveries: Sequence[NewDelivery], now: datetime) -> None:
        for d in deliveries:
            await self._session.execute(
                _DELIVER,
                {
                    "key": d.key,
                    "task_id": d.task_id,
                    "purpose": d.purpose,
                    "recipient": d.recipient,
                    "channel": d.channel,
                    "target": d.target,
                    "language": d.language,
                    "message": orjson.dumps(d.message).decode(),
                    "now": now,
                },
            )

    async def due_escalations(self, now: datetime, limit: int) -> list[Due]:
        """Locks the due tasks (SKIP LOCKED: another instance takes others, never these)."""
        rows = await self._session.execute(_DUE, {"now": now, "limit": limit})
        return [Due(str(r.id), r.assignee, r.escalation_level, r.ack_sla_seconds) for r in rows]

    async def record_step(self, step: Step, now: datetime) -> bool:
        """The step and the task's next timer; False if the level was recorded before."""
        recorded = True
        if step.to is not None:
            result = await self._session.execute(
                _STEP, {"id": step.task_id, "level": step.level, "to": step.to, "now": now}
            )
            recorded = result.first() is not None
        await self._session.execute(
            _TIMER, {"id": step.task_id, "level": step.level, "next_at": step.next_at}
        )
        return recorded and step.to is not None

    async def alert_facts(self, task_id: str) -> Any:
        return (await self._session.execute(_ALERT_FACTS, {"id": task_id})).one()
