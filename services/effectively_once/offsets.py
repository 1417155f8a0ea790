"""Consumer offsets kept in PostgreSQL, in the same transaction as the state they produced.

A consumer that is assigned a partition *claims* it: the partition's epoch goes up by one
and the claim carries the new epoch. Every later advance is a compare-and-set on
(epoch, next_offset): a consumer that lost the partition in a rebalance (a paused process,
a zombie) still holds the old epoch, so its advance matches no row and its whole
transaction is rolled back by the caller. aiokafka cannot fence such a consumer on the
Kafka side (no KIP-447), so this is where it is fenced.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True, slots=True)
class Claim:
    partition: int
    epoch: int
    next_offset: int | None  # None: nothing consumed yet, start from the beginning


class Fenced(Exception):
    """Another consumer claimed the partition since: this transaction must not commit."""

    def __init__(self, topic: str, partition: int, epoch: int) -> None:
        super().__init__(
            f"{topic}[{partition}] was claimed by another consumer since epoch {epoch}"
        )
        self.partition = partition


class PartitionsChanged(Exception):
    """The topic has another number of partitions than the consumer's state was kept for:
    records of one key now land in another partition (and state kept by partition would
    be looked for in the wrong one)."""

    def __init__(self, topic: str, kept: int, now: int) -> None:
        super().__init__(
            f"{topic} has {now} partitions, but this consumer's state is kept by the {kept} "
            f"partitions it had: a topic's partition count cannot change under a consumer "
            f"whose state is kept by partition (records of one key would move to another "
            f"partition). Restore {kept} partitions, or re-create the topic and the state"
        )
        self.kept = kept
        self.now = now


_LAYOUT = text("""
    WITH recorded AS (
        INSERT INTO consumer_layouts (consumer, topic, partitions)
        VALUES (:consumer, :topic, :partitions)
        ON CONFLICT (consumer, topic) DO NOTHING
        RETURNING partitions
    )
    SELECT partitions FROM recorded
    UNION ALL
    SELECT partitions FROM consumer_layouts WHERE consumer = :consumer AND topic = :topic
""")

_CLAIM = text("""
    INSERT INTO consumer_offsets (consumer, topic, partition, epoch, next_offset)
    VALUES (:consumer, :topic, :partition, 1, NULL)
    ON CONFLICT (consumer, topic, partition)
    DO UPDATE SET epoch = consumer_offsets.epoch + 1, claimed_at = now()
    RETURNING epoch, next_offset
""")

_ADVANCE = text("""
    UPDATE consumer_offsets SET next_offset = :next_offset, updated_at = now()
    WHERE consumer = :consumer AND topic = :topic AND partition = :partition
      AND epoch = :epoch AND next_offset IS NOT DISTINCT FROM :expected
""")


_ADVANCE_ALL = text("""
    UPDATE consumer_offsets AS o SET next_offset = v.next_offset, updated_at = now()
    FROM unnest(CAST(:partitions AS int[]), CAST(:epochs AS bigint[]),
                CAST(:expected AS bigint[]), CAST(:nexts AS bigint[]))
         AS v(partition, epoch, expected, next_offset)
    WHERE o.consumer = :consumer AND o.topic = :topic AND o.partition = v.partition
      AND o.epoch = v.epoch AND o.next_offset IS NOT DISTINCT FROM v.expected
    RETURNING o.partition
""")
_POSITIONS = text("""
    SELECT partition, next_offset FROM consumer_offsets
    WHERE consumer = :consumer AND topic = :topic ORDER BY partition
""")


class OffsetStore:
    def __init__(self, session: AsyncSession, consumer: str, topic: str) -> None:
        self._session = session
        self._consumer = consumer
        self._topic = topic

    async def fix_partitions(self, partitions: int) -> None:
        """Records the topic's partition count the first time; raises PartitionsChanged when
        it differs from the one recorded."""
        kept = (
            await self._session.execute(
                _LAYOUT,
                {"consumer": self._consumer, "topic": self._topic, "partitions": partitions},
            )
        ).scalar_one()
        if kept != partitions:
            raise PartitionsChanged(self._topic, kept, partitions)

    async def claim(self, partition: int) -> Claim:
        row = (await self._session.execute(_CLAIM, self._key(partition))).one()
        return Claim(partition, row.epoch, row.next_offset)

    async def advance(self, claim: Claim, next_offset: int | None) -> Claim:
        """Moves the partition to `next_offset`; raises Fenced if the claim is stale."""
        result = await self._session.execute(
            _ADVANCE,
            {
                **self._key(claim.partition),
                "epoch": claim.epoch,
                "expected": claim.next_offset,
                "next_offset": next_offset,
            },
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise Fenced(self._topic, claim.partition, claim.epoch)
        return Claim(claim.partition, claim.epoch, next_offset)

    async def advance_all(self, moves: Sequence[tuple[Claim, int | None]]) -> list[Claim]:
        """`advance` for several partitions in one statement; raises Fenced naming a
        partition whose claim is stale."""
        if not moves:
            return []
        result = await self._session.execute(
            _ADVANCE_ALL,
            {
                "consumer": self._consumer,
                "topic": self._topic,
                "partitions": [claim.partition for claim, _ in moves],
                "epochs": [claim.epoch for claim, _ in moves],
                "expected": [claim.next_offset for claim, _ in moves],
                "nexts": [next_offset for _, next_offset in moves],
            },
        )
        moved = {row.partition for row in result}
        for claim, _ in moves:
            if claim.partition not in moved:
                raise Fenced(self._topic, claim.partition, claim.epoch)
        return [Claim(claim.partition, claim.epoch, n) for claim, n in moves]

    def _key(self, partition: int) -> dict[str, object]:
        return {"consumer": self._consumer, "topic": self._topic, "partition": partition}

    async def positions(self) -> dict[int, int | None]:
        """Every partition's committed next offset (None: claimed, nothing consumed)."""
        rows = await self._session.execute(
            _POSITIONS, {"consumer": self._consumer, "topic": self._topic}
        )
        return {row.partition: row.next_offset for row in rows}
