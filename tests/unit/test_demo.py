"""The demo workload: valid events by the contract (but the deliberate malformed ones),
every kind of customer, owners from the demo directory, heavy-tailed amounts, and what the
example ruleset of SPEC §10 reads (product lines, the owner's meetings, industry, team)."""

import random
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from schemas.v1.events import CustomerEvent, InteractionEvent, TransactionEvent, event_adapter
from services.cli import main
from services.demo import traffic
from services.demo.people import OWNERS, TEAM_OF, demo_directory
from services.notifier.core.directory import parse
from services.scorer.core import rules
from services.scorer.core.declared import UNTRACKED
from services.scorer.core.facts import fact_of, local_day
from services.scorer.core.scoring import EventCause, Standing, inputs, score_event
from services.scorer.core.state import CustomerState, Windows
from services.scorer.settings import DEFAULT_RULESET

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
EXAMPLE = DEFAULT_RULESET.parent / "abc-value.yaml"


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


def test_events_carry_what_the_example_ruleset_reads(tmp_path: Path) -> None:
    rng = random.Random(3)
    people = traffic.customers(rng, 200)
    owners = {c.id: c.owner for c in people}
    history = [event_adapter().validate_python(e) for e in traffic.history(rng, people, NOW)]
    live = [event_adapter().validate_python(traffic.live(rng, people, NOW)) for _ in range(2000)]
    parsed = history + live

    transactions = [e for e in parsed if isinstance(e, TransactionEvent)]
    assert {e.data.attributes["line"] for e in transactions} == set(traffic.LINES)
    purchases = {e.data.order_id: e for e in transactions if e.data.kind == "purchase"}
    assert len(purchases) == sum(e.data.kind == "purchase" for e in transactions)  # ids unique
    refunds = [e for e in transactions if e.data.kind == "refund"]
    assert refunds
    for refund in refunds:  # of an order of the customer: its amount, its line
        order = purchases[refund.data.order_id]
        assert (order.subject, order.data.amount) == (refund.subject, refund.data.amount)
        assert order.data.attributes == refund.data.attributes

    interactions = [e for e in parsed if isinstance(e, InteractionEvent)]
    assert {e.data.channel for e in interactions} >= {"meeting", "call", "email", "web"}
    for e in interactions:  # the owner had the meeting, call or email; nobody else is named
        owned = e.data.channel in traffic.OWNER_CHANNELS
        assert e.data.actor == (owners[e.subject] if owned else None)
        assert e.data.actor is None or e.data.actor in OWNERS  # a person of the directory
    assert any(  # meetings_90d and since_meeting have a past
        isinstance(e, InteractionEvent) and e.data.channel == "meeting" for e in history
    )

    profiles = [e for e in parsed if isinstance(e, CustomerEvent)]
    industries = Counter(p.data.attributes.get("industry") for p in profiles)
    assert set(industries) == {*traffic.INDUSTRIES, None}  # some not known (yet)
    assert {p.data.attributes["region"] for p in profiles} == set(traffic.REGIONS)
    assert len(profiles) > len(people)  # some customers' profile changes later
    demo_directory(tmp_path / "directory.yaml", "http://127.0.0.1:8084", None)
    directory = parse((tmp_path / "directory.yaml").read_text())
    for p in profiles:  # the owner's sales team; the queue when the owner left
        assert p.data.team == TEAM_OF.get(p.data.owner_id, "unassigned")
        assert p.data.team in directory.teams


def test_the_example_ruleset_spreads_the_demo_over_its_tiers() -> None:
    """History and a burst of live traffic through the scorer's pure core under SPEC §10's
    example (wall clock: every event judged at today): customers reach A, B and C, every
    declared feature counts something, and the industry path to A is taken."""
    windows = Windows()
    ruleset = rules.load(EXAMPLE.read_text(encoding="utf-8"), max_window=365)
    zone = ZoneInfo("UTC")
    today = local_day(NOW, zone)
    rng = random.Random(7)
    people = traffic.customers(rng, 120)
    events = traffic.history(rng, people, NOW)
    events += [traffic.live(rng, people, NOW) for _ in range(1500)]
    states: dict[str, CustomerState] = {}
    standings: dict[str, Standing] = {}
    for raw in events:
        event = event_adapter().validate_python(raw)
        states[event.subject], standings[event.subject], _ = score_event(
            event.subject,
            states.get(event.subject),
            standings.get(event.subject),
            fact_of(event, zone, "CNY", {}),
            EventCause(event.source, event.id),
            ruleset=ruleset,
            thresholds=ruleset.thresholds,
            windows=windows,
            clock_day=today,
            now=NOW,
        )
    assert {s.tier.id for s in standings.values()} == {"A", "B", "C"}
    found = [inputs(s, today, windows, ruleset, UNTRACKED) for s in states.values()]
    counted = {name for f in found for name, value in f.declared.items() if value}
    assert counted == {f.name for f in ruleset.plan.features}
    assert not any(f.partial for f in found)  # tracked from each customer's first event
    assert any(
        f.profile is not None
        and f.profile.attributes.get("industry") == "finance"
        and (f.declared["spend_180d"] or 0) >= 100_000_00
        for f in found
    )


def test_the_same_seed_gives_the_same_stream() -> None:
    def stream(seed: int) -> list[dict[str, object]]:
        rng = random.Random(seed)
        people = traffic.customers(rng, 50)
        return traffic.history(rng, people, NOW) + [
            traffic.live(rng, people, NOW) for _ in range(300)
        ]

    assert stream(5) == stream(5)
    assert stream(5) != stream(6)


def test_the_malformed_event_is_refused_by_the_contract() -> None:
    rng = random.Random(2)
    bad = traffic.malformed(rng, traffic.customers(rng, 3), NOW)
    with pytest.raises(ValidationError, match="more than 2 decimals"):
        event_adapter().validate_python(bad)


def test_demo_ruleset_is_activated_before_anything_is_posted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without a database to activate it in, the demo stops before posting (ingest is not
    even reachable here) and says how to activate it by hand."""
    code = main([
        "demo", "--key", "k", "--url", "http://127.0.0.1:1", "--ruleset", "abc-value",
        "--database-url", "postgresql+asyncpg://tierstream:pw@127.0.0.1:1/tierstream",
    ])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "could not activate abc-value in postgresql+asyncpg://tierstream:***@127.0.0.1:1" in err
    assert f"tierstream rules activate {EXAMPLE}" in err


def test_demo_rulesets_are_the_shipped_ones() -> None:
    assert rules.load(EXAMPLE.read_text(encoding="utf-8")).version == "abc-value-1"
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--ruleset", "gold-silver"])
    assert exit_info.value.code == 2
