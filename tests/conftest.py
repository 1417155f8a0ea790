"""Session-wide real infrastructure; every test gets its own topics, group or database."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, settings
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.kafka import run_isolated
from harness import stack
from harness.databases import create_database, database_on
from services import migrations
from services.db.engine import create_engine
from services.effectively_once.topics import ensure_topics
from services.topology import tierstream_topics

# Examples are checked, not timed: a loaded 2-core CI machine must not turn slowness into
# failures (generation or per-example deadlines), only wrong answers.
settings.register_profile("tierstream", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("tierstream")


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


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """A fresh, empty database for this test alone, on the session's server."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    run_isolated(create_database(postgres_url, name))
    return database_on(postgres_url, name)


@pytest_asyncio.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on this test's database, migrated to the latest revision."""
    await asyncio.to_thread(migrations.upgrade, database_url)
    engine = create_engine(database_url, "test")
    yield engine
    await engine.dispose()
