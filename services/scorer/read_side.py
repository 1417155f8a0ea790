"""The read side of the scorer API (SPEC §3): load, derive with the pure core, answer.

A customer's answer carries its stored tier and the "why": the features at `as_of`
(default: the scorer's today, i.e. the later of the clock's day and the customer's latest
day), the R/F/M levels with the thresholds they were compared to, and the tier the active
ruleset matches for them (the same as the stored tier except within the moments between a
day boundary and its sweep, or a new ruleset and its re-tier).
"""

from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

import orjson
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from schemas.v1 import tiers as contract
from services.db.unit_of_work import unit_of_work
from services.effectively_once.offsets import OffsetStore
from services.effectively_once.outbox import Outbox
from services.scorer.answers import CustomerAnswer, Held, PartitionStatus, Status, Why
from services.scorer.core import codec
from services.scorer.core.config import Scoring
from services.scorer.core.facts import local_day
from services.scorer.core.rules import evaluate, scored
from services.scorer.core.scoring import (
    Hold,
    NoTier,
    Standing,
    held,
    inputs,
    tier_contract,
    to_features,
    to_scores,
)
from services.scorer.core.state import OutsideHistory
from services.scorer.lifecycle import progress_in
from services.scorer.lifecycle_answers import progress_answer
from services.scorer.standards import Standards
from services.scorer.store.control import ControlRepository
from services.scorer.store.customers import ScorerRepository
from services.scorer.store.history import HistoryRepository
from services.scorer.store.tiers import TierRepository


class AsOfOutOfRange(ValueError):
    pass


class Queries:
    def __init__(
        self,
        make_session: async_sessionmaker[AsyncSession],
        standards: Standards,
        scoring: Scoring,
        *,
        topic: str,
        consumer: str,
        clock: Literal["wall", "event"],
        now: Callable[[], datetime],
    ) -> None:
        self._sessions = make_session
        self._standards = standards
        self._scoring = scoring
        self._topic = topic
        self._consumer = consumer
        self._clock = clock
        self._now = now

    @property
    def topic(self) -> str:
        return self._topic

    async def ping(self) -> str | None:
        try:
            async with unit_of_work(self._sessions) as session:
                await ScorerRepository(session).ping()
        except (OSError, SQLAlchemyError) as error:
            return f"database not reachable: {type(error).__name__}"
        return None

    async def customer(self, customer_id: str, as_of: datetime | None) -> CustomerAnswer | None:
        async with unit_of_work(self._sessions) as session:
            stored = await ScorerRepository(session).find(customer_id)
            if (
                stored is None
                or stored.state is None
                or stored.tier is None
                or stored.tier_since is None
            ):
                return None
            clock = self._now()
            if self._clock == "event":
                part = await ControlRepository(session, self._topic).partitions([stored.partition])
                clock = (
                    part[stored.partition].clock if stored.partition in part else None
                ) or clock
        state = codec.decode(stored.state, self._scoring.windows)
        zone = self._scoring.zone
        day = local_day(as_of, zone) if as_of else max(local_day(clock, zone), state.anchor)
        standard = self._standards.standard
        ruleset = standard.ruleset
        try:
            found = inputs(state, day, self._scoring.windows, ruleset, standard.tracking)
        except OutsideHistory as error:
            raise AsOfOutOfRange(str(error)) from error
        match = evaluate(ruleset, found, standard.thresholds)
        if match is None:
            raise NoTier(f"no tier matched customer {customer_id} under {standard.key}")
        tier = self._standards.tier(stored.ruleset_version or ruleset.version, stored.tier)
        hold = held(
            ruleset,
            found,
            thresholds=standard.thresholds,
            standing=Standing(tier, stored.tier_since, stored.ruleset_version or ""),
            candidate=match.tier,
            zone=zone,
        )
        profile = state.profile
        t = standard.thresholds
        return CustomerAnswer(
            customer_id=customer_id,
            tier=tier_contract(tier),
            since=stored.tier_since,
            change_id=stored.change_id,
            why=Why(
                ruleset_version=standard.ruleset.version,
                matched_rule=match.tier.id,
                features=to_features(found, zone, ruleset.plan.aggregates),
                levels=contract.Levels(
                    recency=match.levels.recency,
                    frequency=match.levels.frequency,
                    monetary=match.levels.monetary,
                    segment=match.levels.segment,
                ),
                thresholds=contract.Thresholds(
                    mode=standard.ruleset.mode,
                    recency_days=Decimal(t.recency_days),
                    frequency=Decimal(t.frequency),
                    monetary=Decimal(t.monetary) / 100,
                ),
                scores=to_scores(scored(ruleset, found)),
                held=None if hold is None else _held(hold),
                team=None if profile is None else profile.team,
                attributes={} if profile is None else dict(profile.attributes),
            ),
        )

    async def in_tier(self, tier: str, after: str, limit: int) -> list[tuple[str, datetime]]:
        async with unit_of_work(self._sessions) as session:
            return await TierRepository(session).in_tier(tier, after, limit)

    async def history(self, customer_id: str) -> list[dict[str, Any]] | None:
        async with unit_of_work(self._sessions) as session:
            entries = await TierRepository(session).history(customer_id)
        return [orjson.loads(entry.payload) for entry in entries] or None

    async def pending_outbox(self) -> int:
        """Records written and not yet on Kafka: dead letters in the outbox, and two per tier
        change past its partition's mark (services/scorer/history_relay.py)."""
        async with unit_of_work(self._sessions) as session:
            return await _pending(session, self._topic)

    async def tier_counts(self) -> dict[str, int]:
        async with unit_of_work(self._sessions) as session:
            return await TierRepository(session).tier_counts()

    async def status(self, end_offsets: Mapping[int, int]) -> Status:
        async with unit_of_work(self._sessions) as session:
            positions = await OffsetStore(session, self._consumer, self._topic).positions()
            parts = await ControlRepository(session, self._topic).partitions()
            pending = await _pending(session, self._topic)
            progress = await progress_in(session, self._topic)
        rows = []
        for partition in sorted(set(end_offsets) | set(positions) | set(parts)):
            end = end_offsets.get(partition)
            committed = positions.get(partition)
            part = parts.get(partition)
            rows.append(
                PartitionStatus(
                    partition=partition,
                    committed_offset=committed,
                    end_offset=end,
                    lag=None if end is None else max(end - (committed or 0), 0),
                    last_event_time=part.last_event_time if part else None,
                    processed_at=part.processed_at if part else None,
                )
            )
        times = [row.last_event_time for row in rows if row.last_event_time is not None]
        return Status(
            ruleset_version=self._standards.standard.label,
            clock=self._clock,
            partitions=rows,
            last_event_time=max(times, default=None),
            outbox_pending=pending,
            retier=None if progress is None else progress_answer(progress),
        )


async def _pending(session: AsyncSession, topic: str) -> int:
    changes = await HistoryRepository(session, topic).pending_count()
    return await Outbox(session).pending_count() + 2 * changes


def _held(hold: Hold) -> Held:
    until = None if hold.until is None else date.fromordinal(hold.until)
    note = "held by stay_while" if until is None else f"held until {until.isoformat()}"
    return Held(by=hold.by, candidate=hold.candidate.id, until=until, note=note)
