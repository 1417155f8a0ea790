"""The scorer in-process against the real broker and PostgreSQL: tier changes out, poison to
the dead-letter topic, duplicates ignored, time-driven changes at the day boundary."""

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from harness.scorer_run import (
    CUSTOMER_EVENTS,
    CUSTOMER_TIERS,
    DEAD_LETTERS,
    RULESETS,
    TIER_CHANGES,
    Clock,
    applied,
    caught_up,
    produce,
    records,
    running_scorer,
    settings,
    swept,
)
from schemas.v1.deadletter import DeadLetterV1
from schemas.v1.tiers import CustomerTierV1, TierChangedV1
from services import migrations
from services.effectively_once.record import Record
from services.scorer import lifecycle, preview
from tests import events
from tests.kafka_reader import Message, read_all

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def changes(messages: list[Message]) -> list[TierChangedV1]:
    return [TierChangedV1.model_validate_json(m.value or b"") for m in messages]


async def test_events_become_tier_changes_with_the_why(
    kafka_bootstrap: str, database_url: str, topic_prefix: str
) -> None:
    await asyncio.to_thread(migrations.upgrade, database_url)
    config = settings(kafka_bootstrap, database_url, topic_prefix)
    purchases = [
        events.transaction(customer="C-1", amount="6000.00", time=iso(NOW - timedelta(days=d)))
        for d in (1, 2, 3)
    ]
    batch = records([*purchases, events.interaction("C-2"), purchases[0]])  # one repeated
    await produce(kafka_bootstrap, topic_prefix + CUSTOMER_EVENTS, batch)
    async with running_scorer(config, Clock(NOW)) as scorer:
        await caught_up(scorer)
        answer = await scorer.queries.customer("C-1", None)
        history = await scorer.queries.history("C-1")
    found = changes(await read_all(kafka_bootstrap, topic_prefix + TIER_CHANGES, 4))
    by_customer = {
        c.customer_id: [x for x in found if x.customer_id == c.customer_id] for c in found
    }
    assert [c.to_tier.id for c in by_customer["C-1"]] == [
        "general_develop",  # 6000: M low
        "important_develop",  # 12000: M high, F 2 low
        "important_value",  # F 3
    ]
    assert [c.direction for c in by_customer["C-1"]] == ["initial", "up", "up"]
    assert [c.to_tier.id for c in by_customer["C-2"]] == ["general_winback"]
    assert len({c.change_id for c in found}) == len(found) == 4  # the repeat counted once
    assert answer is not None
    assert answer.tier.id == answer.why.matched_rule == "important_value"
    assert str(answer.why.features.monetary) == "18000"
    assert answer.why.features.frequency == 3
    assert answer.why.thresholds.frequency == 3
    assert history is not None
    assert [h["change_id"] for h in history] == [c.change_id for c in by_customer["C-1"]]
    latest = await read_all(kafka_bootstrap, topic_prefix + CUSTOMER_TIERS, 4)
    tiers = [CustomerTierV1.model_validate_json(m.value or b"") for m in latest]
    assert {t.change_id for t in tiers} == {c.change_id for c in found}
    assert all(
        m.headers["ce_id"].decode() == c.change_id for m, c in zip(latest, tiers, strict=True)
    )


async def test_poison_goes_to_dead_letters_and_the_partition_moves_on(
    kafka_bootstrap: str, database_url: str, topic_prefix: str
) -> None:
    await asyncio.to_thread(migrations.upgrade, database_url)
    config = settings(kafka_bootstrap, database_url, topic_prefix, exchange_rates={"USD": "7.1"})
    good = records([events.transaction(customer="P-1", event_id="E-1")])[0]
    conflicting = records([events.transaction(customer="P-1", event_id="E-1", amount="5.00")])[0]
    euro = events.transaction(customer="P-1")
    euro["data"]["currency"] = "EUR"
    wrong_key = records([events.interaction("P-2")])[0]
    unknown = Record(b"P-1", b"{}", [("ce_specversion", b"1.0"), ("ce_type", b"x.unknown")])
    poison = [
        Record(b"P-1", b"not json", [("ce_specversion", b"1.0")]),
        Record(b"P-1", b"{}", []),
        unknown,
        Record(wrong_key.key + b"X", wrong_key.value, wrong_key.headers),
        records([euro])[0],
        good,
        conflicting,
    ]
    after = records([events.interaction("P-1")])[0]
    await produce(kafka_bootstrap, topic_prefix + CUSTOMER_EVENTS, [*poison, after])
    async with running_scorer(config, Clock(NOW)) as scorer:
        await caught_up(scorer)
    letters = await read_all(kafka_bootstrap, topic_prefix + DEAD_LETTERS, 6)
    why = [DeadLetterV1.from_headers(list(m.headers.items())) for m in letters]
    assert sorted(w.reason for w in why) == sorted(
        [
            "undecodable",
            "undecodable",
            "unsupported_type",
            "invalid_event",
            "unknown_currency",
            "conflicting_duplicate",
        ]
    )
    assert all(w.service == "scorer" and w.topic == topic_prefix + CUSTOMER_EVENTS for w in why)
    assert any("EUR" in w.error for w in why)
    assert {m.value for m in letters} >= {b"not json", conflicting.value}
    found = changes(await read_all(kafka_bootstrap, topic_prefix + TIER_CHANGES, 1))
    # the good event and the one after the poison were both applied (P-1 only; P-2 was poison)
    assert [c.customer_id for c in found] == ["P-1"]
    async with running_scorer(config, Clock(NOW)) as scorer:
        answer = await scorer.queries.customer("P-1", None)
    assert answer is not None
    assert answer.why.features.frequency == 1
    assert answer.why.features.interactions_30d == 1


