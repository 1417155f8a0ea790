"""A ruleset with declared features, a score, customer attributes and stability (SPEC §10,
the shipped abc-value example) through ingest -> Kafka -> scorer -> the tier-change topic and
the API, on the real broker and database."""

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from harness.scorer_run import (
    RULESETS,
    TIER_CHANGES,
    Clock,
    applied,
    caught_up,
    running_scorer,
    settings,
    swept,
)
from schemas.v1.tiers import TierChangedV1
from services import migrations
from services.scorer import lifecycle, preview
from tests import events
from tests.ingest_app import running_ingest
from tests.kafka_reader import read_all

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def bought(customer: str, amount: str, days_ago: int, kind: str = "purchase") -> dict[str, Any]:
    event = events.transaction(
        customer=customer,
        amount=amount,
        kind=kind,
        time=(NOW - timedelta(days=days_ago)).isoformat(),
    )
    event["data"]["attributes"] = {"line": "software"}
    return event


def met(customer: str, days_ago: int) -> dict[str, Any]:
    event = events.interaction(customer, source="erp/crm")
    event["time"] = (NOW - timedelta(days=days_ago)).isoformat()
    event["data"] = {"channel": "meeting", "action": "review", "actor": "p-li"}
    return event


def profile(customer: str, industry: str) -> dict[str, Any]:
    event = events.customer(customer, source="erp/crm")
    event["data"]["attributes"] = {"industry": industry}
    return event


async def test_a_declared_ruleset_from_ingest_to_the_topic_and_the_api(
    kafka_bootstrap: str, database_url: str, topic_prefix: str
) -> None:
    await asyncio.to_thread(migrations.upgrade, database_url)
    config = settings(
        kafka_bootstrap, database_url, topic_prefix, ruleset_file=RULESETS / "abc-value.yaml"
    )
    clock = Clock(NOW)
    async with running_ingest(kafka_bootstrap, topic_prefix) as ingest:
        first = [
            # D-1: recency 10 (40 points x 0.4), 1 order in 180 days (40 x 0.3), 60000 spent
            # (100 x 0.3): 82, tier A
            bought("D-1", "60000.00", 10),
            met("D-1", 3),
            # D-2: nothing in 180 days: C
            bought("D-2", "1000.00", 200),
            # D-4: one old big order (score 54: B), but a finance account spending >= 100000: A
            bought("D-4", "100000.00", 170),
            profile("D-4", "finance"),
        ]
        response = await ingest.post(first, batch=True)
        assert response.status_code == 202, response.text
        async with running_scorer(config, clock) as scorer:
            await caught_up(scorer)
            one = await scorer.queries.customer("D-1", None)
            four = await scorer.queries.customer("D-4", None)
            # a refund: 35000 net -> 73: below A's condition (80), held by its stay_while (72)
            await ingest.post([bought("D-1", "25000.00", 0, "refund")], batch=True)
            await caught_up(scorer)
            held = await scorer.queries.customer("D-1", None)
            # another: 25000 -> 67: stay_while fails, but 7 days in A have not passed
            await ingest.post([bought("D-1", "10000.00", 0, "refund")], batch=True)
            await caught_up(scorer)
            dwelling = await scorer.queries.customer("D-1", None)
            clock.moment = NOW + timedelta(days=7)
            await swept(scorer, clock.moment)
            await caught_up(scorer)
            moved = await scorer.queries.customer("D-1", None)
    found = [
        TierChangedV1.model_validate_json(m.value or b"")
        for m in await read_all(kafka_bootstrap, topic_prefix + TIER_CHANGES, 4)
    ]
    moves = {
        customer: [(c.to_tier.id, c.direction) for c in found if c.customer_id == customer]
        for customer in ("D-1", "D-2", "D-4")
    }
    assert moves == {
        "D-1": [("A", "initial"), ("B", "down")],  # down once the dwell was over
        "D-2": [("C", "initial")],
        # one old big order: score 54, B; then its profile says finance, and it spent 100000
        "D-4": [("B", "initial"), ("A", "up")],
    }
    first_one = next(c for c in found if c.customer_id == "D-1")
    declared = first_one.features.declared
    assert declared["spend_180d"].value == 60000
    assert str(declared["spend_180d"].value) == "60000"
    assert declared["software_365d"].aggregate == "sum"
    assert declared["avg_order_365d"].value == 60000
    assert declared["big_orders_365d"].value == 1
    assert declared["orders_180d"].counts_since is None
    value = first_one.scores["value"]
    assert value.value == 82
    assert {name: c.contribution for name, c in value.components.items()} == {
        "recency": 40,
        "frequency": 12,
        "monetary": 30,
    }
    down = next(c for c in found if c.customer_id == "D-1" and c.direction == "down")
    assert down.cause.kind == "clock"
    assert down.changed_at == NOW + timedelta(days=7)

    assert one is not None
    assert one.tier.id == "A"
    assert one.why.features.declared["meetings_90d"].value == 1
    assert one.why.features.declared["since_meeting"].value == 3
    assert one.why.features.declared["active_days_90d"].value == 2
    assert one.why.scores["value"].value == 82
    assert one.why.held is None
    assert four is not None
    assert four.tier.id == "A"
    assert four.why.attributes == {"industry": "finance"}
    assert four.why.team == "east"
    assert held is not None
    assert held.tier.id == "A"
    assert held.why.matched_rule == "B"
    assert held.why.held is not None
    assert held.why.held.note == "held by stay_while"
    assert dwelling is not None
    assert dwelling.tier.id == "A"
    assert dwelling.why.held is not None
    assert dwelling.why.held.by == "min_days_in_tier"
    assert dwelling.why.held.note == f"held until {(NOW + timedelta(days=7)).date().isoformat()}"
    assert moved is not None
    assert moved.tier.id == "B"
    assert moved.why.held is None


