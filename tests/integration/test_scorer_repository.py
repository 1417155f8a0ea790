"""The scorer's storage against a real PostgreSQL."""

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.db.engine import sessions
from services.db.unit_of_work import unit_of_work
from services.scorer.store import seen
from services.scorer.store.columns import ColumnRepository
from services.scorer.store.customers import ScorerRepository, StoredCustomer
from services.scorer.store.seen import SeenRepository, event_key
from services.scorer.store.tiers import HistoryEntry, TierRepository

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


async def test_events_are_new_then_duplicates_or_conflicts(engine: AsyncEngine) -> None:
    make = sessions(engine)
    async with unit_of_work(make) as session:
        first = await ScorerRepository(session).record_events(
            [("erp", "1", b"a"), ("erp", "2", b"b"), ("shop", "1", b"c")]
        )
    assert set(first.values()) == {"new"}
    async with unit_of_work(make) as session:
        again = await ScorerRepository(session).record_events(
            [("erp", "1", b"a"), ("erp", "2", b"CHANGED"), ("erp", "3", b"d")]
        )
    assert again == {("erp", "1"): "duplicate", ("erp", "2"): "conflict", ("erp", "3"): "new"}


async def test_a_rolled_back_batch_leaves_its_events_unseen(engine: AsyncEngine) -> None:
    make = sessions(engine)

    async def failing() -> None:
        async with unit_of_work(make) as session:
            await ScorerRepository(session).record_events([("erp", "9", b"x")])
            raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError):
        await failing()
    async with unit_of_work(make) as session:
        assert await ScorerRepository(session).record_events([("erp", "9", b"x")]) == {
            ("erp", "9"): "new"
        }


async def test_customers_round_trip_and_upsert(engine: AsyncEngine) -> None:
    make = sessions(engine)
    stored = [
        StoredCustomer("C-1", b"\x01state", "important_value", T0, "v1"),
        StoredCustomer("C-2", b"\x01other", None, None, None),
    ]
    async with unit_of_work(make) as session:
        await ScorerRepository(session).save(stored)
    async with unit_of_work(make) as session:
        repository = ScorerRepository(session)
        keys = [("C-1", 0), ("C-2", 0), ("C-3", 0)]
        assert await repository.load(keys) == {c.customer_id: c for c in stored}
        await repository.save([StoredCustomer("C-1", b"\x01new", "general_value", T0, "v2")])
        assert (await repository.load([("C-1", 0)]))["C-1"].tier == "general_value"


async def test_customers_are_kept_by_partition_and_found_by_id_alone(
    engine: AsyncEngine,
) -> None:
    """Each partition's customers in a table of their own (migration 0017), a partition of
    64 and above in the shared one: the scorer loads by (id, partition), the read API finds
    a customer by id alone."""
    make = sessions(engine)
    stored = [
        StoredCustomer("C-1", b"\x01", "important_value", T0, "v1", partition=3),
        StoredCustomer("C-2", b"\x02", "general_value", T0, "v1", partition=70),
    ]
    async with unit_of_work(make) as session:
        await ScorerRepository(session).save(stored)
        tables = await session.execute(
            text("SELECT tableoid::regclass::text, customer_id FROM customers ORDER BY 2")
        )
        assert [tuple(row) for row in tables] == [
            ("customers_p3", "C-1"),
            ("customers_rest", "C-2"),
        ]
    async with unit_of_work(make) as session:
        repository = ScorerRepository(session)
        assert await repository.load([("C-1", 3), ("C-2", 70), ("C-1", 4)]) == {
            c.customer_id: c for c in stored
        }
        assert await repository.find("C-2") == stored[1]
        assert await repository.find("C-3") is None
        columns = await ColumnRepository(session).load(["C-1", "C-2"], [3, 71])
        assert [row[0] for row in columns] == ["C-1"]


async def test_history_is_kept_once_per_change_in_time_order(engine: AsyncEngine) -> None:
    make = sessions(engine)
    later = HistoryEntry("b", "C-1", T0.replace(hour=12), json.dumps({"n": 2}).encode())
    earlier = HistoryEntry("a", "C-1", T0, json.dumps({"n": 1}).encode())
    async with unit_of_work(make) as session:
        await TierRepository(session).add_history([later, earlier])
    async with unit_of_work(make) as session:  # redelivered: the same ids again
        repository = TierRepository(session)
        await repository.add_history([earlier])
        history = await repository.history("C-1")
    assert [(e.change_id, json.loads(e.payload)) for e in history] == [
        ("a", {"n": 1}),
        ("b", {"n": 2}),
    ]


