"""The scorer's control data in SQL: each partition's clock and what it has applied, the
rulesets (the active one is the last activated) and the population thresholds.
Repositories take the caller's session and never commit."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(slots=True)
class PartitionState:
    """Mutable: the handler moves it record by record, then saves it with the batch."""

    partition: int
    clock: datetime | None = None  # replay mode: the latest event time seen
    swept_day: int | None = None  # time-driven changes are emitted up to this day
    applied: str | None = None  # the ruleset version (and thresholds) customers were scored with
    last_event_time: datetime | None = None
    processed_at: datetime | None = None
    retier_after: str | None = None  # a re-tier in progress continues after this customer
    history_seq: int = 0  # the number of the partition's last tier change (tier_history.pseq)
    retier_for: str | None = None  # the standard's key the re-tier in progress is for
    retier_done: int = 0  # customers the re-tier in progress has examined (its progress)
    shadow_key: str | None = None  # the shadow pass (services/scorer/shadow.py) it is for
    shadow_after: str | None = None  # its cursor; None once complete, "" at its start


@dataclass(frozen=True, slots=True)
class StoredRuleset:
    version: str
    body: str
    activated_at: datetime | None
    activation: int | None = None  # the number of its latest activation (a sequence)


@dataclass(frozen=True, slots=True)
class StoredThresholds:
    recency_days: int
    frequency: int
    monetary: int
    stale: bool = False  # older than the refresh interval, by the database's clock
    generation: int = 0  # grows each time the values change


class VersionConflict(ValueError):
    """A ruleset version that is already stored with a different body."""


_PARTITIONS = text("""
    SELECT partition, clock, swept_day, applied, last_event_time, processed_at, retier_after,
           history_seq, retier_for, retier_done, shadow_key, shadow_after
    FROM scorer_partitions WHERE topic = :topic AND partition = ANY(:partitions)
""")
_ALL_PARTITIONS = text("""
    SELECT partition, clock, swept_day, applied, last_event_time, processed_at, retier_after,
           history_seq, retier_for, retier_done, shadow_key, shadow_after
    FROM scorer_partitions WHERE topic = :topic ORDER BY partition
""")
_SAVE_PARTITION = text("""
    INSERT INTO scorer_partitions
        (topic, partition, clock, swept_day, applied, last_event_time, processed_at,
         retier_after, history_seq, retier_for, retier_done, shadow_key, shadow_after)
    SELECT :topic, * FROM unnest(CAST(:partitions AS int[]), CAST(:clocks AS timestamptz[]),
        CAST(:swept AS int[]), CAST(:applied AS text[]), CAST(:last AS timestamptz[]),
        CAST(:processed AS timestamptz[]), CAST(:retier_after AS text[]),
        CAST(:history_seq AS bigint[]), CAST(:retier_for AS text[]),
        CAST(:retier_done AS bigint[]), CAST(:shadow_key AS text[]),
        CAST(:shadow_after AS text[]))
    ON CONFLICT (topic, partition) DO UPDATE SET
        clock = excluded.clock, swept_day = excluded.swept_day, applied = excluded.applied,
        last_event_time = excluded.last_event_time, processed_at = excluded.processed_at,
        retier_after = excluded.retier_after, history_seq = excluded.history_seq,
        retier_for = excluded.retier_for, retier_done = excluded.retier_done,
        shadow_key = excluded.shadow_key, shadow_after = excluded.shadow_after
""")
_ACTIVE = text("""
    SELECT version, body, activated_at, activation FROM rulesets WHERE activation IS NOT NULL
    ORDER BY activation DESC LIMIT 1
""")
_RULESET = text("""
    SELECT version, body, activated_at, activation FROM rulesets WHERE version = :version
""")
_OTHERS = text("""
    SELECT version, body, activated_at, activation FROM rulesets
    WHERE activation IS NOT NULL AND NOT version = ANY(:known)
""")
_STORE = text("""
    INSERT INTO rulesets (version, body, stored_by) VALUES (:version, :body, :actor)
    ON CONFLICT (version) DO NOTHING
""")
# the streams of an activated ruleset: tracked from this activation on, unless already tracked
_TRACK = text("""
    INSERT INTO feature_streams (key, since_activation, tracked)
    SELECT k, :activation, true FROM unnest(CAST(:keys AS text[])) AS k
    ON CONFLICT (key) DO UPDATE SET
        since_activation = CASE WHEN feature_streams.tracked
                                THEN feature_streams.since_activation
                                ELSE excluded.since_activation END,
        tracked = true
""")
_UNTRACK = text("""
    UPDATE feature_streams SET tracked = false
    WHERE tracked AND NOT key = ANY(CAST(:keys AS text[]))
""")
_TRACKED = text("SELECT key, since_activation FROM feature_streams WHERE tracked")
# every activation takes the next number, also a re-activation of an earlier version
_ACTIVATE = text("""
    WITH activated AS (
        UPDATE rulesets
        SET activated_at = clock_timestamp(), activation = nextval('ruleset_activations')
        WHERE version = :version
        RETURNING version, body, activated_at, activation
    ), logged AS (
        INSERT INTO ruleset_activation_log (activation, version, at, actor, cause)
        SELECT activation, version, activated_at, :actor, :cause FROM activated
    )
    SELECT version, body, activated_at, activation FROM activated
""")
_THRESHOLDS = text("""
    SELECT recency_days, frequency, monetary, generation,
           computed_at < clock_timestamp() - make_interval(secs => :refresh) AS stale
    FROM population_thresholds
