"""The rulesets' lifecycle in SQL (SPEC §11, migration 0018): who stored and activated what,
the scheduled activations, the audit log, and each partition's re-tier progress.
The caller owns the transaction."""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True, slots=True)
class RulesetRow:
    version: str
    stored_at: datetime
    stored_by: str
    activation: int | None  # its latest activation
    activated_at: datetime | None
    active: bool
    scheduled_at: datetime | None  # its earliest pending schedule
    shadow: bool = False  # it runs in shadow
    activated_by: str | None = None  # who made its latest activation


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    id: int
    version: str
    at: datetime
    state: str  # pending, done, cancelled, failed
    actor: str
    note: str
    created_at: datetime
    done_at: datetime | None
    activation: int | None


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: int
    at: datetime
    actor: str
    action: str
    version: str | None
    note: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    partition: int
    applied: str | None  # the standard's key the partition's customers were scored with
    retier_for: str | None  # the key of the re-tier in progress
    done: int  # customers the re-tier in progress has examined
    customers: int


_RULESETS = """
    SELECT r.version, r.created_at, r.stored_by, r.activation, r.activated_at,
           r.activation IS NOT NULL
               AND r.activation = (SELECT max(activation) FROM rulesets) AS active,
           (SELECT min(s.at) FROM ruleset_schedules s
            WHERE s.version = r.version AND s.state = 'pending') AS scheduled_at,
           EXISTS (SELECT 1 FROM ruleset_shadow w WHERE w.version = r.version) AS shadow,
           (SELECT l.actor FROM ruleset_activation_log l
            WHERE l.activation = r.activation) AS activated_by
    FROM rulesets r
"""
_ALL = text(_RULESETS + " ORDER BY r.created_at, r.version")
_ONE = text(_RULESETS + " WHERE r.version = :version")
_ACTIVE_BEFORE = text("""
    SELECT version FROM ruleset_activation_log WHERE version <> :version
    ORDER BY activation DESC LIMIT 1
""")
_SCHEDULE = text("""
    INSERT INTO ruleset_schedules (version, at, actor, note) VALUES (:version, :at, :actor, :note)
    RETURNING id, version, at, state, actor, note, created_at, done_at, activation
""")
_SCHEDULES = text("""
    SELECT id, version, at, state, actor, note, created_at, done_at, activation
    FROM ruleset_schedules WHERE state = 'pending' OR :all ORDER BY at, id
""")
_CANCEL = text("""
    UPDATE ruleset_schedules SET state = 'cancelled', done_at = clock_timestamp()
    WHERE version = :version AND state = 'pending'
    RETURNING id, version, at, state, actor, note, created_at, done_at, activation
""")
# the earliest due schedule no other instance is taking (it keeps the row locked until its
# transaction, which activates, commits: a schedule is carried out once)
_DUE = text("""
    SELECT id, version, at, state, actor, note, created_at, done_at, activation
    FROM ruleset_schedules WHERE state = 'pending' AND at <= :now
    ORDER BY at, id LIMIT 1 FOR UPDATE SKIP LOCKED
""")
_DONE = text("""
    UPDATE ruleset_schedules SET state = 'done', done_at = clock_timestamp(),
        activation = :activation
    WHERE id = :id
""")
_FAILED = text("""
    UPDATE ruleset_schedules SET state = 'failed', done_at = clock_timestamp() WHERE id = :id
""")
_AUDIT = text("""
    INSERT INTO ruleset_audit (actor, action, version, note, detail)
    VALUES (:actor, :action, :version, :note, CAST(:detail AS jsonb))
    RETURNING id, at, actor, action, version, note, detail
""")
_AUDIT_LOG = text("""
    SELECT id, at, actor, action, version, note, detail FROM ruleset_audit
    WHERE (CAST(:version AS text) IS NULL OR version = :version)
      AND (CAST(:before AS bigint) IS NULL OR id < :before)
    ORDER BY id DESC LIMIT :limit
""")
_PROGRESS = text("""
    SELECT p.partition, p.applied, p.retier_for, p.retier_done,
           coalesce((SELECT sum(c.customers) FROM tier_counts c
                     WHERE c.partition = p.partition), 0) AS customers
    FROM scorer_partitions p WHERE p.topic = :topic ORDER BY p.partition
""")


class LifecycleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def rulesets(self) -> list[RulesetRow]:
        return [RulesetRow(*row) for row in await self._session.execute(_ALL)]

    async def ruleset(self, version: str) -> RulesetRow | None:
        row = (await self._session.execute(_ONE, {"version": version})).one_or_none()
        return None if row is None else RulesetRow(*row)

    async def active_before(self, version: str) -> str | None:
        """The version of the latest activation of a version other than `version`."""
        found = await self._session.scalar(_ACTIVE_BEFORE, {"version": version})
        return None if found is None else str(found)

    async def schedule(self, version: str, at: datetime, actor: str, note: str) -> ScheduleRow:
        row = (
            await self._session.execute(
                _SCHEDULE, {"version": version, "at": at, "actor": actor, "note": note}
            )
        ).one()
        return ScheduleRow(*row)

    async def schedules(self, *, everything: bool = False) -> list[ScheduleRow]:
        """The pending schedules (`everything`: also those done and cancelled), by time."""
        rows = await self._session.execute(_SCHEDULES, {"all": everything})
        return [ScheduleRow(*row) for row in rows]

    async def cancel(self, version: str) -> list[ScheduleRow]:
        rows = await self._session.execute(_CANCEL, {"version": version})
        return [ScheduleRow(*row) for row in rows]

    async def take_due(self, now: datetime) -> ScheduleRow | None:
        """The earliest schedule due at `now`, locked for this transaction (None: none, or
        every due one is being carried out by another instance)."""
        row = (await self._session.execute(_DUE, {"now": now})).one_or_none()
        return None if row is None else ScheduleRow(*row)

    async def done(self, schedule: int, activation: int) -> None:
        await self._session.execute(_DONE, {"id": schedule, "activation": activation})

    async def failed(self, schedule: int) -> None:
        await self._session.execute(_FAILED, {"id": schedule})

    async def audit(
        self,
        actor: str,
        action: str,
        version: str | None,
        note: str = "",
        detail: dict[str, Any] | None = None,
    ) -> AuditRow:
        row = (
            await self._session.execute(
                _AUDIT,
                {
                    "actor": actor,
                    "action": action,
                    "version": version,
                    "note": note,
                    "detail": json.dumps(detail or {}),
                },
            )
        ).one()
        return AuditRow(*row)

    async def audit_log(
        self, *, version: str | None = None, before: int | None = None, limit: int = 100
    ) -> list[AuditRow]:
        """The audit entries, newest first (`before`: older than that entry)."""
        rows = await self._session.execute(
            _AUDIT_LOG, {"version": version, "before": before, "limit": limit}
        )
        return [AuditRow(*row) for row in rows]

    async def progress(self, topic: str) -> list[PartitionProgress]:
        rows = await self._session.execute(_PROGRESS, {"topic": topic})
        return [PartitionProgress(*row) for row in rows]
