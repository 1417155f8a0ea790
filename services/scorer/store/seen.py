"""The events seen, in SQL (migration 0014): the dedupe by event id. An event is kept as its
key (16 bytes of SHA-256 over its source and id) and the first 8 bytes of its content
digest, with the time it was seen: 56 bytes of row and about 30 of primary-key index per
event, a BRIN index on the time (inserted in time order), for the retention
(`TIERSTREAM_SCORER_DEDUPE_RETENTION_DAYS`, 400 by default: 400 days of events, then
forgotten). The compiled engine makes the same keys (native/src/engine.rs `event_key`,
held equal by tests/unit/test_seen_keys.py). Takes the caller's session and never
commits."""

import hashlib
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.db.engine import driver_connection

NEW, SEEN, CONFLICT = 0, 1, 2
DIGEST_BYTES = 8

_RECORD = """
    INSERT INTO scorer_seen (key, digest)
    SELECT * FROM unnest($1::bytea[], $2::bytea[])
    ON CONFLICT (key) DO NOTHING
    RETURNING key
"""
_DIGESTS = "SELECT key, digest FROM scorer_seen WHERE key = ANY($1::bytea[])"
# `now()`, not `clock_timestamp()`: a volatile bound cannot be an index condition, and the
# forgetting scanned the whole table at every pass. The BRIN index's new ranges are
# summarized first (each range once; a range not summarized is always read), and the plan
# is kept off a sequential scan, which the planner takes for a table without statistics.
_FORGET = text("""
    DELETE FROM scorer_seen WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM scorer_seen
        WHERE seen_at < now() - make_interval(days => :days) LIMIT :limit))
""")
_LOCK_FORGET = text("SELECT pg_try_advisory_xact_lock(7346212003)")
_SUMMARIZE = text("SELECT brin_summarize_new_values('scorer_seen_by_age')")
_BY_INDEX = text("SET LOCAL enable_seqscan = off")


def event_key(source: str, event_id: str) -> bytes:
    """An event's key: SHA-256 over the source's UTF-8 length (4 bytes, big-endian), the
    source and the id, first 16 bytes (a collision among 10^12 events: about 10^-15)."""
    encoded = source.encode()
    hashed = hashlib.sha256(len(encoded).to_bytes(4, "big") + encoded + event_id.encode())
    return hashed.digest()[:16]


class SeenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def record(self, keys: list[bytes], digests: list[bytes]) -> list[int]:
        """Marks the events seen; per event NEW, SEEN (an exact repeat) or CONFLICT (seen
        with another digest). Keys must be unique within the call."""
        if not keys:
            return []
        driver = await driver_connection(self._session)
        inserted = {bytes(r[0]) for r in await driver.fetch(_RECORD, keys, digests)}
        if len(inserted) == len(keys):
            return [NEW] * len(keys)
        others = [k for k in keys if k not in inserted]
        stored = {bytes(r[0]): bytes(r[1]) for r in await driver.fetch(_DIGESTS, others)}
        return [
            NEW if key in inserted else SEEN if stored.get(key) == digest else CONFLICT
            for key, digest in zip(keys, digests, strict=True)
        ]

    async def forget(self, older_than_days: int, limit: int) -> int:
        """Forgets up to `limit` events seen more than `older_than_days` ago; one instance at
        a time (0 when another holds the lock). A duplicate of a forgotten event would count
        again: the retention must exceed how late a duplicate can arrive."""
        if not await self._session.scalar(_LOCK_FORGET):
            return 0
        await self._session.execute(_SUMMARIZE)
        await self._session.execute(_BY_INDEX)
        result = await self._session.execute(_FORGET, {"days": older_than_days, "limit": limit})
        return int(result.rowcount)  # type: ignore[attr-defined]


def digests_of(full: Sequence[bytes]) -> list[bytes]:
    """The stored part of content digests."""
    return [digest[:DIGEST_BYTES] for digest in full]
