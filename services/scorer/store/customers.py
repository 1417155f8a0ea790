"""The scorer's SQL about customers, and the events seen through seen.py (tiers as a whole:
tiers.py; partitions and rulesets: control.py). Repositories take the caller's session and never
commit."""

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, Literal, NamedTuple

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.db.engine import driver_connection
from services.scorer.core.snapshot import Snapshot
from services.scorer.store.columns import UPSERT, by_partition, in_index_order
from services.scorer.store.seen import SeenRepository, digests_of, event_key

Seen = Literal["new", "duplicate", "conflict"]
_SEEN: tuple[Seen, Seen, Seen] = ("new", "duplicate", "conflict")  # by seen's NEW, SEEN, ..


class StoredCustomer(NamedTuple):
    """Immutable; a tuple, as the re-tier and the sweep read a million of them."""

    customer_id: str
    state: bytes | None  # services/scorer/core/codec.py; None when its snapshot will do
    tier: str | None
    tier_since: datetime | None
    ruleset_version: str | None
    partition: int = 0
    due_day: int = 0  # the first day time alone could change the tier (scoring.due_day)
    change_id: str | None = None  # the change that put the customer in `tier`
    # at the last evaluation; its main-window totals also feed the population thresholds
    snapshot: Snapshot | None = None


class Rescored(NamedTuple):
    """A customer the sweep or a re-tier moved to another tier (the state stays)."""

    customer_id: str
    tier: str
    tier_since: datetime
    ruleset_version: str
    change_id: str | None
    due_day: int
    snapshot: Snapshot


class Rescheduled(NamedTuple):
    """A customer the sweep or a re-tier left in its tier, with a new due day or snapshot."""

    customer_id: str
    due_day: int
    snapshot: Snapshot


