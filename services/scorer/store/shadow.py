"""The shadow ruleset in SQL (SPEC §11, migration 0019): which version runs in shadow, each
customer's pair of tiers as last counted (active, shadow), and the agreement matrix as
counters per partition. The caller owns the transaction."""

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

Pair = tuple[str, str]  # (active tier, shadow tier)


@dataclass(frozen=True, slots=True)
class ShadowRow:
    version: str
    run: int  # a number of its own for each start: a restarted shadow counts afresh
    started_at: datetime
    actor: str


@dataclass(frozen=True, slots=True)
class Pass:
    partition: int
    key: str | None  # the shadow pass's key (services/scorer/shadow.py)
    after: str | None  # its cursor: None once complete
    applied: str | None  # the standard the partition's customers are scored with
    clock: datetime | None  # event-clock mode: the partition's latest event time


_CURRENT = text("SELECT version, run, started_at, actor FROM ruleset_shadow WHERE id = 1")
_START = text("""
    INSERT INTO ruleset_shadow (id, version, run, actor)
    VALUES (1, :version, nextval('shadow_runs'), :actor)
    ON CONFLICT (id) DO NOTHING
    RETURNING version, run, started_at, actor
""")
# what a run stopped before left (its transactions that committed after the stop)
_LEFT = (
    text("DELETE FROM shadow_tiers WHERE run <> :run"),
    text("DELETE FROM shadow_counts WHERE run <> :run"),
)
_STOP = (
    text("DELETE FROM ruleset_shadow"),
    text("DELETE FROM shadow_tiers"),
    text("DELETE FROM shadow_counts"),
)
_PAIRS = text("""
    SELECT customer_id, active_tier, shadow_tier FROM shadow_tiers
    WHERE run = :run AND (customer_id, partition) IN (
        SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:partitions AS int[])))
""")
_SAVE = text("""
    INSERT INTO shadow_tiers (customer_id, partition, run, active_tier, shadow_tier)
    SELECT i, p, :run, a, s FROM unnest(CAST(:ids AS text[]), CAST(:partitions AS int[]),
                                       CAST(:actives AS text[]), CAST(:shadows AS text[]))
        AS u(i, p, a, s)
    ON CONFLICT (customer_id, partition) DO UPDATE SET run = excluded.run,
        active_tier = excluded.active_tier, shadow_tier = excluded.shadow_tier
""")
_COUNT = text("""
    INSERT INTO shadow_counts (run, partition, active_tier, shadow_tier, customers)
    SELECT :run, * FROM unnest(CAST(:partitions AS int[]), CAST(:actives AS text[]),
                               CAST(:shadows AS text[]), CAST(:deltas AS bigint[]))
    ON CONFLICT (run, partition, active_tier, shadow_tier) DO UPDATE
    SET customers = shadow_counts.customers + excluded.customers
""")
_MATRIX = text("""
    SELECT active_tier, shadow_tier, sum(customers) FROM shadow_counts WHERE run = :run
    GROUP BY active_tier, shadow_tier HAVING sum(customers) <> 0
""")
_SAMPLES = text("""
    SELECT customer_id FROM shadow_tiers
    WHERE run = :run AND active_tier = :active AND shadow_tier = :shadow
      AND active_tier <> shadow_tier
    LIMIT :limit
""")
_PASSES = text("""
    SELECT partition, shadow_key, shadow_after, applied, clock FROM scorer_partitions
    WHERE topic = :topic ORDER BY partition
""")


class ShadowRepository:
    """`run`: the shadow run whose pairs and counts are read and written."""

    def __init__(self, session: AsyncSession, run: int = 0) -> None:
        self._session = session
        self._run = run

    async def current(self) -> ShadowRow | None:
        row = (await self._session.execute(_CURRENT)).one_or_none()
        return None if row is None else ShadowRow(*row)

    async def start(self, version: str, actor: str) -> ShadowRow | None:
        """Starts `version` in shadow; None when a shadow runs already."""
        row = (
            await self._session.execute(_START, {"version": version, "actor": actor})
        ).one_or_none()
        if row is None:
            return None
        started = ShadowRow(*row)
        for statement in _LEFT:
            await self._session.execute(statement, {"run": started.run})
        return started

    async def stop(self) -> None:
        """Ends the shadow and forgets what it counted."""
        for statement in _STOP:
            await self._session.execute(statement)

    async def pairs(self, keys: Collection[tuple[str, int]]) -> dict[str, Pair]:
        """The pairs counted for these (customer id, partition) keys."""
        if not keys:
            return {}
        rows = await self._session.execute(
            _PAIRS,
            {"run": self._run, "ids": [k[0] for k in keys], "partitions": [k[1] for k in keys]},
        )
        return {row[0]: (row[1], row[2]) for row in rows}

    async def save(self, pairs: Sequence[tuple[str, int, str, str]]) -> None:
        """(customer id, partition, active tier, shadow tier) as now counted."""
        if pairs:
            await self._session.execute(
                _SAVE,
                {
                    "run": self._run,
                    "ids": [p[0] for p in pairs],
                    "partitions": [p[1] for p in pairs],
                    "actives": [p[2] for p in pairs],
                    "shadows": [p[3] for p in pairs],
                },
            )

    async def count(self, deltas: Mapping[tuple[int, str, str], int]) -> None:
        """Moves the matrix's counters: (partition, active tier, shadow tier) -> change."""
        moved = sorted((key, n) for key, n in deltas.items() if n)
        if moved:
            await self._session.execute(
                _COUNT,
                {
                    "run": self._run,
                    "partitions": [k[0] for k, _ in moved],
                    "actives": [k[1] for k, _ in moved],
                    "shadows": [k[2] for k, _ in moved],
                    "deltas": [n for _, n in moved],
                },
            )

    async def matrix(self) -> Counter[Pair]:
        """Customers per (active tier, shadow tier), over every partition."""
        rows = await self._session.execute(_MATRIX, {"run": self._run})
        return Counter({(row[0], row[1]): int(row[2]) for row in rows})

    async def samples(self, pair: Pair, limit: int) -> list[str]:
        """A few customers of a cell where the two disagree."""
        rows = await self._session.execute(
            _SAMPLES, {"run": self._run, "active": pair[0], "shadow": pair[1], "limit": limit}
        )
        return [row[0] for row in rows]

    async def passes(self, topic: str) -> list[Pass]:
        """Each partition's pass, with the standard it applied and its clock."""
        rows = await self._session.execute(_PASSES, {"topic": topic})
        return [Pass(*row) for row in rows]
