"""tierstream_native.pg_array against a real PostgreSQL: the array literal it writes, cast
from text as the scorer's writes cast it, is the list it was given — NULLs, quotes,
backslashes, braces, commas, blanks, the word NULL and any other text; int and bigint
bounds."""

import asyncio

import asyncpg  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tierstream_native import pg_array

pytestmark = pytest.mark.integration

texts = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))
tricky = st.sampled_from(["", "NULL", "null", " a ", "{", "}", ",", '"', "\\", '\\"', "a b"])
BIGINT = st.integers(-(2**63), 2**63 - 1)


def read_back(url: str, query: str, literal: str) -> list[object]:
    async def run() -> list[object]:
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:
            return list(await connection.fetchval(query, literal))
        finally:
            await connection.close()

    return asyncio.run(run())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(st.none() | texts | tricky, max_size=40))
def test_text_arrays_read_back_as_given(postgres_url: str, values: list[str | None]) -> None:
    assert read_back(postgres_url, "SELECT $1::text::text[]", pg_array(values)) == values


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(st.none() | BIGINT, max_size=40))
def test_bigint_arrays_read_back_as_given(postgres_url: str, values: list[int | None]) -> None:
    assert read_back(postgres_url, "SELECT $1::text::bigint[]", pg_array(values)) == values


def test_int_arrays_and_their_bounds(postgres_url: str) -> None:
    values = [-(2**31), -1, 0, None, 2**31 - 1]
    assert read_back(postgres_url, "SELECT $1::text::int[]", pg_array(values)) == values
    with pytest.raises(asyncpg.NumericValueOutOfRangeError):
        read_back(postgres_url, "SELECT $1::text::int[]", pg_array([2**31]))


def test_only_none_ints_and_text_are_taken() -> None:
    assert pg_array([]) == "{}"
    for wrong in (True, 1.5, b"x", [1]):
        with pytest.raises(TypeError, match="element 1 is a"):
            pg_array([1, wrong])
