"""The product's topics (SPEC §5): their names come from the contract (schemas.v1.topics),
their partitions and configs from here; `tierstream topics create`, `make up` and the tests
create them with the kit's `ensure_topics`."""

from schemas.v1 import topics
from services.effectively_once.topics import TopicSpec


def tierstream_topics(
    prefix: str = "", event_partitions: int = 12, change_partitions: int = 12
) -> list[TopicSpec]:
    """The four topics of SPEC §5; `prefix` gives tests and tenants their own set."""
    return [
        TopicSpec(prefix + topics.CUSTOMER_EVENTS, event_partitions),
        TopicSpec(prefix + topics.TIER_CHANGES, change_partitions),
        TopicSpec(
            prefix + topics.CUSTOMER_TIERS,
            change_partitions,
            {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
        ),
        TopicSpec(prefix + topics.DEAD_LETTERS, 1, {"retention.ms": str(30 * 86_400_000)}),
    ]
