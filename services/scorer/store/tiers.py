"""The scorer's SQL about tiers as a whole: the customers in a tier, how many are in each, and
the history of tier changes. Takes the caller's session and never commits."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from tierstream_native import pg_array

from services.db.engine import driver_connection


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    change_id: str
    customer_id: str
    changed_at: datetime
    payload: bytes  # the tier.changed JSON, as published
    partition: int | None = None  # with seq: the change's number in its partition (0013)
    seq: int | None = None


_BY_TIER = text("""
    SELECT customer_id, tier, tier_since FROM customers
    WHERE tier = :tier AND customer_id > :after ORDER BY customer_id LIMIT :limit
""")
_COUNTS = text("""
    SELECT tier, sum(customers)::bigint AS n FROM tier_counts
    GROUP BY tier HAVING sum(customers) <> 0
""")
# in (partition, tier) order, so that two transactions lock the counters in the same order
_COUNT = text("""
    INSERT INTO tier_counts (partition, tier, customers)
    SELECT * FROM unnest(
        CAST(:partitions AS int[]), CAST(:tiers AS text[]), CAST(:deltas AS bigint[]))
    ON CONFLICT (partition, tier)
    DO UPDATE SET customers = tier_counts.customers + excluded.customers
""")
# the ids, partitions and numbers as array literals (tierstream_native.pg_array)
_ADD_HISTORY = """
    INSERT INTO tier_history (change_id, customer_id, changed_at, payload, partition, pseq)
    SELECT change_id, customer_id, changed_at, payload, partition, pseq
    FROM unnest($1::text::text[], $2::text::text[], $3::timestamptz[], $4::bytea[],
                $5::text::int[], $6::text::bigint[])
         WITH ORDINALITY AS t(change_id, customer_id, changed_at, payload, partition, pseq, n)
    ORDER BY n
    ON CONFLICT (change_id) DO NOTHING
"""
_HISTORY = text("""
    SELECT change_id, customer_id, changed_at, payload FROM tier_history
    WHERE customer_id = :customer_id ORDER BY changed_at, seq
""")


class TierRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def in_tier(self, tier: str, after: str, limit: int) -> list[tuple[str, datetime]]:
        """(customer id, since) of customers in `tier`, in id order after `after`."""
        rows = await self._session.execute(_BY_TIER, {"tier": tier, "after": after, "limit": limit})
        return [(row.customer_id, row.tier_since) for row in rows]

    async def tier_counts(self) -> dict[str, int]:
        return {row.tier: row.n for row in await self._session.execute(_COUNTS)}

    async def count_tiers(self, deltas: Mapping[tuple[int, str], int]) -> None:
        """Moves the customers-per-tier counts by `deltas` ((partition, tier) -> change), in
        the transaction that moved the customers."""
        moved = sorted((key, n) for key, n in deltas.items() if n)
        if moved:
            await self._session.execute(
                _COUNT,
                {
                    "partitions": [p for (p, _), _ in moved],
                    "tiers": [t for (_, t), _ in moved],
                    "deltas": [n for _, n in moved],
                },
            )

    async def add_history(self, entries: Sequence[HistoryEntry]) -> None:
        if entries:
            driver = await driver_connection(self._session)
            await driver.execute(
                _ADD_HISTORY,
                pg_array([e.change_id for e in entries]),
                pg_array([e.customer_id for e in entries]),
                [e.changed_at for e in entries],
                [e.payload for e in entries],
                pg_array([e.partition for e in entries]),
                pg_array([e.seq for e in entries]),
            )

    async def history(self, customer_id: str) -> list[HistoryEntry]:
        rows = await self._session.execute(_HISTORY, {"customer_id": customer_id})
        return [
            HistoryEntry(r.change_id, r.customer_id, r.changed_at, bytes(r.payload)) for r in rows
        ]
