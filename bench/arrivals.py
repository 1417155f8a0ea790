"""When each record's key first arrives on a topic, seen by a subscriber in its own process.

The latency benchmark's load generator posts to ingest; the reader of the tier-change topic
runs here, apart from it, as a downstream subscriber would. In the load generator's process
the reader shared one event loop with the posting and saw each change about 150 ms after
the relay's send was acknowledged (measured at 500 events/s; a reader in its own process
saw it before the relay's call returned).

`python -m bench.arrivals BOOTSTRAP TOPIC PARTITIONS OUT` prints "ready" once it reads every
partition from the start, then appends `key wall-clock-seconds` lines to OUT until SIGTERM.
"""

import asyncio
import signal
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

READY = "ready"


async def follow(bootstrap: str, topic: str, partitions: int, out: Path) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        await consumer.seek_to_beginning()
        with out.open("a") as file:
            print(READY, flush=True)
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=100)
                now = time.time()
                lines = [
                    f"{(message.key or b'').decode()} {now:.6f}\n"
                    for messages in batch.values()
                    for message in messages
                ]
                if lines:
                    file.writelines(lines)
                    file.flush()
    finally:
        await consumer.stop()


def read(out: Path) -> dict[str, float]:
    """Each key's first arrival, from what `follow` wrote so far."""
    first: dict[str, float] = {}
    for line in out.read_text().splitlines():
        key, _, moment = line.rpartition(" ")
        if key:
            first.setdefault(key, float(moment))
    return first


if __name__ == "__main__":
    asyncio.run(follow(sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])))