async def test_time_alone_downgrades_at_the_day_boundary(
    kafka_bootstrap: str, database_url: str, topic_prefix: str
) -> None:
    await asyncio.to_thread(migrations.upgrade, database_url)
    config = settings(kafka_bootstrap, database_url, topic_prefix)
    clock = Clock(NOW)
    bought = events.transaction(customer="T-1", amount="20000.00", time=iso(NOW))
    await produce(kafka_bootstrap, topic_prefix + CUSTOMER_EVENTS, records([bought]))
    async with running_scorer(config, clock) as scorer:
        await caught_up(scorer)
        clock.moment = NOW + timedelta(days=90)  # recency 90: still high
        await swept(scorer, clock.moment)
        clock.moment = datetime(2026, 11, 20, 0, 0, 1, tzinfo=UTC) + timedelta(days=91)
        found = changes(await read_all(kafka_bootstrap, topic_prefix + TIER_CHANGES, 2))
    assert [c.to_tier.id for c in found] == ["important_develop", "important_winback"]
    drop = found[1]
    assert drop.direction == "down"
    assert drop.cause.kind == "clock"
    assert drop.cause.reason == "time_passed"
    assert drop.features.recency_days == 91
    assert drop.changed_at == clock.moment
    assert drop.previous_tier_seconds == int((clock.moment - NOW).total_seconds())


async def test_preview_shows_exactly_what_activation_then_does(
    kafka_bootstrap: str, database_url: str, topic_prefix: str
) -> None:
    """The CLI's preview and activation (`tierstream rules preview/activate` run these), on the
    live state of a running scorer: the moves it shows are the changes activation emits."""
    await asyncio.to_thread(migrations.upgrade, database_url)
    # a budget of 7 customers per transaction: the re-tier takes many transactions
    config = settings(kafka_bootstrap, database_url, topic_prefix, transaction_budget=7)
    amounts = ["3000.00", "6000.00", "7500.00", "12000.00", "800.00"]
    posted = [
        events.transaction(
            customer=f"A-{n}", amount=amounts[n % 5], time=iso(NOW - timedelta(days=n % 120))
        )
        for n in range(60)
    ]
    await produce(kafka_bootstrap, topic_prefix + CUSTOMER_EVENTS, records(posted))
    cheaper = (
        (RULESETS / "default.yaml")
        .read_text()
        .replace("version: rfm-segments-1", "version: rfm-segments-2")
        .replace('monetary: "10000.00"', 'monetary: "5000.00"')
    )
    clock = Clock(NOW)
    async with running_scorer(config, clock) as scorer:
        await caught_up(scorer)
        found = await preview.preview(
            scorer.sessions,
            cheaper,
            scoring=scorer.scoring,
            topic=scorer.topic,
            clock="wall",
            now=clock,
        )
        await lifecycle.activate_text(
            scorer.sessions, cheaper, "test", scorer.scoring.windows, actor="test"
        )
        await applied(scorer, "rfm-segments-2")
        await caught_up(scorer)
        tiers = await scorer.queries.tier_counts()
    moved = sum(found.moves.values())
    assert found.customers == 60
    assert moved > 0
    found_changes = changes(
        await read_all(kafka_bootstrap, topic_prefix + TIER_CHANGES, 60 + moved)
    )
    activated = [
        c
        for c in found_changes
        if c.cause.kind == "clock" and c.cause.reason == "ruleset_activated"
    ]
    assert Counter(
        (c.from_tier.id if c.from_tier else "none", c.to_tier.id) for c in activated
    ) == (found.moves)
    assert all(c.ruleset_version == "rfm-segments-2" for c in activated)
    assert tiers == dict(found.tiers)


