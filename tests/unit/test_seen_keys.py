"""The compiled engine keys the events seen as services/scorer/store/seen.py does (and as
migration 0014 carried them over): one key format, whichever path dedupes."""

import tierstream_native
from hypothesis import given
from hypothesis import strategies as st

from services.scorer.store.seen import event_key


@given(source=st.text(max_size=40), event_id=st.text(max_size=60))
def test_the_engine_makes_the_same_keys(source: str, event_id: str) -> None:
    assert tierstream_native.event_key_for_test(source, event_id) == event_key(source, event_id)


def test_the_source_length_separates_the_parts() -> None:
    assert event_key("a", "bc") != event_key("ab", "c")
    assert len(event_key("erp/orders", "e-1")) == 16
