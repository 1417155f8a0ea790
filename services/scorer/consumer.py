"""The scorer's handler for the careful loop (services/kafka_io/consumer.py): decode, dedupe,
load, call the pure core, save, put the results in the outbox. It runs inside the loop's
transaction, which also advances the partition offsets, so all of it commits or none.

Per partition, in this order:
1. re-tier every customer of the partition if the standard (ruleset, thresholds) changed
   since the partition was last scored;
2. the day-boundary sweep when the clock's day passed the partition's last swept day (wall
   clock: once per batch; replay mode: at the record that moves the event clock into a new
   day, so a replay emits the time-driven changes at the same records however it is cut);
3. records in partition order: poison ones (undecodable, invalid, unknown type or currency,
   a key that is not the subject, a reused id with other content) to the dead-letter topic;
   duplicates skipped; the others scored one by one.
"""

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal, Protocol

import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from schemas.v1.binding import Event, UndecodableRecord, decode_event
from schemas.v1.deadletter import DeadLetterV1, Reason
from schemas.v1.events import EVENT_TYPES
from services.db.outbox import Outbox
from services.kafka_io.consumer import Batch
from services.kafka_io.record import Record
from services.scorer.control_repository import ControlRepository, PartitionState
from services.scorer.facts import UnknownCurrency, fact_of, local_day
from services.scorer.metrics import ScorerMetrics, Tally
from services.scorer.publisher import dead_letter
from services.scorer.repository import ScorerRepository
from services.scorer.rfm import Fact
from services.scorer.rulebook import Rulebook
from services.scorer.scoring import ClockReason, EventCause
from services.scorer.workset import OutTopics, Scoring, Workset

log = structlog.get_logger()
ClockMode = Literal["wall", "event"]


class Raw(Protocol):
    """The fields of an aiokafka ConsumerRecord the scorer reads."""

    topic: str
    partition: int
    offset: int
    timestamp: int  # ms; CreateTime, set by ingest's producer
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class _Good:
    record: Raw
    event: Event
    fact: Fact
    digest: bytes


@dataclass(slots=True)
class _Sorted:
    good: list[_Good] = field(default_factory=list)
    letters: list[Record] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def reject(self, record: Raw, reason: Reason, error: str, wall: datetime) -> None:
        why = DeadLetterV1(
            reason=reason,
            error=error[:2000],
            service="scorer",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            failed_at=wall,
        )
        self.letters.append(dead_letter(record.key, record.value, list(record.headers), why))
        self.reasons.append(reason)
        log.warning("dead_letter", partition=record.partition, offset=record.offset, reason=reason)