async def test_events_seen_are_forgotten_after_the_retention(engine: AsyncEngine) -> None:
    make = sessions(engine)
    async with unit_of_work(make) as session:
        await ScorerRepository(session).record_events(
            [("erp", "old-1", b"a"), ("erp", "old-2", b"b"), ("erp", "new", b"c")]
        )
        await session.execute(
            text("UPDATE scorer_seen SET seen_at = now() - interval '401 days' WHERE key <> :new"),
            {"new": event_key("erp", "new")},
        )
    async with unit_of_work(make) as session:
        assert await ScorerRepository(session).forget_events(400, limit=1) == 1
    async with unit_of_work(make) as session:
        assert await ScorerRepository(session).forget_events(400, limit=10) == 1
    async with unit_of_work(make) as session:
        again = await ScorerRepository(session).record_events(
            [("erp", "old-1", b"a"), ("erp", "new", b"c")]
        )
    assert again == {("erp", "old-1"): "new", ("erp", "new"): "duplicate"}


async def test_forgetting_reads_the_time_index_not_the_whole_table(engine: AsyncEngine) -> None:
    """Every maintenance pass may forget: a scan of every event seen (400 days of them) per
    pass would grow without bound. The pass summarizes the BRIN index's new ranges and keeps
    the plan on it, with a bound the index can use (now(), not clock_timestamp())."""
    make = sessions(engine)
    async with unit_of_work(make) as session:
        await session.execute(
            text("""
                INSERT INTO scorer_seen (key, digest)
                SELECT decode(md5(g::text), 'hex'), '\\x0102030405060708'
                FROM generate_series(1, 20000) g
            """)
        )
    async with unit_of_work(make) as session:
        assert await SeenRepository(session).forget(400, limit=100) == 0
        plan = "\n".join(
            row[0]
            for row in await session.execute(
                text(f"EXPLAIN {seen._FORGET.text}"),
                {"days": 400, "limit": 100},
            )
        )
    assert "Seq Scan" not in plan, plan
    assert "scorer_seen_by_age" in plan, plan


async def test_a_batch_load_stays_on_the_index_as_the_table_grows(engine: AsyncEngine) -> None:
    """Prepared on an empty table and run more than five times (when PostgreSQL may switch
    to a generic plan), the load of customers by id must still use the primary key once
    the table holds thousands of rows that no ANALYZE has seen yet."""
    make = sessions(engine)
    fill = text("""
        INSERT INTO customers (customer_id, state, partition, due_day, updated_at)
        SELECT 'C-' || g, '\\x00', g % 8, 0, now()
        FROM generate_series(CAST(:first AS int), CAST(:last AS int)) g
    """)
    # batches of a hundred new customers: the custom plans, costed on a hundred ids, cost
    # more than a generic one costed on the planner's default guess of ten
    for n in range(8):
        async with unit_of_work(make) as session:
            await session.execute(fill, {"first": n * 100 + 1, "last": n * 100 + 100})
            ids = [f"N-{n}-{i}" for i in range(100)]
            assert await ColumnRepository(session).load(ids, [i % 8 for i in range(100)]) == []
    async with unit_of_work(make) as session:
        await session.execute(fill, {"first": 1000, "last": 30000})
    # this session's scans not yet flushed to the shared statistics, before and after
    scans = text(
        "SELECT sum(seq_scan) FROM pg_stat_xact_user_tables WHERE relname LIKE 'customers_%'"
    )
    async with unit_of_work(make) as session:
        before = await session.scalar(scans)
        loaded = await ColumnRepository(session).load(["C-7", "C-12345"], [7, 12345 % 8])
        after = await session.scalar(scans)
    assert sorted(row[0] for row in loaded) == ["C-12345", "C-7"]
    assert after == before


async def test_pages_read_their_own_rows_on_a_table_without_statistics(
    engine: AsyncEngine,
) -> None:
    """The re-tier's and the sweep's pages, on a table no ANALYZE has seen: each reads about
    a page of rows, not the whole rest of the partition into a sort (quadratic in its
    size). The sweep's pages follow the due day, then the id."""
    make = sessions(engine)
    async with unit_of_work(make) as session:
        await session.execute(
            text("""
                INSERT INTO customers (customer_id, state, partition, due_day, updated_at,
                                       scored_day, stable_until)
                SELECT 'C-' || lpad(g::text, 6, '0'), '\\x00', g % 2, 100 + g % 7, now(), 0, 0
                FROM generate_series(1, 30000) g
            """)
        )
    fetched = text(
        "SELECT coalesce(sum(idx_tup_fetch), 0) FROM pg_stat_xact_user_tables "
        "WHERE relname LIKE 'customers_%'"
    )
    async with unit_of_work(make) as session:
        columns = ColumnRepository(session)
        before = await session.scalar(fetched)
        page = await columns.rescan(1, 200, "C-010000", 1000)
        middle = await session.scalar(fetched)
        due = await columns.due_page(1, 104, (102, "C-020000"), 1000)
        after = await session.scalar(fetched)
        # the settings are the session's own again
        assert await session.scalar(text("SHOW enable_sort")) == "on"
    assert [row[0] for row in page] == [f"C-{n:06d}" for n in range(10_001, 12_001, 2)]
    assert middle - before <= 1001
    keys = [(row[6], row[0]) for row in due]
    assert keys == sorted(keys)
    assert keys[0] > (102, "C-020000")
    assert keys[0][0] == 102
    assert all(day <= 104 for day, _ in keys)
    assert after - middle <= 1001
