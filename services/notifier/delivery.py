"""The delivery worker: claims due deliveries (a short transaction), sends them outside any
transaction, records each outcome (another short transaction).

At-least-once: a crash after a receiver took a message and before its outcome was recorded
sends it once more when the lease runs out (each message carries its delivery id, for
receivers that dedupe). Failures are retried with backoff and jitter until the attempts run
out, then the delivery ends `failed` with its last error. A channel no longer in the
directory fails permanently.
"""

import asyncio
import random
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.db.unit_of_work import unit_of_work
from services.effectively_once.rounds import Rounds
from services.notifier.channels import Message, Outcome, Sender
from services.notifier.core.directory import Directory
from services.notifier.core.retries import Backoff
from services.notifier.metrics import NotifierMetrics
from services.notifier.store.deliveries import Claimed, DeliveryRepository

log = structlog.get_logger()


class DeliveryWorker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        directory: Directory,
        sender: Sender,
        *,
        backoff: Backoff,
        metrics: NotifierMetrics,
        now: Callable[[], datetime],
        lease_s: float = 60.0,
        batch: int = 50,
        idle_s: float = 0.5,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._sessions = sessions
        self._directory = directory
        self._sender = sender
        self._backoff = backoff
        self._metrics = metrics
        self._now = now
        self._lease = timedelta(seconds=lease_s)
        self._batch = batch
        self._jitter = jitter
        self._rounds = Rounds(idle_s)

    def stop(self) -> None:
        self._rounds.stop()

    def wake(self) -> None:
        self._rounds.wake()

    async def run(self) -> None:
        await self._rounds.run(self._round)

    async def _round(self) -> bool:
        return await self.tick() >= self._batch

    async def tick(self) -> int:
        """One round: claim, send concurrently, record; returns how many were claimed."""
        now = self._now()
        async with unit_of_work(self._sessions) as session:
            repository = DeliveryRepository(session)
            for channel in await repository.give_up_abandoned(self._backoff.max_attempts, now):
                self._metrics.delivered(channel, "failed", None)
            claimed = await repository.claim(
                now,
                limit=self._batch,
                lease=self._lease,
                max_attempts=self._backoff.max_attempts,
                rate=self._rate,
            )
        if not claimed:
            return 0
        outcomes = await asyncio.gather(*(self._send(c) for c in claimed))
        finished = self._now()
        retries = [self._next_at(c, o, finished) for c, o in zip(claimed, outcomes, strict=True)]
        async with unit_of_work(self._sessions) as session:
            repository = DeliveryRepository(session)
            for c, outcome, next_at in zip(claimed, outcomes, retries, strict=True):
                await repository.finish(
                    c, delivered=outcome.delivered, error=outcome.error, next_at=next_at,
                    now=finished,
                )  # fmt: skip
        for c, outcome, next_at in zip(claimed, outcomes, retries, strict=True):
            self._record(c, outcome, next_at, finished)
        return len(claimed)

    def _rate(self, target: str) -> int:
        channel = self._directory.channel(target)
        return 60 if channel is None else channel.rate_per_minute

    async def _send(self, claimed: Claimed) -> Outcome:
        channel = self._directory.channel(claimed.target)
        if channel is None:
            return Outcome(False, "the channel is no longer in the directory", permanent=True)
        body = claimed.message
        message = Message(claimed.id, body["title"], body["text"], body.get("link"), body["data"])
        return await self._sender.send(channel, message)

    def _next_at(self, claimed: Claimed, outcome: Outcome, now: datetime) -> datetime | None:
        if outcome.delivered or self._backoff.exhausted(claimed.attempt, outcome.permanent):
            return None
        delay = self._backoff.delay(claimed.attempt, self._jitter(), outcome.retry_after)
        return now + timedelta(seconds=delay)

    def _record(
        self, claimed: Claimed, outcome: Outcome, next_at: datetime | None, now: datetime
    ) -> None:
        """`next_at` None after a failure: it was the last attempt."""
        status = "delivered" if outcome.delivered else ("retrying" if next_at else "failed")
        latency = (now - claimed.created_at).total_seconds() if outcome.delivered else None
        self._metrics.delivered(claimed.channel, status, latency)
        log.info(
            "delivery_attempt",
            delivery_id=claimed.id,
            channel=claimed.channel,
            target=claimed.target,
            attempt=claimed.attempt,
            outcome=status,
            error=outcome.error,
        )
