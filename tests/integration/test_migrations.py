"""The Alembic history applies to a fresh PostgreSQL database and rolls back cleanly."""

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from devstack import migrate
from devstack.kafka import run_isolated

pytestmark = pytest.mark.integration


async def _version(url: str) -> list[str]:
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        exists = await connection.scalar(text("SELECT to_regclass('alembic_version')"))
        rows = (
            (await connection.execute(text("SELECT version_num FROM alembic_version")))
            .scalars()
            .all()
            if exists
            else []
        )
    await engine.dispose()
    return list(rows)


def test_upgrade_to_head_and_back_to_base(database_url: str) -> None:
    assert run_isolated(_version(database_url)) == []
    migrate.upgrade(database_url)
    assert run_isolated(_version(database_url)) == ["0008"]
    migrate.upgrade(database_url)  # idempotent: make up runs it at every start
    migrate.downgrade(database_url)
    assert run_isolated(_version(database_url)) == []
