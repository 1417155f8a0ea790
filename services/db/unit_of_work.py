"""The caller owns the transaction: one unit of work, committed once or rolled back whole.
Repositories take the session and never commit."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


@asynccontextmanager
async def unit_of_work(
    make_session: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    async with make_session() as session, session.begin():
        yield session