# customers are read with asyncpg itself (positional parameters, tuples out): the re-tier
# and the sweep read every customer, and the ORM's rows cost more than the query. The
# columns of all four reads are in `_customer`'s order.
_LOAD = """
    SELECT customer_id, state, tier, tier_since, ruleset_version, partition, due_day, change_id,
           scored_day, stable_until, first_day, last_purchase_day,
           frequency, monetary, frequency_short, monetary_short, interactions
"""
# one customer by id alone, in whichever partition's table holds it (the read API)
_FIND = _LOAD + " FROM customers WHERE customer_id = $1"
# The state is only sent when the stored snapshot does not cover the day ($2) and $5 allows.
_DUE = """
    SELECT customer_id,
           CASE WHEN $5 AND scored_day <= $2 AND $2 < stable_until THEN NULL ELSE state END,
           tier, tier_since, ruleset_version, partition, due_day, change_id,
           scored_day, stable_until, first_day, last_purchase_day,
           frequency, monetary, frequency_short, monetary_short, interactions
    FROM customers WHERE partition = $1 AND due_day <= $2 AND customer_id > $3
    ORDER BY customer_id LIMIT $4
"""
_PAGE = """
    SELECT customer_id,
           CASE WHEN $5 AND scored_day <= $2 AND $2 < stable_until THEN NULL ELSE state END,
           tier, tier_since, ruleset_version, partition, due_day, change_id,
           scored_day, stable_until, first_day, last_purchase_day,
           frequency, monetary, frequency_short, monetary_short, interactions
    FROM customers WHERE partition = $1 AND customer_id > $3
    ORDER BY customer_id LIMIT $4
"""
_SAVE = text(
    """
    INSERT INTO customers (customer_id, state, tier, tier_since, ruleset_version, partition,
                           due_day, change_id, frequency, monetary, frequency_short,
                           monetary_short, interactions, first_day, last_purchase_day,
                           scored_day, stable_until, updated_at)
    SELECT *, now() FROM unnest(
        CAST(:ids AS text[]), CAST(:states AS bytea[]), CAST(:tiers AS text[]),
        CAST(:sinces AS timestamptz[]), CAST(:versions AS text[]), CAST(:partitions AS int[]),
        CAST(:dues AS int[]), CAST(:change_ids AS text[]), CAST(:frequencies AS int[]),
        CAST(:monetaries AS bigint[]), CAST(:frequencies_short AS int[]),
        CAST(:monetaries_short AS bigint[]), CAST(:interactions AS int[]),
        CAST(:first_days AS int[]), CAST(:last_purchases AS int[]),
        CAST(:scored_days AS int[]), CAST(:stable_untils AS int[]))
"""  # noqa: S608 - two constants, no input
    + UPSERT
)
_RESCORED = text("""
    UPDATE customers c SET
        tier = u.tier, tier_since = u.tier_since, ruleset_version = u.ruleset_version,
        change_id = u.change_id, due_day = u.due_day,
        frequency = u.frequency, monetary = u.monetary,
        frequency_short = u.frequency_short, monetary_short = u.monetary_short,
        interactions = u.interactions, first_day = u.first_day,
        last_purchase_day = u.last_purchase_day, scored_day = u.scored_day,
        stable_until = u.stable_until, updated_at = now()
    FROM unnest(
        CAST(:ids AS text[]), CAST(:tiers AS text[]), CAST(:sinces AS timestamptz[]),
        CAST(:versions AS text[]), CAST(:change_ids AS text[]), CAST(:dues AS int[]),
        CAST(:frequencies AS int[]), CAST(:monetaries AS bigint[]),
        CAST(:frequencies_short AS int[]), CAST(:monetaries_short AS bigint[]),
        CAST(:interactions AS int[]), CAST(:first_days AS int[]),
        CAST(:last_purchases AS int[]), CAST(:scored_days AS int[]),
        CAST(:stable_untils AS int[]))
        AS u(customer_id, tier, tier_since, ruleset_version, change_id, due_day, frequency,
             monetary, frequency_short, monetary_short, interactions, first_day,
             last_purchase_day, scored_day, stable_until)
    WHERE c.partition = :partition AND c.customer_id = u.customer_id
""")
_RESCHEDULED = text("""
    UPDATE customers c SET
        due_day = u.due_day, frequency = u.frequency, monetary = u.monetary,
        frequency_short = u.frequency_short, monetary_short = u.monetary_short,
        interactions = u.interactions, first_day = u.first_day,
        last_purchase_day = u.last_purchase_day, scored_day = u.scored_day,
        stable_until = u.stable_until, updated_at = now()
    FROM unnest(
        CAST(:ids AS text[]), CAST(:dues AS int[]),
        CAST(:frequencies AS int[]), CAST(:monetaries AS bigint[]),
        CAST(:frequencies_short AS int[]), CAST(:monetaries_short AS bigint[]),
        CAST(:interactions AS int[]), CAST(:first_days AS int[]),
        CAST(:last_purchases AS int[]), CAST(:scored_days AS int[]),
        CAST(:stable_untils AS int[]))
        AS u(customer_id, due_day, frequency, monetary, frequency_short, monetary_short,
             interactions, first_day, last_purchase_day, scored_day, stable_until)
    WHERE c.partition = :partition AND c.customer_id = u.customer_id
""")
_POPULATION = text("""
    SELECT count(*) AS active, avg(frequency) AS frequency, avg(monetary) AS monetary,
           avg(:today - last_purchase_day) AS recency_days
    FROM customers WHERE frequency > 0 AND last_purchase_day > :today - :window
""")


class ScorerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def record_events(
        self, events: Sequence[tuple[str, str, bytes]]
    ) -> dict[tuple[str, str], Seen]:
        """Marks (source, id, digest) as seen. Keys must be unique within the call (the
        caller dedupes a batch first); a key seen before is a duplicate, or a conflict
        when its content digest differs (the statements: seen.py)."""
        if not events:
            return {}
        keys = [event_key(source, event_id) for source, event_id, _ in events]
        statuses = await SeenRepository(self._session).record(
            keys, digests_of([digest for _, _, digest in events])
        )
        return {
            (source, event_id): _SEEN[status]
            for (source, event_id, _), status in zip(events, statuses, strict=True)
        }

    async def forget_events(self, older_than_days: int, limit: int) -> int:
        """SeenRepository.forget (one instance at a time; see there)."""
        return await SeenRepository(self._session).forget(older_than_days, limit)

    async def load(self, keys: Collection[tuple[str, int]]) -> dict[str, StoredCustomer]:
        """The stored customers of `keys`, (customer id, partition) pairs."""
        if not keys:
            return {}
        driver = await driver_connection(self._session)
        rows = await driver.fetch(*by_partition(_LOAD, [k[0] for k in keys], [k[1] for k in keys]))
        return {row[0]: _customer(row) for row in rows}

    async def find(self, customer_id: str) -> StoredCustomer | None:
        """The customer, whichever partition it is stored in (each partition's key leads
        with the id)."""
        driver = await driver_connection(self._session)
        row = await driver.fetchrow(_FIND, customer_id)
        return None if row is None else _customer(row)

    async def due(
        self, partition: int, day: int, after: str = "", limit: int = 5000, *, lazy: bool = True
    ) -> list[StoredCustomer]:
        """Customers of the partition whose due day has come, in id order after `after`
        (with `lazy`, without their state when their snapshot covers `day`)."""
        rows = await (await driver_connection(self._session)).fetch(
            _DUE, partition, day, after, limit, lazy
        )
        return [_customer(row) for row in rows]

    async def page(
        self, partition: int, day: int, after: str = "", limit: int = 5000, *, lazy: bool = True
    ) -> list[StoredCustomer]:
        """Every customer of the partition, a page at a time, in id order after `after`
        (with `lazy`, without their state when their snapshot covers `day`)."""
        rows = await in_index_order(
            await driver_connection(self._session), _PAGE, partition, day, after, limit, lazy
        )
        return [_customer(row) for row in rows]

    async def save(self, customers: Sequence[StoredCustomer]) -> None:
        if customers:
            await self._session.execute(
                _SAVE,
                {
                    "states": [c.state for c in customers],
                    "partitions": [c.partition for c in customers],
                    **_standings(customers),
                    **_scheduled(customers),
                },
            )

    async def rescored(self, partition: int, customers: Sequence[Rescored | Rescheduled]) -> None:
        """Stores what the sweep or a re-tier decided for customers of the partition; the
        customers' states stay."""
        moved = [c for c in customers if isinstance(c, Rescored)]
        if moved:
            await self._session.execute(
                _RESCORED, {"partition": partition, **_standings(moved), **_scheduled(moved)}
            )
        kept = [c for c in customers if isinstance(c, Rescheduled)]
        if kept:
            await self._session.execute(_RESCHEDULED, {"partition": partition, **_scheduled(kept)})

    async def ping(self) -> None:
        await self._session.execute(text("SELECT 1"))

    async def population(self, today: int, window: int) -> tuple[int, Any, Any, Any]:
        """(customers active in the main window, mean frequency, monetary, recency_days)."""
        row = (await self._session.execute(_POPULATION, {"today": today, "window": window})).one()
        return row.active, row.frequency, row.monetary, row.recency_days


def _customer(row: Any) -> StoredCustomer:
    """From a row of `_LOAD`, `_DUE` or `_PAGE`; a stable_until of 0 means "stored before
    snapshots were" (no snapshot)."""
    snapshot = Snapshot._make(row[8:]) if row[9] else None
    return StoredCustomer(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], snapshot)


def _standings(customers: Sequence[StoredCustomer | Rescored]) -> dict[str, list[Any]]:
    """The standing's parameters of a saved or rescored customer: tier, since, version and
    the change that put it there."""
    return {
        "tiers": [c.tier for c in customers],
        "sinces": [c.tier_since for c in customers],
        "versions": [c.ruleset_version for c in customers],
        "change_ids": [c.change_id for c in customers],
    }


def _scheduled(
    customers: Sequence[StoredCustomer | Rescored | Rescheduled],
) -> dict[str, list[Any]]:
    """The parameters every saved or rescored customer has: id, due day, snapshot."""
    return {
        "ids": [c.customer_id for c in customers],
        "dues": [c.due_day for c in customers],
        **_snapshots([c.snapshot for c in customers]),
    }


def _snapshots(snapshots: Sequence[Snapshot | None]) -> dict[str, list[int | None]]:
    """The snapshot columns' parameters; a customer without one is stored as "none"."""
    known = [s or _NONE for s in snapshots]
    return {
        "frequencies": [s.frequency for s in known],
        "monetaries": [s.monetary for s in known],
        "frequencies_short": [s.frequency_short for s in known],
        "monetaries_short": [s.monetary_short for s in known],
        "interactions": [s.interactions for s in known],
        "first_days": [s.first_day for s in known],
        "last_purchases": [s.last_purchase for s in known],
        "scored_days": [s.day for s in known],
        "stable_untils": [s.stable_until for s in known],
    }


_NONE = Snapshot(0, 0, 0, None, 0, 0, 0, 0, 0)
