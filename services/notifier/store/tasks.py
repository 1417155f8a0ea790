"""The task API's SQL: tasks and alerts a person may see, acknowledgement and completion.
Every query is restricted to the assignees the caller may see (None: an admin, all), so
another person's task is simply not found. Takes the caller's session; never commits."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_COLUMNS = """
    t.id, t.change_id, t.rule, t.customer_id, t.customer_name, t.title_zh, t.title_en,
    t.priority, t.status, t.assignee, t.due_at, t.ack_sla_seconds, t.escalation_level,
    t.next_escalation_at, t.change, t.created_at, t.acknowledged_at, t.acknowledged_by,
    t.completed_at, t.completed_by, t.note, t.cancelled_at, t.cancel_reason,
    coalesce((SELECT json_agg(json_build_object('level', e.level, 'to', e.escalated_to,
                                                'at', e.escalated_at) ORDER BY e.level)
              FROM task_escalations e WHERE e.task_id = t.id), '[]') AS escalations
"""
_VISIBLE = "(CAST(:visible AS text[]) IS NULL OR t.assignee = ANY(CAST(:visible AS text[])))"
_LIST = text(f"""
    SELECT {_COLUMNS} FROM tasks t
    WHERE {_VISIBLE}
      AND (CAST(:assignee AS text) IS NULL OR t.assignee = :assignee)
      AND (CAST(:status AS text) IS NULL OR t.status = :status)
      AND (CAST(:customer AS text) IS NULL OR t.customer_id = :customer)
      AND (CAST(:after_at AS timestamptz) IS NULL
           OR (t.created_at, t.id) < (CAST(:after_at AS timestamptz), CAST(:after_id AS uuid)))
    ORDER BY t.created_at DESC, t.id DESC LIMIT :limit
""")
_ONE = text(f"SELECT {_COLUMNS} FROM tasks t WHERE t.id = CAST(:id AS uuid) AND {_VISIBLE}")
_ACK = text(f"""
    UPDATE tasks t SET status = 'acknowledged', acknowledged_at = :now, acknowledged_by = :by,
        note = coalesce(:note, t.note), next_escalation_at = NULL
    WHERE t.id = CAST(:id AS uuid) AND t.status = 'open' AND {_VISIBLE}
    RETURNING t.id
""")
_COMPLETE = text(f"""
    UPDATE tasks t SET status = 'completed', completed_at = :now, completed_by = :by,
        note = coalesce(:note, t.note), next_escalation_at = NULL
    WHERE t.id = CAST(:id AS uuid) AND t.status IN ('open', 'acknowledged') AND {_VISIBLE}
    RETURNING t.id
""")
_ALERTS = text(f"""
    SELECT d.id, d.task_id, d.purpose, d.recipient, d.channel, d.target, d.language, d.status,
           d.attempts, d.last_error, d.created_at, d.delivered_at,
           d.message ->> 'title' AS title
    FROM deliveries d LEFT JOIN tasks t ON t.id = d.task_id
    WHERE ({_VISIBLE} OR d.recipient = :viewer)
      AND (CAST(:status AS text) IS NULL OR d.status = :status)
      AND (CAST(:after_at AS timestamptz) IS NULL
           OR (d.created_at, d.id) < (CAST(:after_at AS timestamptz), CAST(:after_id AS uuid)))
    ORDER BY d.created_at DESC, d.id DESC LIMIT :limit
""")
_TASK_COUNTS = text("SELECT priority, status, count(*) AS n FROM tasks GROUP BY 1, 2")
_ESCALATION_COUNTS = text("SELECT level, count(*) AS n FROM task_escalations GROUP BY 1")
_OLDEST_URGENT = text("""
    SELECT min(created_at) FROM tasks WHERE priority = 'urgent' AND status = 'open'
""")


@dataclass(frozen=True, slots=True)
class Page:
    after_at: datetime | None = None
    after_id: str | None = None
    limit: int = 100


class TaskRepository:
    def __init__(self, session: AsyncSession, visible: Sequence[str] | None) -> None:
        self._session = session
        self._visible = None if visible is None else list(visible)

    async def tasks(
        self, *, assignee: str | None, status: str | None, customer: str | None, page: Page
    ) -> list[dict[str, Any]]:
        rows = await self._session.execute(
            _LIST,
            {
                "visible": self._visible,
                "assignee": assignee,
                "status": status,
                "customer": customer,
                "after_at": page.after_at,
                "after_id": page.after_id,
                "limit": page.limit,
            },
        )
        return [dict(row._mapping) for row in rows]

    async def task(self, task_id: str) -> dict[str, Any] | None:
        row = (await self._session.execute(_ONE, {"id": task_id, "visible": self._visible})).first()
        return None if row is None else dict(row._mapping)

    async def acknowledge(self, task_id: str, by: str, note: str | None, now: datetime) -> bool:
        return await self._change(_ACK, task_id, by, note, now)

    async def complete(self, task_id: str, by: str, note: str | None, now: datetime) -> bool:
        return await self._change(_COMPLETE, task_id, by, note, now)

    async def _change(
        self, statement: Any, task_id: str, by: str, note: str | None, now: datetime
    ) -> bool:
        result = await self._session.execute(
            statement,
            {"id": task_id, "by": by, "note": note, "now": now, "visible": self._visible},
        )
        return result.first() is not None

    async def alerts(self, viewer: str, status: str | None, page: Page) -> list[dict[str, Any]]:
        rows = await self._session.execute(
            _ALERTS,
            {
                "visible": self._visible,
                "viewer": viewer,
                "status": status,
                "after_at": page.after_at,
                "after_id": page.after_id,
                "limit": page.limit,
            },
        )
        return [dict(row._mapping) for row in rows]


async def task_gauges(
    session: AsyncSession, now: datetime
) -> tuple[dict[tuple[str, str], int], dict[int, int], float]:
    """Tasks by (priority, status), escalation steps by level, oldest open urgent task age."""
    counts = {(r.priority, r.status): r.n for r in await session.execute(_TASK_COUNTS)}
    levels = {r.level: r.n for r in await session.execute(_ESCALATION_COUNTS)}
    oldest = (await session.execute(_OLDEST_URGENT)).scalar()
    age = 0.0 if oldest is None else max((now - oldest).total_seconds(), 0.0)
    return counts, levels, age


async def ping(session: AsyncSession) -> None:
    await session.execute(text("SELECT 1"))
