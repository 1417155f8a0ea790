"""Alembic environment: an async engine on the URL the caller passed (services.migrations),
`-x url=...`, or TIERSTREAM_DATABASE_URL, in that order."""

import asyncio
import os

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

DEFAULT_URL = "postgresql+asyncpg://tierstream@127.0.0.1:5432/tierstream"


def _url() -> str:
    given: str | None = context.config.attributes.get("url")
    return (
        given
        or context.get_x_argument(as_dictionary=True).get("url")
        or os.environ.get("TIERSTREAM_DATABASE_URL", DEFAULT_URL)
    )


def _migrate(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run() -> None:
    engine = create_async_engine(_url(), poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_migrate)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run())
