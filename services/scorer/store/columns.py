"""The compiled path's statements (services/scorer/compiled_batch.py), on asyncpg directly:
customers loaded and saved as columns (instants as µs since the epoch, which the compiled
core keeps), and pages of them rescored. The caller's transaction; nothing here commits."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from tierstream_native import pg_array

from services.db.engine import driver_connection

OWN_TABLES = 64  # partitions 0..63 have a table of their own (migration 0017)
# both reads' columns are in the order the engine's `load` takes them
_LOAD = """
    SELECT customer_id, state, tier, (extract(epoch FROM tier_since) * 1000000)::bigint,
           ruleset_version, partition, due_day, change_id
"""
_DUE = """
    SELECT customer_id, state, tier, (extract(epoch FROM tier_since) * 1000000)::bigint,
           ruleset_version, partition, due_day, change_id
    FROM customers WHERE partition = $1 AND due_day <= $2 AND customer_id > $3
    ORDER BY customer_id LIMIT $4
"""
# the re-tier's and the sweep's reads, in the order the engine's `rescore` takes them: the
# state only when the stored snapshot does not cover the day ($2). The re-tier's pages
# follow customers_by_partition (partition, customer_id); the sweep's follow customers_due
# (partition, due_day, customer_id), after the last row read ($5, $3): each one it sweeps
# gets a later due day and leaves the range.
_RESCAN = """
    SELECT customer_id,
           CASE WHEN scored_day <= $2 AND $2 < stable_until THEN NULL ELSE state END,
           tier, (extract(epoch FROM tier_since) * 1000000)::bigint, ruleset_version,
           partition, due_day, change_id, scored_day, stable_until, first_day,
           last_purchase_day, frequency, monetary, frequency_short, monetary_short,
           interactions
    FROM customers WHERE partition = $1 AND {where} LIMIT $4
"""
_PAGE = _RESCAN.format(where="customer_id > $3 ORDER BY customer_id")
_DUE_PAGE = _RESCAN.format(
    where="due_day <= $2 AND (due_day, customer_id) > ($5, $3) ORDER BY due_day, customer_id"
)
# A page read in index order, whatever the statistics: on a table no ANALYZE has seen yet
# (a new deployment, a bulk load) the planner estimated a few hundred rows and read the
# whole rest of the partition into a bitmap and a sort for every page (quadratic in the
# partition's size: 5.7 us per customer re-tiered at 300,000, against ~1.5 in order).
_IN_INDEX_ORDER = "SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off"
_AS_CONFIGURED = "SET LOCAL enable_sort TO DEFAULT; SET LOCAL enable_bitmapscan TO DEFAULT"
_SNAPSHOT_SET = """
        frequency = u.frequency, monetary = u.monetary,
        frequency_short = u.frequency_short, monetary_short = u.monetary_short,
        interactions = u.interactions, first_day = u.first_day,
        last_purchase_day = u.last_purchase_day, scored_day = u.scored_day,
        stable_until = u.stable_until, updated_at = now()