async def test_every_activation_is_its_own_cause(
    kafka_bootstrap: str, database_url: str, topic_prefix: str
) -> None:
    """v1 -> v2 -> v1 -> v2 (SPEC §11): each activation moves the customer, and each move has
    a change id of its own, on the topic, in the tier history and in the latest tier. (The
    id used to hash the version alone: the second activation of v2 reused the first one's
    id, so the history, the notifier and any subscriber deduping by id dropped it.)"""
    await asyncio.to_thread(migrations.upgrade, database_url)
    config = settings(kafka_bootstrap, database_url, topic_prefix)
    v1 = (RULESETS / "default.yaml").read_text()
    v2 = v1.replace("version: rfm-segments-1", "version: rfm-segments-2").replace(
        'monetary: "10000.00"', 'monetary: "5000.00"'
    )
    # monetary 7500: low against v1's 10000, high against v2's 5000
    posted = [events.transaction(customer="F-1", amount="7500.00", time=iso(NOW))]
    await produce(kafka_bootstrap, topic_prefix + CUSTOMER_EVENTS, records(posted))
    async with running_scorer(config, Clock(NOW)) as scorer:
        await caught_up(scorer)
        for version, text in (("rfm-segments-2", v2), ("rfm-segments-1", v1)) * 2:
            await lifecycle.activate_text(
                scorer.sessions, text, "test", scorer.scoring.windows, actor="test"
            )
            await applied(scorer, version)
            await caught_up(scorer)
        history = await scorer.queries.history("F-1")
        answer = await scorer.queries.customer("F-1", None)
    found = changes(await read_all(kafka_bootstrap, topic_prefix + TIER_CHANGES, 5))
    assert [c.to_tier.id for c in found] == ["general_develop", "important_develop"] * 2 + [
        "general_develop"
    ]
    assert [c.ruleset_version for c in found[1:]] == ["rfm-segments-2", "rfm-segments-1"] * 2
    ids = [c.change_id for c in found]
    assert len(set(ids)) == 5, ids
    assert history is not None
    assert [entry["change_id"] for entry in history] == ids
    assert answer is not None
    assert answer.change_id == ids[-1]


async def test_population_thresholds_are_the_means_of_active_customers(
    kafka_bootstrap: str, database_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    await asyncio.to_thread(migrations.upgrade, database_url)
    ruleset = tmp_path / "population.yaml"
    ruleset.write_text(
        (RULESETS / "default.yaml")
        .read_text()
        .replace("version: rfm-segments-1", "version: rfm-population-1")
        .replace("mode: fixed", "mode: population")
    )
    config = settings(
        kafka_bootstrap,
        database_url,
        topic_prefix,
        ruleset_file=ruleset,
        population_refresh_seconds=1,
    )
    plan = {"P-0": (1, "1000.00", 10), "P-1": (2, "1000.00", 20), "P-2": (3, "3000.00", 30)}
    plan["P-3"] = (6, "5000.00", 40)
    posted = [
        events.transaction(customer=c, amount=a, time=iso(NOW - timedelta(days=d + k)))
        for c, (n, a, d) in plan.items()
        for k in range(n)
    ]
    posted.append(events.interaction("P-9"))  # never purchased: not active, not counted
    await produce(kafka_bootstrap, topic_prefix + CUSTOMER_EVENTS, records(posted))
    # means: frequency (1+2+3+6)/4 = 3; monetary (1000+2000+9000+30000)/4 = 10500.00;
    # recency (10+20+30+40)/4 = 25
    label = "rfm-population-1@r25f3m1050000"
    async with running_scorer(config, Clock(NOW)) as scorer:
        await caught_up(scorer)
        await applied(scorer, label)
        await caught_up(scorer)
        answer = await scorer.queries.customer("P-3", None)
    assert answer is not None
    assert answer.why.thresholds.mode == "population"
    assert answer.why.thresholds.recency_days == Decimal(25)
    assert answer.why.thresholds.frequency == Decimal(3)
    assert str(answer.why.thresholds.monetary) == "10500"
    assert answer.why.levels.frequency == "high"  # 6 >= 3
    assert answer.why.levels.recency == "low"  # 40 > 25
    assert answer.tier.id == "important_retain"
