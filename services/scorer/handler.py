"""The scorer's handler for the careful loop (services/effectively_once/loop.py): decode, dedupe,
load, call the pure core, save, put the tier changes in the history (numbered, published from
there by services/scorer/history_relay.py) and dead letters in the outbox. It runs inside the
loop's transaction, which also advances the partition offsets, so all of it commits or none.

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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from schemas.v1.deadletter import Reason
from services.effectively_once.loop import Batch
from services.effectively_once.outbox import Outbox
from services.effectively_once.record import Record
from services.rejections import Located, rejected
from services.scorer.compiled import Compiled
from services.scorer.compiled_batch import CompiledBatch
from services.scorer.compiled_rescoring import CompiledRescoring
from services.scorer.core.config import Scoring
from services.scorer.core.facts import local_day
from services.scorer.core.scoring import ClockReason, EventCause, Standard
from services.scorer.decoding import Incoming, Poison, decode
from services.scorer.metrics import ScorerMetrics, Tally
from services.scorer.numbering import Numbering, Run
from services.scorer.shadow import ShadowRun, Shadows, ShadowWork
from services.scorer.standards import Standards
from services.scorer.store.columns import ColumnRepository
from services.scorer.store.control import ControlRepository, PartitionState
from services.scorer.store.customers import ScorerRepository
from services.scorer.store.tiers import TierRepository
from services.scorer.workset import OutTopics, Workset

log = structlog.get_logger()
ClockMode = Literal["wall", "event"]
# Customers re-tiered or swept per transaction (one batch or one maintenance pass): a few
# seconds of work at most, far below the consumer's poll interval.
BUDGET = 20_000
FORGET_BATCH = 10_000  # events seen forgotten per maintenance pass, past their retention
FORGET_EVERY = timedelta(seconds=60)  # between passes, unless the last one was full


class Raw(Located, Protocol):
    """The fields of an aiokafka ConsumerRecord the scorer reads: where it was read, its key,
    value and headers (`Located`), and its time."""

    @property
    def timestamp(self) -> int: ...  # ms; CreateTime, set by ingest's producer


class Rescoring(Protocol):
    """The re-tier and the sweep from storage: the work set's (Python core) or the compiled
    path's (services/scorer/compiled_rescoring.py)."""

    async def sweep(
        self, partition: int, day: int, now: datetime, *, budget: int
    ) -> tuple[bool, int]: ...

    async def retier(
        self,
        partition: int,
        day: int,
        now: datetime,
        cause: ClockReason,
        detail: str,
        *,
        after: str,
        budget: int,
    ) -> tuple[str | None, int]: ...


@dataclass(frozen=True, slots=True)
class Committed:
    """What a committed transaction left to publish: its tier changes, numbered in their
    partitions, and whether it put dead letters in the outbox."""

    runs: Mapping[int, Run]
    letters: bool


@dataclass(frozen=True, slots=True)
class _Good:
    record: Raw
    event: Incoming


@dataclass(slots=True)
class _Sorted:
    good: list[_Good] = field(default_factory=list)
    letters: list[Record] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def reject(self, record: Raw, reason: Reason, error: str, wall: datetime) -> None:
        self.letters.append(rejected(record, reason, error, "scorer", wall))
        self.reasons.append(reason)
        log.warning("dead_letter", partition=record.partition, offset=record.offset, reason=reason)


