"""One batch on the compiled path (services/scorer/compiled.py): the same steps as the
Python path in handler.py — decode, dedupe, load, score in partition order, save, history —
with the per-event work in the compiled engine and the I/O here. A record the engine does
not decode goes through the Python decoding, which accepts it or names why it is poison."""

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import tierstream_native
from sqlalchemy.ext.asyncio import AsyncSession

from schemas.v1.deadletter import Reason
from services.effectively_once.record import Record
from services.rejections import Located
from services.scorer.compiled import change_of, instant, micros
from services.scorer.core.config import Scoring
from services.scorer.core.facts import local_day
from services.scorer.core.scoring import Standard
from services.scorer.core.state import Attribute
from services.scorer.decoding import Incoming, Poison, decode
from services.scorer.numbering import Numbering
from services.scorer.publisher import change_records
from services.scorer.rescoring import PAGE, TierLookup
from services.scorer.store.columns import ColumnRepository
from services.scorer.store.control import PartitionState
from services.scorer.store.seen import SeenRepository
from services.scorer.store.tiers import HistoryEntry, TierRepository

R = TypeVar("R", bound=Located)


class CompiledBatch:
    def __init__(
        self,
        engine: tierstream_native.Engine,
        session: AsyncSession,
        *,
        scoring: Scoring,
        standard: Standard,
        tiers: TierLookup,
        event_clock: bool,
    ) -> None:
        self._engine = engine
        self._saved: list[tuple[str, int]] = []
        self._session = session
        self._columns = ColumnRepository(session)
        self._scoring = scoring
        self._standard = standard
        self._tiers = tiers
        self._event_clock = event_clock
        self.spans: dict[int, tuple[int, int, int]] = {}  # partition -> (fresh, first, last µs)

    async def decode(
        self, batch: Mapping[int, Sequence[R]], reject: Callable[[R, Reason, str], None]
    ) -> None:
        """The records decoded and deduplicated; poison ones and reused ids with other
        content go to `reject`."""
        engine = self._engine
        engine.begin()
        records = [record for records in batch.values() for record in records]
        for index in engine.decode(records):
            record = records[index]
            try:
                event = decode(record.key, record.headers, record.value, self._scoring)
            except Poison as poison:
                reject(record, poison.reason, str(poison))
                continue
            _put(engine, index, record.partition, event)
        statuses = await SeenRepository(self._session).record(*engine.identities())
        for index, source, event_id in engine.seen(statuses):
            reject(
                records[index],
                "conflicting_duplicate",
                f"event {event_id!r} of {source!r} was already counted with different "
                "content; this version is not counted",
            )
        self.spans = engine.spans()

    def saved(self) -> list[tuple[str, int]]:
        """The customers `score` saved (those the batch's events changed), with their
        partition."""
        return self._saved

    def first_time(self, partition: int) -> datetime | None:
        span = self.spans.get(partition)
        return None if span is None else instant(span[1])

    async def score(
        self, parts: Mapping[int, PartitionState], wall: datetime, numbering: Numbering
    ) -> list[tuple[str | None, str]]:
        """Every fresh event applied and judged, the customers saved, the changes numbered
        in the history; returns the changes' (from tier, to tier)."""
        engine = self._engine
        engine.load(await self._columns.load(*engine.subjects()))
        if self._event_clock:  # the sweeps inside this batch then run in memory
            for partition, (_, _, last) in self.spans.items():
                await self._load_due(partition, local_day(instant(last), self._scoring.zone))
        given = [_given(parts[p]) for p in self.spans]
        for p, clock, swept, latest in engine.score(given, micros(wall), self._event_clock):
            part = parts[p]
            part.clock = None if clock is None else instant(clock)
            part.swept_day = swept
            part.last_event_time = None if latest is None else instant(latest)
        columns, counts = engine.rows()
        self._saved = list(zip(columns[0], columns[5], strict=True))
        await self._columns.save(columns)
        tiers = TierRepository(self._session)
        await tiers.count_tiers({(p, tier): delta for p, tier, delta in counts})
        return await self._record(engine.changes(), tiers, numbering)

    async def _record(
        self, changes: list[Any], tiers: TierRepository, numbering: Numbering
    ) -> list[tuple[str | None, str]]:
        """The changes into the history, in order, numbered in their partitions: records
        the engine built, and those of changes it left to the Python publisher."""
        history, moves = [], []
        for item in changes:
            if item[0]:
                _, p, change_id, customer, at, key, value, headers, last, last_headers = item[:10]
                seq = numbering.next(
                    p, Record(key, value, headers), Record(key, last, last_headers)
                )
                history.append(HistoryEntry(change_id, customer, instant(at), value, p, seq))
                moves.append((item[10], item[11]))
            else:
                p, change = item[1], change_of(item[2:], self._standard, self._tiers)
                one, other = change_records(change, self._scoring.zone)
                seq = numbering.next(p, one, other)
                history.append(
                    HistoryEntry(
                        change.change_id, change.customer_id, change.after.since, one.value, p, seq
                    )
                )
                moves.append(
                    (None if change.before is None else change.before.tier.id, change.after.tier.id)
                )
        await tiers.add_history(history)
        return moves

    async def _load_due(self, partition: int, day: int) -> None:
        after = ""
        while page := await self._columns.due(partition, day, after, PAGE):
            self._engine.load(page)
            after = page[-1][0]
            if len(page) < PAGE:
                break


def _given(part: PartitionState) -> tuple[int, int | None, int | None, int | None]:
    """A partition's clock, swept day and latest event time, as the engine takes them."""
    clock, last = part.clock, part.last_event_time
    return (
        part.partition,
        None if clock is None else micros(clock),
        part.swept_day,
        None if last is None else micros(last),
    )


def _put(engine: tierstream_native.Engine, index: int, partition: int, event: Incoming) -> None:
    fact = event.fact
    profile = fact.profile
    engine.put(
        index,
        partition,
        event.source,
        event.id,
        event.subject,
        micros(event.time),
        event.digest,
        fact.day,
        fact.kind,
        fact.amount,
        fact.channel,
        fact.action,
        fact.actor,
        _pairs(fact.attributes),
        None if profile is None else (*profile.order, profile.team, _pairs(profile.attributes)),
    )


def _pairs(attributes: Mapping[str, Attribute]) -> list[tuple[str, Attribute]]:
    return list(attributes.items())
