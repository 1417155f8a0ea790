"""The notifier consumer's and escalation worker's SQL: profiles, tier changes seen, tasks,
escalation timers and steps, and new deliveries. Takes the caller's session; never commits."""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifier.core.escalation import Due, Step
from services.notifier.core.messages import TaskFacts
from services.notifier.core.policy import Cancellation, NewTask, OpenTask, OpenWhile
from services.notifier.core.routing import NewDelivery, Profile

_UPSERT_PROFILES = text("""
    INSERT INTO notifier_profiles (customer_id, name, owner_id, team, updated_at)
    SELECT *, now() FROM unnest(CAST(:ids AS text[]), CAST(:names AS text[]),
                                CAST(:owners AS text[]), CAST(:teams AS text[]))
    ON CONFLICT (customer_id) DO UPDATE SET name = excluded.name, owner_id = excluded.owner_id,
        team = excluded.team, updated_at = excluded.updated_at
""")
# The profile loop and the tier-change loop take these per customer (in one order: no
# deadlock) before they read or write its profile and tasks, so that a task made while the
# customer's profile lands in the other loop is either made for the new owner or moved to
# them; without it each transaction missed the other's uncommitted work and the task stayed
# in the team queue. (Keys of the two-int form: a space apart from the single-key locks.)
_LOCK_CUSTOMERS = text("""
    SELECT pg_advisory_xact_lock(7346, k.key)
    FROM (SELECT DISTINCT hashtext(c) AS key FROM unnest(CAST(:ids AS text[])) AS c
          ORDER BY key) AS k
""")
_PROFILES = text("""
    SELECT customer_id, name, owner_id, team FROM notifier_profiles
    WHERE customer_id = ANY(CAST(:ids AS text[]))
""")
_REASSIGN = text("""
    UPDATE tasks t SET assignee = v.assignee
    FROM unnest(CAST(:customers AS text[]), CAST(:assignees AS text[])) AS v(customer, assignee)
    WHERE t.customer_id = v.customer AND t.status IN ('open', 'acknowledged')
      AND t.assignee <> v.assignee
    RETURNING t.customer_id, t.assignee
""")
_SEEN = text("""
    INSERT INTO notifier_changes (change_id, customer_id)
    SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:customers AS text[]))
    ON CONFLICT (change_id) DO NOTHING RETURNING change_id
""")
_FORGET = text("""
    DELETE FROM notifier_changes WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM notifier_changes
        WHERE seen_at < clock_timestamp() - make_interval(days => :days) LIMIT :limit))
""")
_OPEN = text("""
    SELECT id, customer_id, rule, open_while FROM tasks
    WHERE customer_id = ANY(CAST(:customers AS text[])) AND status IN ('open', 'acknowledged')
    ORDER BY created_at, id
""")
_CANCEL = text("""
    UPDATE tasks t SET status = 'cancelled', cancelled_at = :now, cancel_reason = c.reason,
        next_escalation_at = NULL
    FROM unnest(CAST(:ids AS uuid[]), CAST(:reasons AS text[])) AS c(id, reason)
    WHERE t.id = c.id AND t.status IN ('open', 'acknowledged')
""")
_CREATE = text("""
    INSERT INTO tasks (id, change_id, rule, customer_id, customer_name, title_zh, title_en,
        priority, assignee, open_while, due_at, ack_sla_seconds, next_escalation_at, change,
        created_at)
    SELECT id, change_id, rule, customer_id, customer_name, title_zh, title_en, priority,
        assignee, CAST(open_while AS jsonb), due_at, sla, next_at, CAST(change AS jsonb), :now
    FROM unnest(CAST(:ids AS uuid[]), CAST(:change_ids AS text[]), CAST(:rules AS text[]),
        CAST(:customers AS text[]), CAST(:names AS text[]), CAST(:titles_zh AS text[]),
        CAST(:titles_en AS text[]), CAST(:priorities AS text[]), CAST(:assignees AS text[]),
        CAST(:open_whiles AS text[]), CAST(:due_ats AS timestamptz[]), CAST(:slas AS int[]),
        CAST(:next_ats AS timestamptz[]), CAST(:changes AS text[]))
        AS r(id, change_id, rule, customer_id, customer_name, title_zh, title_en, priority,
             assignee, open_while, due_at, sla, next_at, change)
    ON CONFLICT (change_id, rule) DO NOTHING
    RETURNING id
""")
_DELIVER = text("""
    INSERT INTO deliveries (key, task_id, purpose, recipient, channel, target, language, message,
        next_attempt_at, created_at)
    SELECT key, task_id, purpose, recipient, channel, target, language, CAST(message AS jsonb),
        :now, :now
    FROM unnest(CAST(:keys AS text[]), CAST(:task_ids AS uuid[]), CAST(:purposes AS text[]),
        CAST(:recipients AS text[]), CAST(:channels AS text[]), CAST(:targets AS text[]),
        CAST(:languages AS text[]), CAST(:messages AS text[]))
        AS d(key, task_id, purpose, recipient, channel, target, language, message)
    ON CONFLICT (key) DO NOTHING
""")
_DUE = text("""
    SELECT id, assignee, escalation_level, ack_sla_seconds, title_zh, title_en, priority,
           customer_id, customer_name, change
    FROM tasks
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


@dataclass(frozen=True, slots=True)
class DueTask:
    due: Due
    facts: TaskFacts
    change: dict[str, Any]  # the tier change as JSON


@dataclass(frozen=True, slots=True)
class PlannedTask:
    id: str  # chosen by the caller, so later changes of the same batch can cancel it
    task: NewTask
    change: dict[str, Any]  # the tier change as JSON
    name: str | None  # the customer's


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

    async def lock_customers(self, customer_ids: Sequence[str]) -> None:
        """Until this transaction ends, no other notifier transaction works on these
        customers' profiles and tasks."""
        if customer_ids:
            await self._session.execute(_LOCK_CUSTOMERS, {"ids": list(customer_ids)})

    async def profiles(self, customer_ids: Sequence[str]) -> dict[str, Profile]:
        rows = await self._session.execute(_PROFILES, {"ids": list(customer_ids)})
        return {r.customer_id: Profile(r.customer_id, r.name, r.owner_id, r.team) for r in rows}

    async def reassign(self, assignees: dict[str, str]) -> Counter[tuple[str, str]]:
        """Moves each customer's open tasks to its assignee; returns how many moved, per
        (customer, new assignee)."""
        if not assignees:
            return Counter()
        result = await self._session.execute(
            _REASSIGN, {"customers": list(assignees), "assignees": list(assignees.values())}
        )
        return Counter((row.customer_id, row.assignee) for row in result)

    async def first_time(self, changes: Sequence[tuple[str, str]]) -> set[str]:
        """Records (change id, customer) pairs as seen; returns the ids not seen before (the
        others are redeliveries)."""
        if not changes:
            return set()
        result = await self._session.execute(
            _SEEN, {"ids": [c for c, _ in changes], "customers": [k for _, k in changes]}
        )
        return {row.change_id for row in result}

    async def forget_changes(self, days: int, limit: int) -> int:
        """Changes seen longer ago than the retention are forgotten, a bounded step at a time
        (a redelivery older than that would make its tasks again)."""
        result = await self._session.execute(_FORGET, {"days": days, "limit": limit})
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def open_tasks(self, customers: Sequence[str]) -> dict[str, list[OpenTask]]:
        rows = await self._session.execute(_OPEN, {"customers": list(customers)})
        found: dict[str, list[OpenTask]] = {}
        for r in rows:
            task = OpenTask(str(r.id), r.rule, OpenWhile.model_validate(r.open_while))
            found.setdefault(r.customer_id, []).append(task)
        return found

    async def cancel(self, cancellations: Sequence[Cancellation], now: datetime) -> None:
        if cancellations:
            await self._session.execute(
                _CANCEL,
                {
                    "ids": [c.task_id for c in cancellations],
                    "reasons": [c.reason for c in cancellations],
                    "now": now,
                },
            )

    async def create_tasks(self, tasks: Sequence[PlannedTask], now: datetime) -> set[str]:
        """Inserts the tasks; returns the ids of those inserted (a (change, rule) that already
        has a task is skipped)."""
        if not tasks:
            return set()
        result = await self._session.execute(
            _CREATE,
            {
                "ids": [t.id for t in tasks],
                "change_ids": [t.change["change_id"] for t in tasks],
                "rules": [t.task.rule for t in tasks],
                "customers": [t.change["customer_id"] for t in tasks],
                "names": [t.name for t in tasks],
                "titles_zh": [t.task.title_zh for t in tasks],
                "titles_en": [t.task.title_en for t in tasks],
                "priorities": [t.task.priority for t in tasks],
                "assignees": [t.task.assignee for t in tasks],
                "open_whiles": [
                    t.task.open_while.model_dump_json(exclude_none=True) for t in tasks
                ],
                "due_ats": [t.task.due_at for t in tasks],
                "slas": [t.task.ack_sla_seconds for t in tasks],
                "next_ats": [t.task.next_escalation_at for t in tasks],
                "changes": [orjson.dumps(t.change).decode() for t in tasks],
                "now": now,
            },
        )
        return {str(row.id) for row in result}

    async def add_deliveries(self, deliveries: Sequence[NewDelivery], now: datetime) -> None:
        if not deliveries:
            return
        await self._session.execute(
            _DELIVER,
            {
                "keys": [d.key for d in deliveries],
                "task_ids": [d.task_id for d in deliveries],
                "purposes": [d.purpose for d in deliveries],
                "recipients": [d.recipient for d in deliveries],
                "channels": [d.channel for d in deliveries],
                "targets": [d.target for d in deliveries],
                "languages": [d.language for d in deliveries],
                "messages": [orjson.dumps(d.message).decode() for d in deliveries],
                "now": now,
            },
        )

    async def due_escalations(self, now: datetime, limit: int) -> list[DueTask]:
        """Locks the due tasks (SKIP LOCKED: another instance takes others, never these),
        with what their alerts say."""
        rows = await self._session.execute(_DUE, {"now": now, "limit": limit})
        return [
            DueTask(
                Due(str(r.id), r.assignee, r.escalation_level, r.ack_sla_seconds),
                TaskFacts(str(r.id), r.title_zh, r.title_en, r.priority, r.assignee,
                          r.customer_id, r.customer_name),
                r.change,
            )
            for r in rows
        ]  # fmt: skip

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