class ScorerHandler:
    def __init__(
        self,
        *,
        topic: str,
        scoring: Scoring,
        standards: Standards,
        topics: OutTopics,
        clock: ClockMode,
        now: Callable[[], datetime],
        metrics: ScorerMetrics,
        budget: int = BUDGET,
        retention_days: int | None = None,
        compiled: Compiled | None = None,
        refreshes: bool = True,
        shadows: Shadows | None = None,
    ) -> None:
        self._topic = topic
        self._scoring = scoring
        self._standards = standards
        self._topics = topics
        self._clock = clock
        self._now = now
        self._metrics = metrics
        self._tally = Tally()
        self._per_transaction = budget
        self._retention_days = retention_days
        self._forget_at = datetime.min.replace(tzinfo=UTC)  # the next pass of forgetting
        self._budget = budget
        self._compiled = compiled
        self._refreshes = refreshes
        self._shadows = shadows
        self.more = False  # re-tier or sweep work left after the last transaction
        self._numbering = Numbering({})  # the transaction's tier changes
        self._letters = False

    async def __call__(self, session: AsyncSession, batch: Batch) -> None:
        await self._process(session, {tp.partition: records for tp, records in batch.items()})

    async def maintain(self, session: AsyncSession, partitions: Sequence[int]) -> bool:
        """Between batches: refresh the standard (unless another handler of the instance
        does: one of its maintenance lanes, see services/scorer/main.py), then re-tier and
        sweep idle partitions. True when work is left for the next transaction."""
        wall = self._now()
        if self._refreshes:
            today = local_day(wall, self._scoring.zone)
            standard = await self._standards.refresh(session, today, wall)
            if self._shadows is not None:
                await self._shadows.refresh(session, standard, today)
        await self._process(session, dict.fromkeys(partitions, ()))
        if self._retention_days is not None and wall >= self._forget_at:
            forgotten = await ScorerRepository(session).forget_events(
                self._retention_days, FORGET_BATCH
            )
            self._forget_at = wall if forgotten == FORGET_BATCH else wall + FORGET_EVERY
        return self.more

    def committed(self) -> Committed:
        """Called by the loop once the transaction committed: only now do metrics move, and
        what it wrote may be published."""
        self._metrics.record(self._tally)
        self._tally = Tally()
        done = Committed(self._numbering.runs, self._letters)
        self._numbering, self._letters = Numbering({}), False
        return done

    async def _process(self, session: AsyncSession, batch: Mapping[int, Sequence[Raw]]) -> None:
        """The whole batch with a fixed number of round trips to PostgreSQL (not one set
        per partition), except for sweeps and re-tiers, which are per partition. The
        per-event work runs in the compiled engine when it carries the standard
        (services/scorer/compiled_batch.py), else in the Python core; both take the same
        steps in the same order."""
        self._tally = Tally()
        self._budget = self._per_transaction
        self.more = False
        control = ControlRepository(session, self._topic)
        wall = self._now()
        stored = await control.partitions(list(batch))
        parts = {p: stored.get(p) or PartitionState(p) for p in batch}
        numbering = self._numbering = Numbering(parts)
        self._letters = False
        standard = self._standards.standard
        work = Workset(
            ScorerRepository(session),
            TierRepository(session),
            numbering,
            scoring=self._scoring,
            standard=standard,
            tiers=self._standards.tier,
        )
        sorted_ = {p: _Sorted() for p in batch}
        engine = None
        if self._compiled is not None:
            engine = self._compiled.engine(standard, self._standards.known)
        compiled: CompiledBatch | None = None
        fresh: dict[int, list[_Good]] = {}
        firsts: dict[int, datetime | None]
        if engine is None:
            sorted_ = {p: self._sort(records, wall) for p, records in batch.items()}
            fresh = await self._dedupe(ScorerRepository(session), list(sorted_.values()), wall)
            firsts = {p: goods[0].event.time for p, goods in fresh.items() if goods}
            applied = {p: len(goods) for p, goods in fresh.items()}
        else:
            compiled = CompiledBatch(
                engine,
                session,
                scoring=self._scoring,
                standard=standard,
                tiers=self._standards.tier,
                event_clock=self._clock == "event",
            )
            await compiled.decode(
                batch,
                lambda record, reason, error: sorted_[record.partition].reject(
                    record, reason, error, wall
                ),
            )
            firsts = {p: compiled.first_time(p) for p in compiled.spans}
            applied = {p: span[0] for p, span in compiled.spans.items()}
        rescoring: Rescoring = work
        if engine is not None:
            rescoring = CompiledRescoring(
                engine, ColumnRepository(session), TierRepository(session)
            )
        for p in batch:
            parts[p] = await self._catch_up(
                session, rescoring, parts[p], standard, wall, firsts.get(p)
            )
        if compiled is None:
            await self._score_all(work, parts, fresh, wall)
            await work.flush()
        else:  # the re-tier's and sweep's rows are written: the engine loads them
            self._tally.add_transitions(await compiled.score(parts, wall, numbering))
        shadow = self._shadow(standard)
        if shadow is not None:
            keys = compiled.saved() if compiled is not None else _subjects(fresh)
            await ShadowWork(session, shadow, self._scoring).customers(
                keys, {p: self._moment(parts[p], wall, None) for p in batch}
            )
        letters = [letter for one in sorted_.values() for letter in one.letters]
        await Outbox(session).add(self._topics.dead_letters, letters)
        self._letters = bool(letters)
        for part in parts.values():
            part.processed_at = wall
        await control.save_partitions(list(parts.values()))
        for p, records in batch.items():
            self._tally.add(
                p,
                timestamps_ms=[record.timestamp for record in records],
                applied=applied.get(p, 0),
                reasons=sorted_[p].reasons,
                changes=(),
                last_event_time=parts[p].last_event_time,
                wall=wall,
            )
        self._tally.add_changes(work.emitted)

    async def _score_all(
        self,
        work: Workset,
        parts: Mapping[int, PartitionState],
        fresh: Mapping[int, list[_Good]],
        wall: datetime,
    ) -> None:
        """The Python path: every fresh event scored by the Python core, in order."""
        await work.preload(
            {(good.event.subject, p) for p, goods in fresh.items() for good in goods}
        )
        if self._clock == "event":  # the sweeps inside this batch then run in memory
            for p, goods in fresh.items():
                if goods:
                    last = max(good.event.time for good in goods)
                    await work.load_due(p, local_day(last, self._scoring.zone))
        for p, goods in fresh.items():
            for good in goods:
                self._score(work, parts[p], good, wall)

    async def _catch_up(  # noqa: PLR0917 - the partition's whole catching up
        self,
        session: AsyncSession,
        work: Rescoring,
        part: PartitionState,
        standard: Standard,
        wall: datetime,
        first: datetime | None,
    ) -> PartitionState:
        """A pending re-tier, then a pending day-boundary sweep, within the transaction's
        budget of customers; what is left is done by the next transactions (the loop runs
        maintenance again at once while `more` is set), never one transaction so long that
        the consumer would miss its poll interval and lose its partitions. `standard`: the
        one the transaction read once (a lane refreshing it meanwhile changes nothing here)."""
        moment = self._moment(part, wall, first)
        day = local_day(moment, self._scoring.zone)
        if part.applied != standard.key:
            # a partition scored for the first time, or one that applied this standard
            # before its key held the activation (revisions before 0010)
            if part.applied is None or part.applied == standard.legacy_key:
                part.applied = standard.key
            elif not await self._retier(work, part, standard, day, moment):
                return part
        if self._clock == "wall" and (part.swept_day is None or day > part.swept_day):
            if self._budget <= 0:
                self.more = True
                return part
            done, examined = await work.sweep(part.partition, day, moment, budget=self._budget)
            self._budget -= examined
            if done:
                part.swept_day = day
            else:
                self.more = True
                return part
        shadow = self._shadow(standard)
        if shadow is not None and (
            part.shadow_key != shadow.key(day) or part.shadow_after is not None
        ):
            await self._shadow_pass(session, part, shadow, day, moment)
        return part

    def _moment(self, part: PartitionState, wall: datetime, first: datetime | None) -> datetime:
        """The partition's now: the wall clock, or in event-clock mode its latest event
        time (before any: the batch's first event's)."""
        if self._clock == "event":
            return part.clock or first or wall
        return wall

    def _shadow(self, standard: Standard) -> ShadowRun | None:
        """The shadow run to evaluate beside `standard` (None: none runs, or it was made for
        another standard and the refreshing handler has not rebuilt it yet: the partitions'
        passes for the new standard then count every customer again)."""
        shadow = None if self._shadows is None else self._shadows.current
        return shadow if shadow is not None and shadow.standard == standard.key else None

    async def _shadow_pass(
        self,
        session: AsyncSession,
        part: PartitionState,
        shadow: ShadowRun,
        day: int,
        moment: datetime,
    ) -> None:
        """One bounded step of the partition's shadow pass (a new key starts one over:
        `shadow_after` is "" until its first step, None once it is complete)."""
        if self._budget <= 0:
            self.more = True
            return
        key = shadow.key(day)
        if part.shadow_key != key:
            part.shadow_key, part.shadow_after = key, ""
        cursor, examined = await ShadowWork(session, shadow, self._scoring).page(
            part.partition, part.shadow_after or "", self._budget, moment, day
        )
        self._budget -= examined
        part.shadow_after = cursor
        if cursor is not None:
            self.more = True

    async def _retier(
        self, work: Rescoring, part: PartitionState, standard: Standard, day: int, moment: datetime
    ) -> bool:
        """One bounded step of the partition's re-tier; True once it is complete."""
        assert part.applied is not None  # noqa: S101 - checked by the caller
        key = standard.key
        same_rules = standard.same_activation(part.applied)
        cause: ClockReason = "thresholds_refreshed" if same_rules else "ruleset_activated"
        if self._budget <= 0:
            self.more = True
            return False
        if part.retier_for != key:
            # a re-tier for another standard (one activated while it ran) starts again
            part.retier_after, part.retier_done = None, 0
        cursor, examined = await work.retier(
            part.partition,
            day,
            moment,
            cause,
            key,
            after=part.retier_after or "",
            budget=self._budget,
        )
        self._budget -= examined
        part.retier_after = cursor
        part.retier_for = None if cursor is None else key
        part.retier_done = 0 if cursor is None else part.retier_done + examined
        if cursor is not None:
            self.more = True
            return False
        part.applied = key
        log.info("partition_retiered", partition=part.partition, standard=key)
        return True

    def _score(self, work: Workset, part: PartitionState, good: _Good, wall: datetime) -> None:
        event = good.event
        now = wall
        if self._clock == "event":
            now = event.time if part.clock is None else max(part.clock, event.time)
            day = local_day(now, self._scoring.zone)
            if part.swept_day is None or day > part.swept_day:
                work.sweep_loaded(part.partition, day, now)
                part.swept_day = day
            part.clock = now
        else:
            day = local_day(wall, self._scoring.zone)
        work.score(
            event.subject,
            part.partition,
            event.fact,
            EventCause(event.source, event.id),
            clock_day=day,
            now=now,
        )
        last = part.last_event_time
        if last is None or event.time > last:
            part.last_event_time = event.time

    def _sort(self, records: Sequence[Raw], wall: datetime) -> _Sorted:
        out = _Sorted()
        for record in records:
            try:
                out.good.append(
                    _Good(record, decode(record.key, record.headers, record.value, self._scoring))
                )
            except Poison as poison:
                out.reject(record, poison.reason, str(poison), wall)
        return out

    async def _dedupe(
        self, repository: ScorerRepository, sorted_: list[_Sorted], wall: datetime
    ) -> dict[int, list[_Good]]:
        """The events not applied before, per partition in order; a reused id with other
        content (in this batch or before) is a dead letter, an exact repeat is skipped."""
        first: dict[tuple[str, str], _Good] = {}
        repeats: list[tuple[_Sorted, _Good]] = []
        owner: dict[tuple[str, str], _Sorted] = {}
        for one in sorted_:
            for good in one.good:
                key = (good.event.source, good.event.id)
                if key in first:
                    repeats.append((one, good))
                else:
                    first[key] = good
                    owner[key] = one
        seen = await repository.record_events(
            [(s, i, g.event.digest) for (s, i), g in first.items()]
        )
        conflicts = [(owner[k], g) for k, g in first.items() if seen[k] == "conflict"]
        conflicts += [
            (one, g)
            for one, g in repeats
            if g.event.digest != first[(g.event.source, g.event.id)].event.digest
        ]
        for one, good in conflicts:
            one.reject(
                good.record,
                "conflicting_duplicate",
                f"event {good.event.id!r} of {good.event.source!r} was already counted with "
                "different content; this version is not counted",
                wall,
            )
        fresh: dict[int, list[_Good]] = {}
        for key, good in first.items():
            if seen[key] == "new":
                fresh.setdefault(good.record.partition, []).append(good)
        return fresh


def _subjects(fresh: Mapping[int, Sequence[_Good]]) -> set[tuple[str, int]]:
    """The customers of the events a batch applied, with their partition."""
    return {(good.event.subject, p) for p, goods in fresh.items() for good in goods}
