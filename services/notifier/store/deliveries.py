"""The delivery worker's SQL: claim due deliveries under a lease (no transaction is held
while a message is sent), within each channel's rate per minute, and record each attempt's
outcome. Takes the caller's session; never commits."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

CLAIM_LOCK = 7_346_212_010  # one claimer at a time, so rate limits hold across instances


@dataclass(frozen=True, slots=True)
class Claimed:
    id: str
    attempt: int  # this attempt's number, 1-based
    channel: str
    target: str
    message: dict[str, Any]
    created_at: datetime


_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
_GIVE_UP = text("""
    UPDATE deliveries SET status = 'failed', leased_until = NULL,
        last_error = coalesce(last_error, 'no outcome recorded for the last attempt')
    WHERE status = 'pending' AND attempts >= :max AND leased_until < :now
    RETURNING channel
""")
_USED = text("""
    SELECT target, count(*) AS used FROM delivery_attempts
    WHERE started_at > :since GROUP BY target
""")
_DUE = text("""
    SELECT id, attempts, channel, target, message, created_at FROM deliveries
    WHERE status = 'pending' AND next_attempt_at <= :now
      AND (leased_until IS NULL OR leased_until < :now)
    ORDER BY next_attempt_at LIMIT :limit
""")
_LEASE = text("""
    UPDATE deliveries SET attempts = attempts + 1, leased_until = :until WHERE id = :id
""")
_ATTEMPT = text("""
    INSERT INTO delivery_attempts (delivery_id, attempt, target, started_at)
    VALUES (:id, :attempt, :target, :now)
""")
_FINISH_ATTEMPT = text("""
    UPDATE delivery_attempts SET finished_at = :now, outcome = :outcome, error = :error
    WHERE delivery_id = :id AND attempt = :attempt
""")
_FINISH = text("""
    UPDATE deliveries SET status = :status, last_error = :error, next_attempt_at = :next_at,
        leased_until = NULL,
        delivered_at = CASE WHEN :status = 'delivered' THEN CAST(:now AS timestamptz) END
    WHERE id = :id AND attempts = :attempt AND status = 'pending'
""")


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def give_up_abandoned(self, max_attempts: int, now: datetime) -> list[str]:
        """Deliveries whose last attempt never reported (the worker died) and that have no
        attempts left end `failed`; returns their channels."""
        rows = await self._session.execute(_GIVE_UP, {"max": max_attempts, "now": now})
        return [r.channel for r in rows]

    async def claim(
        self,
        now: datetime,
        *,
        limit: int,
        lease: timedelta,
        max_attempts: int,
        rate: Callable[[str], int],
    ) -> list[Claimed]:
        """Due deliveries, at most `rate(target)` attempts per target in any minute; each
        claimed one gets an attempt row now (so it counts against the rate at once)."""
        await self._session.execute(_LOCK, {"key": CLAIM_LOCK})
        used = {
            r.target: r.used
            for r in await self._session.execute(_USED, {"since": now - timedelta(minutes=1)})
        }
        rows = await self._session.execute(_DUE, {"now": now, "limit": limit * 4})
        claimed: list[Claimed] = []
        for row in rows:
            if len(claimed) >= limit or row.attempts >= max_attempts:
                continue
            if used.get(row.target, 0) >= rate(row.target):
                continue  # this robot's minute is full: the row waits, others go on
            used[row.target] = used.get(row.target, 0) + 1
            attempt = row.attempts + 1
            claimed.append(
                Claimed(str(row.id), attempt, row.channel, row.target, row.message, row.created_at)
            )
        for c in claimed:
            await self._session.execute(_LEASE, {"id": c.id, "until": now + lease})
            await self._session.execute(
                _ATTEMPT, {"id": c.id, "attempt": c.attempt, "target": c.target, "now": now}
            )
        return claimed

    async def finish(
        self,
        claimed: Claimed,
        *,
        delivered: bool,
        error: str | None,
        next_at: datetime | None,
        now: datetime,
    ) -> None:
        """`next_at` None with a failure: no attempts left, the delivery ends `failed`."""
        outcome = "delivered" if delivered else "failed"
        await self._session.execute(
            _FINISH_ATTEMPT,
            {
                "id": claimed.id,
                "attempt": claimed.attempt,
                "now": now,
                "outcome": outcome,
                "error": error,
            },
        )
        status = "delivered" if delivered else ("pending" if next_at is not None else "failed")
        await self._session.execute(
            _FINISH,
            {
                "id": claimed.id,
                "attempt": claimed.attempt,
                "status": status,
                "error": error,
                "next_at": next_at or now,
                "now": now,
            },
        )
