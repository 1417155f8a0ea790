"""The tier history's publication in SQL (migration 0013): which partitions have changes
whose records are not yet on the topics, those changes in number order, and the mark of
the last one published. The relay (services/scorer/history_relay.py) holds a partition's
advisory lock from reading the mark to moving it, so one relay at a time publishes a
partition, in order. Takes the caller's session and never commits."""

from collections.abc import Mapping, Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.db.engine import driver_connection
from services.scorer.store.tiers import HistoryEntry

HISTORY_LOCKS = 7_346_212  # pg advisory lock class: (this, partition) per partition

# the partitions of `partitions` with changes past their mark, each locked for this
# transaction (a partition another relay is publishing is left to it)
_BEHIND = text("""
    SELECT partition, published, last FROM (
        SELECT p.partition, coalesce(w.seq, 0) AS published, p.history_seq AS last
        FROM scorer_partitions p LEFT JOIN tier_history_published w USING (partition)
        WHERE p.topic = :topic AND p.partition = ANY(:partitions)
          AND p.history_seq > coalesce(w.seq, 0)
        OFFSET 0
    ) behind
    WHERE pg_try_advisory_xact_lock(:locks, partition)
    ORDER BY partition
""")
# read with asyncpg itself (tuples out): after a restart, every change since the mark
_UNPUBLISHED = """
    SELECT pseq, change_id, customer_id, changed_at, payload FROM tier_history
    WHERE partition = $1 AND pseq > $2 AND pseq <= $3 ORDER BY pseq LIMIT $4
"""
_PENDING = text("""
    SELECT coalesce(sum(p.history_seq - coalesce(w.seq, 0)), 0)::bigint
    FROM scorer_partitions p LEFT JOIN tier_history_published w USING (partition)
    WHERE p.topic = :topic
""")
_MARK = text("""
    INSERT INTO tier_history_published (partition, seq)
    SELECT * FROM unnest(CAST(:partitions AS int[]), CAST(:seqs AS bigint[]))
    ON CONFLICT (partition) DO UPDATE SET seq = excluded.seq
""")


class HistoryRepository:
    def __init__(self, session: AsyncSession, topic: str) -> None:
        self._session = session
        self._topic = topic

    async def behind(self, partitions: Sequence[int]) -> dict[int, tuple[int, int]]:
        """partition -> (the last number published, the last number) of the partitions
        among `partitions` with changes to publish, locked by this transaction."""
        if not partitions:
            return {}
        rows = await self._session.execute(
            _BEHIND,
            {"topic": self._topic, "partitions": list(partitions), "locks": HISTORY_LOCKS},
        )
        return {row.partition: (row.published, row.last) for row in rows}

    async def unpublished(
        self, partition: int, after: int, until: int, limit: int
    ) -> list[HistoryEntry]:
        """The partition's changes numbered after `after` up to `until`, in order."""
        rows = await (await driver_connection(self._session)).fetch(
            _UNPUBLISHED, partition, after, until, limit
        )
        return [
            HistoryEntry(change_id, customer, at, bytes(payload), partition, seq)
            for seq, change_id, customer, at, payload in rows
        ]

    async def pending_count(self) -> int:
        """Tier changes numbered past their partition's mark."""
        return int(await self._session.scalar(_PENDING, {"topic": self._topic}) or 0)

    async def mark(self, published: Mapping[int, int]) -> None:
        """The last number published, per partition."""
        if published:
            ordered = sorted(published.items())
            await self._session.execute(
                _MARK,
                {"partitions": [p for p, _ in ordered], "seqs": [s for _, s in ordered]},
            )