class ScorerHandler:
    def __init__(
        self,
        *,
        topic: str,
        scoring: Scoring,
        rulebook: Rulebook,
        topics: OutTopics,
        clock: ClockMode,
        now: Callable[[], datetime],
        metrics: ScorerMetrics,
    ) -> None:
        self._topic = topic
        self._scoring = scoring
        self._rulebook = rulebook
        self._topics = topics
        self._clock = clock
        self._now = now
        self._metrics = metrics
        self._tally = Tally()

    async def __call__(self, session: AsyncSession, batch: Batch) -> None:
        self._tally = Tally()
        for tp, records in batch.items():
            await self._partition(session, tp.partition, records)

    async def maintain(self, session: AsyncSession, partitions: Sequence[int]) -> None:
        """Between batches: refresh the standard, then re-tier and sweep idle partitions."""
        self._tally = Tally()
        wall = self._now()
        await self._rulebook.refresh(session, local_day(wall, self._scoring.zone), wall)
        for partition in partitions:
            await self._partition(session, partition, [])

    def committed(self) -> None:
        """Called by the loop once the transaction committed: only now do metrics move."""
        self._metrics.record(self._tally)
        self._tally = Tally()

    async def _partition(
        self, session: AsyncSession, partition: int, records: Sequence[Raw]
    ) -> None:
        control = ControlRepository(session, self._topic)
        repository = ScorerRepository(session)
        part = (await control.partitions([partition])).get(partition) or PartitionState(partition)
        wall = self._now()
        sorted_ = self._sort(records, wall)
        fresh = await self._dedupe(repository, sorted_, wall)
        work = Workset(
            repository,
            Outbox(session),
            partition=partition,
            scoring=self._scoring,
            standard=self._rulebook.standard,
            tiers=self._rulebook.tier,
            topics=self._topics,
        )
        part = await self._catch_up(work, part, wall, fresh)
        keep = {good.event.subject for good in fresh}
        await work.preload(keep)
        for good in fresh:
            part = await self._score(work, part, good, wall, keep)
        await work.flush()
        await Outbox(session).add(self._topics.dead_letters, sorted_.letters)
        await control.save_partition(replace(part, processed_at=wall))
        self._tally.add(
            partition,
            timestamps_ms=[record.timestamp for record in records],
            applied=len(fresh),
            reasons=sorted_.reasons,
            changes=work.emitted,
            last_event_time=part.last_event_time,
            wall=wall,
        )

    async def _catch_up(
        self, work: Workset, part: PartitionState, wall: datetime, fresh: list[_Good]
    ) -> PartitionState:
        standard = self._rulebook.standard
        moment = wall
        if self._clock == "event":
            moment = part.clock or (fresh[0].event.time if fresh else wall)
        day = local_day(moment, self._scoring.zone)
        if part.applied != standard.key:
            if part.applied is not None:
                same_rules = part.applied.split("@")[0] == standard.ruleset.version
                cause: ClockReason = "thresholds_refreshed" if same_rules else "ruleset_activated"
                await work.retier(day, moment, cause, standard.key)
                log.info("partition_retiered", partition=part.partition, standard=standard.key)
            part = replace(part, applied=standard.key)
        if self._clock == "wall" and (part.swept_day is None or day > part.swept_day):
            await work.sweep(day, moment)
            part = replace(part, swept_day=day)
        return part

    async def _score(
        self, work: Workset, part: PartitionState, good: _Good, wall: datetime, keep: set[str]
    ) -> PartitionState:
        event = good.event
        now = wall
        if self._clock == "event":
            now = max(part.clock or event.time, event.time)
            day = local_day(now, self._scoring.zone)
            if part.swept_day is None or day > part.swept_day:
                await work.sweep(day, now, keep)
                await work.preload(keep)
                part = replace(part, swept_day=day)
            part = replace(part, clock=now)
        else:
            day = part.swept_day or local_day(wall, self._scoring.zone)
        work.score(
            event.subject, good.fact, EventCause(event.source, event.id), clock_day=day, now=now
        )
        last = part.last_event_time
        return replace(part, last_event_time=event.time if last is None else max(last, event.time))

    def _sort(self, records: Sequence[Raw], wall: datetime) -> _Sorted:
        out = _Sorted()
        for record in records:
            try:
                out.good.append(self._decode(record))
            except _Poison as poison:
                out.reject(record, poison.reason, str(poison), wall)
        return out

    def _decode(self, record: Raw) -> _Good:
        headers = list(record.headers)
        kind = next((v for n, v in headers if n == "ce_type"), None)
        if kind is not None and kind.decode(errors="replace") not in EVENT_TYPES:
            raise _Poison(
                "unsupported_type",
                f"type {kind.decode(errors='replace')!r} is not one of {EVENT_TYPES}",
            )
        try:
            event = decode_event(headers, record.value)
        except UndecodableRecord as error:
            raise _Poison("undecodable", str(error)) from error
        except ValidationError as error:
            raise _Poison("invalid_event", _describe(error)) from error
        if record.key != event.subject.encode():
            raise _Poison(
                "invalid_event",
                f"the record key {record.key!r} is not the subject {event.subject!r}",
            )
        try:
            fact = fact_of(
                event, self._scoring.zone, self._scoring.base_currency, self._scoring.rates
            )
        except UnknownCurrency as error:
            raise _Poison("unknown_currency", str(error)) from error
        digest = hashlib.sha256(
            f"{event.type}|{event.subject}|{event.time.isoformat()}|".encode()
            + (record.value or b"")
        ).digest()
        return _Good(record, event, fact, digest)

    async def _dedupe(
        self, repository: ScorerRepository, sorted_: _Sorted, wall: datetime
    ) -> list[_Good]:
        """The events not applied before, in order; a reused id with other content (in this
        batch or before) is a dead letter, an exact repeat is skipped."""
        first: dict[tuple[str, str], _Good] = {}
        repeats: list[_Good] = []
        for good in sorted_.good:
            key = (good.event.source, good.event.id)
            if key in first:
                repeats.append(good)
            else:
                first[key] = good
        seen = await repository.record_events([(s, i, g.digest) for (s, i), g in first.items()])
        conflicts = [g for k, g in first.items() if seen[k] == "conflict"]
        conflicts += [g for g in repeats if g.digest != first[(g.event.source, g.event.id)].digest]
        for good in conflicts:
            sorted_.reject(
                good.record,
                "conflicting_duplicate",
                f"event {good.event.id!r} of {good.event.source!r} was already counted with "
                "different content; this version is not counted",
                wall,
            )
        return [g for k, g in first.items() if seen[k] == "new"]


class _Poison(ValueError):
    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}"
        for e in error.errors(include_url=False)
    )
