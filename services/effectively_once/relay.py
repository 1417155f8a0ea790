"""The outbox relay: publishes outbox rows in id order, then marks them published.

Order of work per batch, in one transaction: take the relay lock (one relay at a time,
so a customer's records keep their order across instances), read the oldest pending
rows, publish them (acks=all, bounded), mark them, commit. A crash after publishing and
before the commit publishes the same records again on restart: at least once, with the
same ids in their headers, which consumers dedupe by.
"""

from collections import defaultdict

import structlog
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.db.unit_of_work import unit_of_work
from services.effectively_once.outbox import Outbox
from services.effectively_once.producer import send_all
from services.effectively_once.record import Record
from services.effectively_once.rounds import Rounds

log = structlog.get_logger()


class Relay:
    def __init__(
        self,
        producer: AIOKafkaProducer,
        make_session: async_sessionmaker[AsyncSession],
        *,
        batch_size: int = 5000,
        idle_s: float = 0.5,
        send_timeout_s: float = 10.0,
    ) -> None:
        self._producer = producer
        self._sessions = make_session
        self._batch_size = batch_size
        self._send_timeout_s = send_timeout_s
        self._rounds = Rounds(idle_s)

    def stop(self) -> None:
        self._rounds.stop()

    def wake(self) -> None:
        """New rows were committed in this process: publish now rather than at the next
        poll (rows committed by other processes are found by the poll, every `idle_s`)."""
        self._rounds.wake()

    async def run(self) -> None:
        await self._rounds.run(self._round)

    async def _round(self) -> bool:
        async with unit_of_work(self._sessions) as session:
            return await self.publish_batch(session) > 0

    async def publish_batch(self, session: AsyncSession) -> int:
        """One batch in the caller's transaction; returns how many records it published."""
        outbox = Outbox(session)
        if not await outbox.lock_relay():
            return 0
        pending = await outbox.pending(self._batch_size)
        by_topic: dict[str, list[Record]] = defaultdict(list)
        for row in pending:
            by_topic[row.topic].append(row.record)
        for topic, records in by_topic.items():
            await send_all(self._producer, topic, records, self._send_timeout_s)
        await outbox.mark_published([row.id for row in pending])
        if pending:
            log.debug("outbox_published", records=len(pending), topics=len(by_topic))
        return len(pending)
