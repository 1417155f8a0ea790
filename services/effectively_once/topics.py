"""Topics created by the application itself, with the partition counts and configs it gives."""

from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


async def ensure_topics(
    bootstrap_servers: str, specs: Iterable[TopicSpec], replication_factor: int = 1
) -> list[str]:
    """Creates the topics that do not exist yet; returns the names it created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=30_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(
                        spec.name, spec.partitions, replication_factor, topic_configs=spec.config
                    )
                    for spec in missing
                ]
            )
            for name, code, *message in response.topic_errors:
                error = for_code(code)
                # "already exists": another instance created it concurrently, as wanted
                if code != 0 and error is not TopicAlreadyExistsError:
                    raise error(f"creating topic {name}: {message[-1] if message else ''}")
        return [spec.name for spec in missing]
    finally:
        await admin.close()
