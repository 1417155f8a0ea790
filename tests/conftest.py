"""Session-wide real infrastructure; every test gets its own topics, group or database."""

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from services.kafka_io.topics import ensure_topics, tierstream_topics
from tests import stack


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    with stack.kafka() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with stack.postgres() as url:
        yield url


@pytest_asyncio.fixture
async def topic_prefix(kafka_bootstrap: str) -> AsyncIterator[str]:
    """A fresh set of the four topics (3 partitions each) for this test alone."""
    prefix = f"test-{uuid.uuid4().hex[:12]}."
    await ensure_topics(kafka_bootstrap, tierstream_topics(prefix, 3, 3))
    yield prefix
