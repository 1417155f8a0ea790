"""The notifier's two handlers for the careful loop (services/kafka_io/consumer.py): each
batch in one transaction with its offsets.

- `ProfileHandler` reads `tierstream.customer` profile events off the customer-events topic
  (the notifier keeps its own copy of owner and team: the scorer's contract stays about
  tiers). Other event types are skipped by their `ce_type` header without decoding; a bad
  profile is the scorer's dead letter already (same topic), so it is only skipped here. An
  owner change moves the customer's open tasks to the new owner.
- `ChangeHandler` reads `tierstream.tier-changes.v1`: dedupe by change id, then the policy
  (pure) decides the tasks to make and cancel; new tasks enqueue their alerts (deliveries)
  in the same transaction. A change that is not a valid `tier.changed` goes to the
  dead-letter topic through the outbox.
"""

from collections.abc import Callable
from datetime import datetime

import orjson
import structlog
from aiokafka import ConsumerRecord
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from schemas.v1.binding import UndecodableRecord, decode_event
from schemas.v1.events import CustomerEvent
from schemas.v1.tiers import TierChangedV1
from services.db.outbox import Outbox
from services.kafka_io.consumer import Batch
from services.kafka_io.dead_letters import dead_letter
from services.kafka_io.record import Record
from services.notifier.directory import Directory
from services.notifier.messages import Purpose, TaskFacts
from services.notifier.metrics import NotifierMetrics
from services.notifier.policy import NewTask, Policy, decide
from services.notifier.repository import NotifierRepository
from services.notifier.routing import (
    NewDelivery,
    Profile,
    assignee_for,
    deliveries,
    recipients,
)

log = structlog.get_logger()
PROFILE_TYPE = b"tierstream.customer"


class ProfileHandler:
    def __init__(self, directory: Directory, default_team: str) -> None:
        self._directory = directory
        self._default_team = default_team

    async def __call__(self, session: AsyncSession, batch: Batch) -> None:
        profiles = [
            profile
            for records in batch.values()
            for record in records
            if (profile := _profile(record)) is not None
        ]
        if not profiles:
            return
        repository = NotifierRepository(session)
        await repository.save_profiles(profiles)
        for profile in {p.customer_id: p for p in profiles}.values():
            assignee = assignee_for(profile, self._directory, self._default_team)
            moved = await repository.reassign(profile.customer_id, assignee)
            if moved:
                log.info(
                    "tasks_reassigned", customer_id=profile.customer_id, to=assignee, tasks=moved
                )


def _profile(record: ConsumerRecord[bytes, bytes]) -> Profile | None:
    if not any(name == "ce_type" and value == PROFILE_TYPE for name, value in record.headers):
        return None
    try:
        event = decode_event(list(record.headers), record.value)
    except (UndecodableRecord, ValidationError):
        log.warning("profile_skipped", partition=record.partition, offset=record.offset)
        return None
    if not isinstance(event, CustomerEvent):
        return None
    data = event.data
    return Profile(event.subject, data.name, data.owner_id, data.team)


class ChangeHandler:
    def __init__(
        self,
        *,
        policy: Policy,
        directory: Directory,
        default_team: str,
        task_link: str,
        dead_letters: str,
        now: Callable[[], datetime],
        metrics: NotifierMetrics,
    ) -> None:
        self._metrics = metrics
        self._letters = 0  # of the batch in hand; counted once it committed
        self._policy = policy
        self._directory = directory
        self._default_team = default_team
        self._task_link = task_link
        self._dead_letters = dead_letters
        self._now = now

    async def __call__(self, session: AsyncSession, batch: Batch) -> None:
        repository = NotifierRepository(session)
        now = self._now()
        self._letters = 0
        letters: list[Record] = []
        for records in batch.values():
            for record in records:
                try:
                    change = TierChangedV1.model_validate_json(record.value or b"")
                except ValidationError as error:
                    letters.append(
                        dead_letter(record, "invalid_event", str(error), "notifier", now)
                    )
                    continue
                await self._apply(repository, change, now)
        await Outbox(session).add(self._dead_letters, letters)
        self._letters = len(letters)

    def committed(self) -> None:
        """Called by the loop once the batch's transaction committed."""
        if self._letters:
            self._metrics.dead_lettered(self._letters)
        self._letters = 0

    async def _apply(self, repo: NotifierRepository, change: TierChangedV1, now: datetime) -> None:
        customer = change.customer_id
        if not await repo.first_time(change.change_id, customer):
            log.info("change_redelivered", change_id=change.change_id, customer_id=customer)
            return
        profile = (await repo.profiles([customer])).get(customer)
        assignee = assignee_for(profile, self._directory, self._default_team)
        decision = decide(self._policy, change, assignee, await repo.open_tasks(customer), now)
        await repo.cancel(decision.cancellations, now)
        for cancelled in decision.cancellations:
            log.info("task_cancelled", task_id=cancelled.task_id, reason=cancelled.reason)
        as_json = orjson.loads(change.model_dump_json())
        for task in decision.tasks:
            name = None if profile is None else profile.name
            task_id = await repo.create_task(task, as_json, name, now)
            if task_id is not None:
                await repo.add_deliveries(self._alerts(task_id, task, change, name), now)
                log.info(
                    "task_created",
                    task_id=task_id,
                    customer_id=customer,
                    rule=task.rule,
                    priority=task.priority,
                    assignee=task.assignee,
                )

    def _alerts(
        self, task_id: str, task: NewTask, change: TierChangedV1, name: str | None
    ) -> list[NewDelivery]:
        facts = TaskFacts(
            task_id,
            task.title_zh,
            task.title_en,
            task.priority,
            task.assignee,
            change.customer_id,
            name,
        )
        chain = self._directory.chain(task.assignee)
        link = self._task_link.format(id=task_id)
        out = []
        for role in task.alert:
            people = recipients(role, task.assignee, chain)
            purpose: Purpose = "task_created" if role == "assignee" else "manager_alert"
            out += deliveries(self._directory, people, purpose, facts, change, link=link)
        return out
