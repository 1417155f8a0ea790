"""The Alembic history applies to a fresh PostgreSQL database and rolls back cleanly."""

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from devstack.kafka import run_isolated
from services import migrations
from services.scorer.store.control import ControlRepository
from services.scorer.store.seen import event_key

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
    migrations.upgrade(database_url)
    assert run_isolated(_version(database_url)) == ["0019"]
    migrations.upgrade(database_url)  # idempotent: make up runs it at every start
    migrations.downgrade(database_url)
    assert run_isolated(_version(database_url)) == []


async def _customers_then_counts(url: str) -> dict[tuple[int, str], int]:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(
            text("""
                INSERT INTO customers (customer_id, state, tier, partition, due_day)
                SELECT 'C-' || n, '\\x01', CASE WHEN n % 3 = 0 THEN NULL
                    WHEN n % 2 = 0 THEN 'general_value' ELSE 'important_value' END, n % 2, 0
                FROM generate_series(1, 10) AS n
            """)
        )
    await engine.dispose()
    await asyncio.to_thread(migrations.upgrade, url, "0009")
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT partition, tier, customers FROM tier_counts"))
        counts = {(row.partition, row.tier): row.customers for row in rows}
    await engine.dispose()
    return counts


def test_the_tier_counts_start_from_the_customers_already_stored(database_url: str) -> None:
    migrations.upgrade(database_url, "0008")
    # customers 1..10; the multiples of 3 have no tier yet; partition n % 2
    assert run_isolated(_customers_then_counts(database_url)) == {
        (0, "general_value"): 4,  # 2, 4, 8, 10
        (1, "important_value"): 3,  # 1, 5, 7
    }


async def _activations_numbered(url: str) -> tuple[dict[str, int | None], int, int]:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(
            text("""
                INSERT INTO rulesets (version, body, activated_at) VALUES
                    ('v2', 'b2', '2026-11-02T00:00:00Z'), ('v1', 'b1', '2026-11-03T00:00:00Z'),
                    ('v3', 'b3', NULL)
            """)
        )
        await connection.execute(
            text("""
                INSERT INTO population_thresholds
                    (id, recency_days, frequency, monetary, computed_at)
                VALUES (1, 30, 2, 100000, now())
            """)
        )
    await engine.dispose()
    await asyncio.to_thread(migrations.upgrade, url, "head")
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        rows = await connection.execute(text("SELECT version, activation FROM rulesets"))
        numbers = {row.version: row.activation for row in rows}
        generation = await connection.scalar(text("SELECT generation FROM population_thresholds"))
        session = AsyncSession(bind=connection)
        activated = await ControlRepository(session, "t").activate("v2", "b2")
    await engine.dispose()
    assert activated.activation is not None
    return numbers, int(generation), activated.activation


def test_activations_are_numbered_in_the_order_they_happened(database_url: str) -> None:
    migrations.upgrade(database_url, "0009")
    numbers, generation, next_activation = run_isolated(_activations_numbered(database_url))
    assert numbers == {"v2": 1, "v1": 2, "v3": None}  # v3 was never activated
    assert generation == 1
    assert next_activation == 3  # re-activating v2 is a new activation


async def _seen_carried_over(url: str) -> list[tuple[bytes, bytes]]:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(
            text("""
                INSERT INTO scorer_events (source, id, digest) VALUES
                    ('erp/orders', 'e-1', :d1), ('erp/订单', 'e-2', :d2), ('a', 'bc', :d1),
                    ('ab', 'c', :d2)
            """),
            {"d1": bytes(range(32)), "d2": bytes(range(100, 132))},
        )
    await engine.dispose()
    await asyncio.to_thread(migrations.upgrade, url, "head")
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT key, digest FROM scorer_seen ORDER BY key"))
        found = [(bytes(row.key), bytes(row.digest)) for row in rows]
    await engine.dispose()
    return found


def test_the_events_seen_are_carried_over_with_the_services_keys(database_url: str) -> None:
    migrations.upgrade(database_url, "0013")
    found = run_isolated(_seen_carried_over(database_url))
    d1, d2 = bytes(range(32))[:8], bytes(range(100, 132))[:8]
    expected = [
        (event_key("erp/orders", "e-1"), d1),
        (event_key("erp/订单", "e-2"), d2),
        (event_key("a", "bc"), d1),  # the source's length keeps ("a", "bc") and ("ab", "c")
        (event_key("ab", "c"), d2),  # apart
    ]
    assert found == sorted(expected)
