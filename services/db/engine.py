"""One async engine per process, named after the service in pg_stat_activity."""

from typing import Any

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def create_engine(url: str, service: str, pool_size: int = 5) -> AsyncEngine:
    """A transaction left idle (a paused or stuck consumer) is cut off after 30 s, and a
    lock is waited for at most 10 s, so one stale process cannot block the others.

    Every statement is planned with its parameters (`plan_cache_mode`): the services'
    statements are prepared once per connection, and after five executions PostgreSQL may
    keep a generic plan costed on the table as it was. Planned on an empty `customers` (a
    new deployment, a new bench database), the load of a batch's customers by id stayed a
    sequential scan as the table grew: 130 ms per batch at 100,000 customers, and the
    scorer fell seconds behind at 5,000 events/s until autovacuum's first ANALYZE. A custom
    plan costs ~0.1 ms of planning per statement; the batches amortize it."""
    return create_async_engine(
        url,
        pool_size=pool_size,
        pool_pre_ping=True,
        connect_args={
            "server_settings": {
                "application_name": f"tierstream-{service}",
                "idle_in_transaction_session_timeout": "30000",
                "lock_timeout": "10000",
                "plan_cache_mode": "force_custom_plan",
            }
        },
    )


def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def driver_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under the session, inside the session's transaction: for the
    statements whose rows or parameters are too many for the ORM (positional parameters,
    tuples out). SQLAlchemy's asyncpg adapter sends BEGIN only before its own first
    statement; when the session has sent none yet, the transaction is begun here, or a
    statement sent on the driver would commit on its own."""
    connection = await (await session.connection()).get_raw_connection()
    driver = connection.driver_connection
    if driver is None:
        raise RuntimeError("the session's database connection is closed")
    adapter: Any = connection.dbapi_connection
    if getattr(adapter, "_transaction", True) is None:
        await adapter._start_transaction()  # the adapter's own lazy BEGIN
    return driver