"""
_SNAPSHOT_AS = """frequency, monetary, frequency_short, monetary_short, interactions,
                first_day, last_purchase_day, scored_day, stable_until)"""
# The writes take their columns as array literals (tierstream_native.pg_array: asyncpg's
# encoding of a list costs more than the statement on the server), the states as bytea[].
# Not the batch's load: an array cast from text is not a constant to the planner, which then
# planned the load otherwise (measured with its earlier `= ANY(...)`: 3.0 -> 36 ms a batch).
# rows whose tier moved, and rows whose due day or snapshot alone moved (engine's `rescore`)
_MOVED = (
    """
    UPDATE customers c SET
        tier = u.tier, ruleset_version = u.ruleset_version, change_id = u.change_id,
        tier_since = timestamptz 'epoch' + u.since * interval '1 microsecond',
        due_day = u.due_day, """
    + _SNAPSHOT_SET
    + """
    FROM unnest($1::text::text[], $2::text::text[], $3::text::bigint[], $4::text::text[],
                $5::text::text[], $6::text::int[], $7::text::int[], $8::text::bigint[],
                $9::text::int[], $10::text::bigint[], $11::text::int[], $12::text::int[],
                $13::text::int[], $14::text::int[], $15::text::int[])
        AS u(customer_id, tier, since, ruleset_version, change_id, due_day, """
    + _SNAPSHOT_AS
    + """
    WHERE c.partition = $16 AND c.customer_id = u.customer_id
"""
)
_RESCHEDULED = (
    """
    UPDATE customers c SET due_day = u.due_day, """  # noqa: S608 - constants, no input
    + _SNAPSHOT_SET
    + """
    FROM unnest($1::text::text[], $2::text::int[], $3::text::int[], $4::text::bigint[],
                $5::text::int[], $6::text::bigint[], $7::text::int[], $8::text::int[],
                $9::text::int[], $10::text::int[], $11::text::int[])
        AS u(customer_id, due_day, """
    + _SNAPSHOT_AS
    + """
    WHERE c.partition = $12 AND c.customer_id = u.customer_id
"""
)
# a saved customer's row replaces the stored one (both saves: here and customers.py)
UPSERT = """
    ON CONFLICT (customer_id, partition) DO UPDATE SET
        state = excluded.state, tier = excluded.tier, tier_since = excluded.tier_since,
        ruleset_version = excluded.ruleset_version, due_day = excluded.due_day,
        change_id = excluded.change_id,
        frequency = excluded.frequency, monetary = excluded.monetary,
        frequency_short = excluded.frequency_short, monetary_short = excluded.monetary_short,
        interactions = excluded.interactions, first_day = excluded.first_day,
        last_purchase_day = excluded.last_purchase_day, scored_day = excluded.scored_day,
        stable_until = excluded.stable_until, updated_at = now()
"""
# an instant from µs: interval * float8, exact below 2^53 µs (the year 2255)
_SAVE = (
    """
    INSERT INTO customers (customer_id, state, tier, tier_since, ruleset_version, partition,
                           due_day, change_id, frequency, monetary, frequency_short,
                           monetary_short, interactions, first_day, last_purchase_day,
                           scored_day, stable_until, updated_at)
    SELECT u.customer_id, u.state, u.tier,
           timestamptz 'epoch' + u.since * interval '1 microsecond',
           u.version, u.partition, u.due_day, u.change_id, u.frequency, u.monetary,
           u.frequency_short, u.monetary_short, u.interactions, u.first_day,
           u.last_purchase_day, u.scored_day, u.stable_until, now()
    FROM unnest($1::text::text[], $2::bytea[], $3::text::text[], $4::text::bigint[],
                $5::text::text[], $6::text::int[], $7::text::int[], $8::text::text[],
                $9::text::int[], $10::text::bigint[], $11::text::int[], $12::text::bigint[],
                $13::text::int[], $14::text::int[], $15::text::int[], $16::text::int[],
                $17::text::int[])
        AS u(customer_id, state, tier, since, version, partition, due_day, change_id,
             frequency, monetary, frequency_short, monetary_short, interactions, first_day,
             last_purchase_day, scored_day, stable_until)
"""  # noqa: S608 - two constants, no input
    + UPSERT
)


class ColumnRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def load(self, customer_ids: Sequence[str], partitions: Sequence[int]) -> list[Any]:
        """The stored rows of the customers `customer_ids`, each of the partition at the same
        index of `partitions`."""
        if not customer_ids:
            return []
        driver = await driver_connection(self._session)
        return list(await driver.fetch(*by_partition(_LOAD, customer_ids, partitions)))

    async def due(self, partition: int, day: int, after: str, limit: int) -> list[Any]:
        driver = await driver_connection(self._session)
        return list(await driver.fetch(_DUE, partition, day, after, limit))

    async def rescan(self, partition: int, day: int, after: str, limit: int) -> list[Any]:
        """A page of the partition's customers after `after` in id order, for the engine's
        `rescore`."""
        return await in_index_order(
            await driver_connection(self._session), _PAGE, partition, day, after, limit
        )

    async def due_page(
        self, partition: int, day: int, after: tuple[int, str], limit: int
    ) -> list[Any]:
        """A page of the partition's customers due by `day`, by due day then id, after
        `after` (the last one read's due day and id), for the engine's `rescore`."""
        due, customer = after
        return await in_index_order(
            await driver_connection(self._session), _DUE_PAGE, partition, day, customer, limit, due
        )

    async def rescored(
        self, partition: int, moved: Sequence[list[Any]], rescheduled: Sequence[list[Any]]
    ) -> None:
        """The columns of the engine's `rescore` of a page of the partition: rows whose tier
        moved, and rows whose due day or snapshot alone moved."""
        driver = await driver_connection(self._session)
        if moved[0]:
            await driver.execute(_MOVED, *map(pg_array, moved), partition)
        if rescheduled[0]:
            await driver.execute(_RESCHEDULED, *map(pg_array, rescheduled), partition)

    async def save(self, columns: Sequence[list[Any]]) -> None:
        if columns[0]:
            driver = await driver_connection(self._session)
            ids, *rest = map(pg_array, (columns[0], *columns[2:]))  # the states as bytea[]
            await driver.execute(_SAVE, ids, columns[1], *rest)


def by_partition(
    select: str, customer_ids: Sequence[str], partitions: Sequence[int]
) -> tuple[Any, ...]:
    """A statement and its parameters reading the customers `customer_ids` (each of the
    partition at the same index of `partitions`) with `select`'s columns: one SELECT per
    partition, on the partition's own table, joined by UNION ALL. Through the partitioned
    table PostgreSQL planned every partition's table for every batch (each statement is
    planned with its parameters): 10 - 16 ms a batch, and a hash join over all of them."""
    ids: dict[int, list[str]] = {}
    for customer_id, partition in zip(customer_ids, partitions, strict=True):
        ids.setdefault(partition, []).append(customer_id)
    parts = sorted(ids)
    query = " UNION ALL ".join(
        f"{select} FROM {_table(p)} WHERE customer_id = ANY(${n}::text[]){_only(p)}"
        for n, p in enumerate(parts, start=1)
    )
    return (query, *(ids[p] for p in parts))


def _table(partition: int) -> str:
    """The table of the partition's customers (migration 0017)."""
    return f"customers_p{partition:d}" if 0 <= partition < OWN_TABLES else "customers_rest"


def _only(partition: int) -> str:
    """The condition a partition's rows need in its table (the shared one holds others)."""
    return "" if 0 <= partition < OWN_TABLES else f" AND partition = {partition:d}"


async def in_index_order(driver: Any, query: str, *args: object) -> list[Any]:
    """`query`'s rows, planned without a sort or a bitmap (so in the order of the index
    its ORDER BY follows), the planner's settings restored afterwards."""
    await driver.execute(_IN_INDEX_ORDER)
    rows = list(await driver.fetch(query, *args))
    await driver.execute(_AS_CONFIGURED)
    return rows
