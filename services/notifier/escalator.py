"""The escalation worker: durable timers in PostgreSQL (`tasks.next_escalation_at`).

Each round, in one transaction: lock the due tasks (`FOR UPDATE SKIP LOCKED`, so several
notifier instances split them and never take the same one), compute each step (pure,
services/notifier/core/escalation.py), record it (unique on task and level: a step is never
recorded twice), set the next timer and enqueue the step's alerts. The same round forgets
tier changes seen longer ago than the dedupe retention, in bounded steps. A restart loses nothing:
the timer is a row. An acknowledgement clears the timer; one that races a step waits for the
step's transaction (the row lock) and then wins.
"""

from collections.abc import Callable
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from schemas.v1.tiers import TierChangedV1
from services.db.unit_of_work import unit_of_work
from services.effectively_once.rounds import Rounds
from services.notifier.core.directory import Directory
from services.notifier.core.escalation import next_step
from services.notifier.core.routing import deliveries
from services.notifier.metrics import NotifierMetrics
from services.notifier.store.notifications import NotifierRepository

log = structlog.get_logger()
FORGET_BATCH = 1000  # tier changes seen, forgotten per round after the retention


class Escalator:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        directory: Directory,
        *,
        task_link: str,
        metrics: NotifierMetrics,
        now: Callable[[], datetime],
        every_s: float = 1.0,
        batch: int = 100,
        escalated: Callable[[], None] = lambda: None,
        retention_days: int = 30,
    ) -> None:
        self._retention_days = retention_days
        self._sessions = sessions
        self._directory = directory
        self._task_link = task_link
        self._metrics = metrics
        self._now = now
        self._batch = batch
        self._escalated = escalated
        self._rounds = Rounds(every_s)

    def stop(self) -> None:
        self._rounds.stop()

    async def run(self) -> None:
        await self._rounds.run(self._round)

    async def _round(self) -> bool:
        return await self.tick() >= self._batch

    async def tick(self) -> int:
        now = self._now()
        levels: list[int] = []
        async with unit_of_work(self._sessions) as session:
            repository = NotifierRepository(session)
            await repository.forget_changes(self._retention_days, FORGET_BATCH)
            due = await repository.due_escalations(now, self._batch)
            for task in due:
                step = next_step(task.due, self._directory.chain(task.due.assignee), now)
                if not await repository.record_step(step, now):
                    continue
                assert step.to is not None  # noqa: S101 - record_step is False without one
                await repository.add_deliveries(
                    deliveries(
                        self._directory,
                        [step.to],
                        "escalation",
                        task.facts,
                        TierChangedV1.model_validate(task.change),
                        link=self._task_link.format(id=step.task_id),
                        level=step.level,
                    ),
                    now,
                )
                levels.append(step.level)
                log.info("task_escalated", task_id=step.task_id, level=step.level, to=step.to)
        for level in levels:  # committed: count them
            self._metrics.escalated(level)
        if levels:
            self._escalated()
        return len(due)
