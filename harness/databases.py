"""Databases on a PostgreSQL server for one test or one benchmark run: made empty or as a
copy of another, and named in a URL."""

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine


async def create_database(url: str, name: str, template: str | None = None) -> None:
    """An empty database, or a copy of `template` (PostgreSQL copies its files)."""
    copy = "" if template is None else f' TEMPLATE "{template}"'
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.exec_driver_sql(f'CREATE DATABASE "{name}"{copy}')
    await engine.dispose()


def database_on(server_url: str, name: str) -> str:
    """The URL of database `name` on the server of `server_url`."""
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)
