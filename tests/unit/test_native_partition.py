"""The compiled core's partitioner equals aiokafka's default one (murmur2 of the key): a
record must land where `producer.send` would put it, and where the services' other
producers put the same customer's records."""

import pytest
import tierstream_native
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from services.effectively_once.producer import partition_index


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=1000))
def test_equals_the_clients_default_partitioner(key: bytes, count: int) -> None:
    expected = DefaultPartitioner()(key, list(range(count)), [])
    assert tierstream_native.partition_of(key, count) == expected
    assert partition_index(key, count) == expected


def test_known_keys() -> None:
    """Fixed points, whatever Hypothesis draws: every tail length and a long key."""
    for key in (b"", b"a", b"ab", b"abc", b"abcd", b"C-10023", "客户-甲".encode(), b"x" * 1000):
        assert tierstream_native.partition_of(key, 12) == DefaultPartitioner()(
            key, list(range(12)), []
        )


def test_no_partitions_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        tierstream_native.partition_of(b"k", 0)
