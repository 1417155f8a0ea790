"""Offsets in PostgreSQL, fenced by a claim epoch: a consumer that lost its partition cannot
commit, and a new owner starts exactly after the old owner's last committed batch."""

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services import migrations
from services.db.engine import create_engine, sessions
from services.db.unit_of_work import unit_of_work
from services.effectively_once.offsets import Fenced, OffsetStore

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await asyncio.to_thread(migrations.upgrade, database_url)
    engine = create_engine(database_url, "test")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE produced (value int)"))
    yield engine
    await engine.dispose()


async def produced(make: async_sessionmaker[AsyncSession]) -> list[int]:
    async with make() as session:
        return list(
            (await session.execute(text("SELECT value FROM produced ORDER BY value"))).scalars()
        )


async def test_a_first_claim_starts_from_nothing_and_claims_count_up(engine: AsyncEngine) -> None:
    make = sessions(engine)
    async with unit_of_work(make) as session:
        first = await OffsetStore(session, "scorer", "t").claim(3)
    assert (first.epoch, first.next_offset) == (1, None)
    async with unit_of_work(make) as session:
        await OffsetStore(session, "scorer", "t").advance(first, 10)
    async with unit_of_work(make) as session:
        second = await OffsetStore(session, "scorer", "t").claim(3)
    assert (second.epoch, second.next_offset) == (2, 10)


async def test_a_stale_claim_cannot_commit_and_its_work_is_rolled_back(engine: AsyncEngine) -> None:
    make = sessions(engine)
    async with unit_of_work(make) as session:
        zombie = await OffsetStore(session, "scorer", "t").claim(0)
    async with unit_of_work(make) as session:  # a rebalance: someone else owns it now
        owner = await OffsetStore(session, "scorer", "t").claim(0)

    async def zombie_batch() -> None:
        async with unit_of_work(make) as session:
            await session.execute(text("INSERT INTO produced VALUES (1)"))
            await OffsetStore(session, "scorer", "t").advance(zombie, 5)

    with pytest.raises(Fenced, match=r"t\[0\] was claimed by another consumer since epoch 1"):
        await zombie_batch()
    assert await produced(make) == []  # nothing half-done

    async with unit_of_work(make) as session:
        await session.execute(text("INSERT INTO produced VALUES (2)"))
        await OffsetStore(session, "scorer", "t").advance(owner, 5)
    assert await produced(make) == [2]


async def test_the_same_batch_cannot_be_committed_twice(engine: AsyncEngine) -> None:
    make = sessions(engine)
    async with unit_of_work(make) as session:
        claim = await OffsetStore(session, "scorer", "t").claim(1)
    async with unit_of_work(make) as session:
        await OffsetStore(session, "scorer", "t").advance(claim, 7)
    with pytest.raises(Fenced):  # the claim still expects no offset: a replayed commit
        async with unit_of_work(make) as session:
            await OffsetStore(session, "scorer", "t").advance(claim, 7)


async def test_a_new_owner_waits_for_and_continues_after_the_last_commit(
    engine: AsyncEngine,
) -> None:
    make = sessions(engine)
    async with unit_of_work(make) as session:
        old = await OffsetStore(session, "scorer", "t").claim(2)
    committing = make()
    await committing.begin()
    await OffsetStore(committing, "scorer", "t").advance(old, 42)  # holds the row lock

    async def claim_elsewhere() -> tuple[int, int | None]:
        async with unit_of_work(make) as session:
            new = await OffsetStore(session, "scorer", "t").claim(2)
            return new.epoch, new.next_offset

    claiming = asyncio.create_task(claim_elsewhere())
    await asyncio.sleep(0.3)
    assert not claiming.done()  # blocked behind the open batch
    await committing.commit()
    await committing.close()
    assert await asyncio.wait_for(claiming, 10) == (2, 42)


async def test_consumers_and_topics_are_separate(engine: AsyncEngine) -> None:
    make = sessions(engine)
    async with unit_of_work(make) as session:
        claims = [
            await OffsetStore(session, consumer, topic).claim(0)
            for consumer, topic in (("scorer", "a"), ("scorer", "b"), ("notifier", "a"))
        ]
    assert [claim.epoch for claim in claims] == [1, 1, 1]
