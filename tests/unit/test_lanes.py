"""How the maintenance lanes share the partitions held (services/effectively_once/loop.py)."""

from hypothesis import given
from hypothesis import strategies as st

from services.effectively_once.loop import shares


@given(st.sets(st.integers(0, 255), max_size=64), st.integers(1, 8))
def test_the_shares_are_disjoint_cover_every_partition_and_are_even(
    held: set[int], lanes: int
) -> None:
    dealt = shares(list(held), lanes)
    assert sorted(p for share in dealt for p in share) == sorted(held)
    assert len(dealt) == min(lanes, len(held))
    assert all(share for share in dealt)
    if dealt:
        assert max(map(len, dealt)) - min(map(len, dealt)) <= 1


def test_partitions_are_dealt_in_order() -> None:
    assert shares([3, 0, 2, 1, 4], 2) == [[0, 2, 4], [1, 3]]
    assert shares([5], 3) == [[5]]
