"""Puts accepted events on `tierstream.customer-events.v1` in CloudEvents binary mode."""

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.effectively_once.producer import send_all
from services.effectively_once.record import Record


class EventPublisher:
    def __init__(self, producer: AIOKafkaProducer, topic: str, timeout_s: float) -> None:
        self._producer = producer
        self._topic = topic
        self._timeout_s = timeout_s

    async def publish(self, records: Sequence[Record]) -> None:
        """Returns once every record is acknowledged (acks=all); raises BrokerUnavailable."""
        await send_all(self._producer, self._topic, records, self._timeout_s)

    async def problem(self) -> str | None:
        """None when the broker answers a metadata request, otherwise why not."""
        try:
            async with asyncio.timeout(2.0):
                metadata = await self._producer.client.fetch_all_metadata()
        except TimeoutError:
            return "Kafka did not answer a metadata request within 2 s"
        except KafkaError as error:
            return f"Kafka is not reachable: {error}"
        if not metadata.brokers():
            return "Kafka answered with no brokers"
        if self._topic not in metadata.topics():
            return f"topic {self._topic} does not exist"
        return None