async def test_activating_declared_features_previews_exactly_and_says_what_is_partial(
    kafka_bootstrap: str, database_url: str, topic_prefix: str
) -> None:
    """Customers scored under the default ruleset, then the example activated: its streams
    start with the activation, so the re-tier counts only what the state holds and its
    changes say since when (`counts_since`); the preview shows exactly those moves. Events
    after the activation count in full from then on."""
    await asyncio.to_thread(migrations.upgrade, database_url)
    config = settings(kafka_bootstrap, database_url, topic_prefix, transaction_budget=7)
    example = (RULESETS / "abc-value.yaml").read_text()
    amounts = ["3000.00", "60000.00", "20000.00", "800.00"]
    posted = [bought(f"P-{n}", amounts[n % 4], n % 150) for n in range(30)]
    clock = Clock(NOW)
    async with running_ingest(kafka_bootstrap, topic_prefix) as ingest:
        assert (await ingest.post(posted, batch=True)).status_code == 202
        async with running_scorer(config, clock) as scorer:
            await caught_up(scorer)
            found = await preview.preview(
                scorer.sessions,
                example,
                scoring=scorer.scoring,
                topic=scorer.topic,
                clock="wall",
                now=clock,
            )
            await lifecycle.activate_text(
                scorer.sessions, example, "test", scorer.scoring.windows, actor="test"
            )
            await applied(scorer, "abc-value-1")
            await caught_up(scorer)
            tiers = await scorer.queries.tier_counts()
            await ingest.post([bought("P-1", "1.00", 0)], batch=True)
            await caught_up(scorer)
            after = await scorer.queries.customer("P-1", None)
    moved = sum(found.moves.values())
    assert found.customers == 30
    assert moved == 30  # every customer leaves the eight segments for A, B or C
    messages = await read_all(kafka_bootstrap, topic_prefix + TIER_CHANGES, 30 + moved)
    activated = [
        c
        for c in (TierChangedV1.model_validate_json(m.value or b"") for m in messages)
        if c.cause.kind == "clock" and c.cause.reason == "ruleset_activated"
    ]
    assert (
        Counter((c.from_tier.id if c.from_tier else "none", c.to_tier.id) for c in activated)
        == found.moves
    )
    assert tiers == dict(found.tiers)
    for change in activated:
        spend = change.features.declared["spend_180d"]
        assert spend.value == 0
        assert spend.counts_since is not None  # the stream started after these customers
        assert change.features.declared["since_meeting"].counts_since is not None
    assert after is not None
    # P-1's stream started with its event after the activation: that event counts, and the
    # features still say they count from the day after its earlier history
    assert after.why.features.declared["orders_180d"].value == 1
    assert after.why.features.declared["orders_180d"].counts_since == NOW.date()
