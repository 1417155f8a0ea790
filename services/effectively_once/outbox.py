"""The transactional outbox: outgoing records are rows, written in the transaction that
produced them; the relay (services/effectively_once/relay.py) publishes them afterwards."""

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.db.engine import driver_connection
from services.effectively_once.record import Record

_ENCODE_HEADERS = msgspec.msgpack.Encoder()
_DECODE_HEADERS = msgspec.msgpack.Decoder(list[tuple[str, bytes]])
RELAY_LOCK = 7_346_212_001  # pg advisory lock key: one relay publishes at a time, in order

_ADD = text("""
    INSERT INTO outbox (topic, key, value, headers)
    SELECT :topic, key, value, headers
    FROM unnest(CAST(:keys AS bytea[]), CAST(:values AS bytea[]), CAST(:headers AS bytea[]))
         WITH ORDINALITY AS r(key, value, headers, n)
    ORDER BY n
""")
# read with asyncpg itself (tuples out): the relay reads every row the services write
_PENDING = """
    SELECT id, topic, key, value, headers FROM outbox
    WHERE published_at IS NULL ORDER BY id LIMIT $1
"""
# Published rows are deleted, not marked: Kafka has them now, and an UPDATE would write a
# new version of every (large) row.
_MARK = text("DELETE FROM outbox WHERE id = ANY(:ids)")
_COUNT = text("SELECT count(*) FROM outbox WHERE published_at IS NULL")
_LOCK = text("SELECT pg_try_advisory_xact_lock(:key)")


@dataclass(frozen=True, slots=True)
class Pending:
    id: int
    topic: str
    record: Record


class Outbox:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, topic: str, records: Sequence[Record]) -> None:
        """Appends the records, in order, in one statement."""
        if records:
            await self._session.execute(
                _ADD,
                {
                    "topic": topic,
                    "keys": [r.key for r in records],
                    "values": [r.value for r in records],
                    "headers": [_ENCODE_HEADERS.encode(r.headers) for r in records],
                },
            )

    async def lock_relay(self) -> bool:
        """True when this transaction may relay (held until it ends)."""
        return bool(await self._session.scalar(_LOCK, {"key": RELAY_LOCK}))

    async def pending(self, limit: int) -> list[Pending]:
        rows = await (await driver_connection(self._session)).fetch(_PENDING, limit)
        decode = _DECODE_HEADERS.decode
        return [
            Pending(i, topic, Record(key, value, decode(h))) for i, topic, key, value, h in rows
        ]

    async def mark_published(self, ids: Sequence[int]) -> None:
        """Removes the published rows (in the relay's transaction)."""
        await self._session.execute(_MARK, {"ids": list(ids)})

    async def pending_count(self) -> int:
        return int(await self._session.scalar(_COUNT) or 0)