""")
# the generation grows when the values change (and only then: a refresh that finds the
# same means re-tiers no one)
_SAVE_THRESHOLDS = text("""
    INSERT INTO population_thresholds
        (id, recency_days, frequency, monetary, computed_at, generation)
    VALUES (1, :recency_days, :frequency, :monetary, clock_timestamp(), 1)
    ON CONFLICT (id) DO UPDATE SET recency_days = excluded.recency_days,
        frequency = excluded.frequency, monetary = excluded.monetary,
        computed_at = excluded.computed_at,
        generation = population_thresholds.generation + CASE
            WHEN (population_thresholds.recency_days, population_thresholds.frequency,
                  population_thresholds.monetary)
               = (excluded.recency_days, excluded.frequency, excluded.monetary)
            THEN 0 ELSE 1 END
    RETURNING generation
""")
_LOCK_THRESHOLDS = text("SELECT pg_try_advisory_xact_lock(7346212002)")


class ControlRepository:
    def __init__(self, session: AsyncSession, topic: str) -> None:
        self._session = session
        self._topic = topic

    async def partitions(self, partitions: list[int] | None = None) -> dict[int, PartitionState]:
        if partitions is None:
            rows = await self._session.execute(_ALL_PARTITIONS, {"topic": self._topic})
        else:
            rows = await self._session.execute(
                _PARTITIONS, {"topic": self._topic, "partitions": partitions}
            )
        return {
            row.partition: PartitionState(
                row.partition,
                row.clock,
                row.swept_day,
                row.applied,
                row.last_event_time,
                row.processed_at,
                row.retier_after,
                row.history_seq,
                row.retier_for,
                row.retier_done,
                row.shadow_key,
                row.shadow_after,
            )
            for row in rows
        }

    async def save_partitions(self, states: list[PartitionState]) -> None:
        if states:
            await self._session.execute(
                _SAVE_PARTITION,
                {
                    "topic": self._topic,
                    "partitions": [s.partition for s in states],
                    "clocks": [s.clock for s in states],
                    "swept": [s.swept_day for s in states],
                    "applied": [s.applied for s in states],
                    "last": [s.last_event_time for s in states],
                    "processed": [s.processed_at for s in states],
                    "retier_after": [s.retier_after for s in states],
                    "history_seq": [s.history_seq for s in states],
                    "retier_for": [s.retier_for for s in states],
                    "retier_done": [s.retier_done for s in states],
                    "shadow_key": [s.shadow_key for s in states],
                    "shadow_after": [s.shadow_after for s in states],
                },
            )

    async def active_ruleset(self) -> StoredRuleset | None:
        row = (await self._session.execute(_ACTIVE)).one_or_none()
        return None if row is None else _ruleset(row)

    async def ruleset(self, version: str) -> StoredRuleset | None:
        row = (await self._session.execute(_RULESET, {"version": version})).one_or_none()
        return None if row is None else _ruleset(row)

    async def rulesets_missing(self, known: list[str]) -> list[StoredRuleset]:
        """The activated rulesets other than `known` ones."""
        rows = await self._session.execute(_OTHERS, {"known": known})
        return [_ruleset(row) for row in rows]

    async def store_ruleset(self, version: str, body: str, actor: str = "configuration") -> None:
        """Keeps a version's text (stored by `actor`, unless stored before); a version is
        immutable once stored."""
        await self._session.execute(_STORE, {"version": version, "body": body, "actor": actor})
        stored = await self.ruleset(version)
        if stored is None or stored.body != body:
            raise VersionConflict(
                f"ruleset version {version!r} is already stored with a different text: "
                "give the changed ruleset a new version"
            )

    async def activate(
        self,
        version: str,
        body: str,
        streams: Sequence[str] = (),
        actor: str = "configuration",
        cause: str = "configuration",
    ) -> StoredRuleset:
        """Makes `version` the active ruleset under a new activation number, kept in the
        activation log with `actor` and `cause`; its declared `streams` are tracked from it
        on (those tracked already, without a gap, stay as they were), and the streams it
        does not use are no longer tracked."""
        await self.store_ruleset(version, body, actor)
        found = await self._session.execute(
            _ACTIVATE, {"version": version, "actor": actor, "cause": cause}
        )
        active = _ruleset(found.one())
        keys = list(streams)
        await self._session.execute(_TRACK, {"keys": keys, "activation": active.activation})
        await self._session.execute(_UNTRACK, {"keys": keys})
        return active

    async def tracked_streams(self) -> dict[str, int]:
        """The streams tracked now, with the activation each has been tracked since."""
        rows = await self._session.execute(_TRACKED)
        return {row.key: row.since_activation for row in rows}

    async def population_thresholds(self, refresh_s: float) -> StoredThresholds | None:
        row = (await self._session.execute(_THRESHOLDS, {"refresh": refresh_s})).one_or_none()
        if row is None:
            return None
        return StoredThresholds(
            row.recency_days, row.frequency, row.monetary, row.stale, row.generation
        )

    async def lock_population(self) -> bool:
        """True when this transaction may recompute the population thresholds."""
        return bool(await self._session.scalar(_LOCK_THRESHOLDS))

    async def save_population_thresholds(self, thresholds: StoredThresholds) -> int:
        """Stores the thresholds; returns their generation."""
        generation = await self._session.scalar(
            _SAVE_THRESHOLDS,
            {
                "recency_days": thresholds.recency_days,
                "frequency": thresholds.frequency,
                "monetary": thresholds.monetary,
            },
        )
        return int(generation)


def _ruleset(row: Any) -> StoredRuleset:
    return StoredRuleset(row.version, row.body, row.activated_at, row.activation)
