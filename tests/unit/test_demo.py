"""The demo workload: valid events by the contract (but the deliberate malformed ones),
every kind of customer, owners from the demo directory, heavy-tailed amounts."""

import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from schemas.v1.events import event_adapter
from services.demo import traffic
from services.demo.people import OWNERS

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def test_history_and_live_traffic_are_valid_events_of_every_kind() -> None:
    rng = random.Random(1)
    people = traffic.customers(rng, 200)
    assert {c.kind for c in people} == set(traffic.KINDS)
    assert {c.owner for c in people} == {*OWNERS, "left.the.company"}  # that one: the queue
    events = traffic.history(rng, people, NOW)
    events += [traffic.live(rng, people, NOW) for _ in range(2000)]
    parsed = [event_adapter().validate_python(e) for e in events]
    assert len({(e.source, e.id) for e in parsed}) == len(parsed)  # no accidental repeats
    types = {e.type for e in parsed}
    assert types == {"tierstream.customer", "tierstream.transaction", "tierstream.interaction"}
    kinds = [e.data.kind for e in parsed if e.type == "tierstream.transaction"]
    assert "refund" in kinds
    amounts = sorted(
        Decimal(e["data"]["amount"]) for e in events if e["type"] == "tierstream.transaction"
    )
    assert amounts[len(amounts) // 2] * 10 < amounts[-1]  # a heavy tail


def test_the_malformed_event_is_refused_by_the_contract() -> None:
    rng = random.Random(2)
    bad = traffic.malformed(rng, traffic.customers(rng, 3), NOW)
    with pytest.raises(ValidationError, match="more than 2 decimals"):
        event_adapter().validate_python(bad)
