"""The notifier's two handlers for the careful loop (services/effectively_once/loop.py): each
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

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from aiokafka import ConsumerRecord
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from schemas.v1.binding import UndecodableRecord, decode_event
from schemas.v1.events import CustomerEvent
from schemas.v1.tiers import TierChangedV1
from services.effectively_once.loop import Batch
from services.effectively_once.outbox import Outbox
from services.effectively_once.record import Record
from services.notifier.core.directory import Directory
from services.notifier.core.messages import Purpose, TaskFacts
from services.notifier.core.policy import Cancellation, NewTask, OpenTask, Policy, decide
from services.notifier.core.routing import (
    NewDelivery,
    Profile,
    assignee_for,
    deliveries,
    recipients,
)
from services.notifier.metrics import NotifierMetrics
from services.notifier.store.notifications import NotifierRepository, PlannedTask
from services.rejections import rejected

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
        latest = {p.customer_id: p for p in profiles}
        await repository.lock_customers(list(latest))
        await repository.save_profiles(profiles)
        moved = await repository.reassign(
            {
                customer: assignee_for(profile, self._directory, self._default_team)
                for customer, profile in latest.items()
            }
        )
        for (customer, assignee), count in moved.items():
            log.info("tasks_reassigned", customer_id=customer, to=assignee, tasks=count)


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
        """A fixed number of statements per batch: dedupe, profiles, open tasks, then the
        policy change by change in memory, then tasks, cancellations and alerts in bulk."""
        now = self._now()
        self._letters = 0
        changes, letters = self._decode(batch, now)
        repo = NotifierRepository(session)
        new = await repo.first_time([(c.change_id, c.customer_id) for c in changes])
        for c in changes:
            if c.change_id not in new:
                log.info("change_redelivered", change_id=c.change_id, customer_id=c.customer_id)
        fresh = [c for c in changes if c.change_id in new]
        customers = list(dict.fromkeys(c.customer_id for c in fresh))
        await repo.lock_customers(customers)
        profiles = await repo.profiles(customers)
        open_tasks = await repo.open_tasks(customers)
        plan = _Plan()
        for change in fresh:
            self._decide(change, profiles.get(change.customer_id), open_tasks, plan, now)
        created = await repo.create_tasks(plan.tasks, now)
        await repo.cancel(plan.cancellations, now)
        await repo.add_deliveries([d for d in plan.deliveries if d.task_id in created], now)
        await Outbox(session).add(self._dead_letters, letters)
        self._letters = len(letters)
        for task in plan.tasks:
            if task.id in created:
                log.info(
                    "task_created", task_id=task.id, customer_id=task.change["customer_id"],
                    rule=task.task.rule, priority=task.task.priority, assignee=task.task.assignee,
                )  # fmt: skip
        for cancelled in plan.cancellations:
            log.info("task_cancelled", task_id=cancelled.task_id, reason=cancelled.reason)

    def committed(self) -> None:
        """Called by the loop once the batch's transaction committed."""
        if self._letters:
            self._metrics.dead_lettered(self._letters)
        self._letters = 0

    def _decode(self, batch: Batch, now: datetime) -> tuple[list[TierChangedV1], list[Record]]:
        """The batch's changes in partition order, each once; invalid ones as dead letters."""
        changes: dict[str, TierChangedV1] = {}
        letters: list[Record] = []
        for records in batch.values():
            for record in records:
                try:
                    change = TierChangedV1.model_validate_json(record.value or b"")
                except ValidationError as error:
                    letters.append(rejected(record, "invalid_event", str(error), "notifier", now))
                    continue
                changes.setdefault(change.change_id, change)
        return list(changes.values()), letters

    def _decide(
        self,
        change: TierChangedV1,
        profile: Profile | None,
        open_tasks: dict[str, list[OpenTask]],
        plan: "_Plan",
        now: datetime,
    ) -> None:
        """The policy for one change, against the customer's open tasks as this batch left
        them (a task made by an earlier change of the batch can be cancelled by a later one)."""
        customer = change.customer_id
        assignee = assignee_for(profile, self._directory, self._default_team)
        current = open_tasks.get(customer, [])
        decision = decide(self._policy, change, assignee, current, now)
        gone = {c.task_id for c in decision.cancellations}
        current = [t for t in current if t.id not in gone]
        plan.cancellations += decision.cancellations
        as_json = change.model_dump(mode="json")
        name = None if profile is None else profile.name
        for task in decision.tasks:
            task_id = str(uuid.uuid4())
            current.append(OpenTask(task_id, task.rule, task.open_while))
            plan.tasks.append(PlannedTask(task_id, task, as_json, name))
            plan.deliveries += self._alerts(task_id, task, change, name)
        open_tasks[customer] = current

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


@dataclass
class _Plan:
    tasks: list[PlannedTask] = field(default_factory=list)
    cancellations: list[Cancellation] = field(default_factory=list)
    deliveries: list[NewDelivery] = field(default_factory=list)
