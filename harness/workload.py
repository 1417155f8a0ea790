"""A synthetic order history and its oracle: what the scorer must end up with.

The history is a replay: events in time order over `days` distinct local dates (UTC), with
heavy-tailed purchase amounts, refunds, interactions, customers who drift away and come
back, and some events sent twice. The oracle is computed the simple way — features from
the whole list of facts (harness/oracle.py), the ruleset on them — for the
event clock (SPEC §4 replay mode): on the first event of a new day in a partition, every
customer of that partition is evaluated at that day (time passed); then each event's
customer is evaluated after it.

With `attributes`, the events also carry what declared features' `where`s read (SPEC §10):
transactions a product line (`attributes: {"line": ...}`) and interactions the whole spread
of channels; see `generate`.
"""

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from harness.oracle import oracle
from services.effectively_once.producer import partition_index
from services.scorer.core.facts import minor_units
from services.scorer.core.rules import Ruleset, evaluate
from services.scorer.core.scoring import EventCause, change_id
from services.scorer.core.state import Fact, Features, Windows

WINDOWS = Windows()
# with `attributes` (generate): a transaction's product line, an interaction's channel
LINES = ("hardware", "software", "services")
LINE_WEIGHTS = (5, 3, 2)
CHANNELS = ("email", "call", "meeting", "web", "ticket", "chat", "event")
CHANNEL_WEIGHTS = (30, 25, 15, 12, 10, 6, 2)


@dataclass(frozen=True)
class Workload:
    events: list[dict[str, Any]]  # in the order to send, duplicates included
    facts: dict[str, list[Fact]]  # per customer, without duplicates

    def features(self, customer: str, day: int) -> Features:
        return oracle(self.facts[customer], day, WINDOWS)


@dataclass
class Expected:
    """The oracle's tier changes: change id -> (customer, from, to)."""

    changes: dict[str, tuple[str, str | None, str]] = field(default_factory=dict)
    tiers: dict[str, str] = field(default_factory=dict)


def generate(
    customers: int,
    events: int,
    *,
    days: int = 60,
    seed: int = 7,
    attributes: bool = False,
    end: date | None = None,
) -> Workload:
    """With `attributes`, every transaction carries `attributes: {"line": ...}` (hardware,
    software or services) and every interaction a channel among all of the contract's but
    "other" (email most often, events rarely), instead of call, meeting or email alike. Those
    are drawn from a second generator: every other field of every event, the order and the
    facts (which keep what the built-in features read) are those of the call without it.

    The history's `days` are drawn from 730 days from 2023-06-01 (the whole history is in
    the past, whenever the test runs); with `end`, every date is shifted so that the last
    day is `end` (a history that ends today: its windows are full at the wall clock). The
    shift changes nothing else: the same events, a whole number of days later or earlier."""
    rng = random.Random(seed)
    extra = random.Random(f"{seed}-attributes") if attributes else None
    start = date(2023, 6, 1)
    dates = sorted(rng.sample(range(730), days))
    if end is not None:
        start = end - timedelta(days=dates[-1])
    ids = [f"W-{n:05d}" for n in range(customers)]
    # a few customers order much more than most (capped so that the oracle stays fast)
    weights = [min(rng.paretovariate(1.5), 15.0) for _ in ids]
    out: list[dict[str, Any]] = []
    facts: dict[str, list[Fact]] = defaultdict(list)
    per_day = events // days
    for offset in dates:
        day = start + timedelta(days=offset)
        chosen = rng.choices(ids, weights, k=per_day)
        for n, customer in enumerate(chosen):
            moment = datetime.combine(day, time(0), UTC) + timedelta(seconds=n * 86_000 // per_day)
            event = _event(rng, customer, moment, len(out), extra)
            out.append(event)
            facts[customer].append(_fact(event))
            if rng.random() < 0.02:  # sent twice (a retry upstream)
                out.append(event)
    return Workload(out, dict(facts))


def expect(workload: Workload, ruleset: Ruleset, partitions: int) -> Expected:
    expected = Expected()
    by_partition: dict[int, list[dict[str, Any]]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    for event in workload.events:
        key = (event["source"], event["id"])
        if key not in seen:
            seen.add(key)
            by_partition[partition_index(event["subject"].encode(), partitions)].append(event)
    for stream in by_partition.values():
        _expect_partition(stream, ruleset, expected)
    return expected


def _expect_partition(stream: list[dict[str, Any]], ruleset: Ruleset, expected: Expected) -> None:
    history: dict[str, list[Fact]] = defaultdict(list)
    current_day: int | None = None
    for event in stream:
        fact = _fact(event)
        if current_day is None or fact.day > current_day:
            current_day = fact.day
            for customer, facts in history.items():
                _judge(expected, ruleset, customer, facts, current_day, f"time|{current_day}")
        customer = event["subject"]
        history[customer].append(fact)
        day = max(current_day, fact.day)
        _judge(expected, ruleset, customer, history[customer], day, event)


def _judge(
    expected: Expected,
    ruleset: Ruleset,
    customer: str,
    facts: list[Fact],
    day: int,
    cause: dict[str, Any] | str,
) -> None:
    match = evaluate(ruleset, oracle(facts, day, WINDOWS), ruleset.thresholds)
    assert match is not None
    before = expected.tiers.get(customer)
    if before == match.tier.id:
        return
    if isinstance(cause, str):
        new_id = change_id(customer, "time_passed", cause.split("|")[1])
    else:
        new_id = change_id(customer, EventCause(cause["source"], cause["id"]))
    expected.changes[new_id] = (customer, before, match.tier.id)
    expected.tiers[customer] = match.tier.id


def _event(
    rng: random.Random,
    customer: str,
    moment: datetime,
    n: int,
    extra: random.Random | None = None,
) -> dict[str, Any]:
    roll = rng.random()
    base = {
        "specversion": "1.0",
        "id": f"w-{n}",
        "source": "erp/replay",
        "subject": customer,
        "time": moment.isoformat(),
    }
    if roll < 0.25:
        channel = rng.choice(["call", "meeting", "email"])
        if extra is not None:
            channel = extra.choices(CHANNELS, CHANNEL_WEIGHTS)[0]
        return base | {
            "type": "tierstream.interaction",
            "data": {"channel": channel, "action": "follow-up"},
        }
    kind = "refund" if roll < 0.3 else "purchase"
    amount = Decimal(int(rng.lognormvariate(7.5, 1.3) * 100) + 1) / 100
    data: dict[str, Any] = {
        "kind": kind,
        "amount": f"{amount:.2f}",
        "currency": "CNY",
        "order_id": f"O{n}",
    }
    if extra is not None:
        data["attributes"] = {"line": extra.choices(LINES, LINE_WEIGHTS)[0]}
    return base | {"type": "tierstream.transaction", "data": data}


def _fact(event: dict[str, Any]) -> Fact:
    day = datetime.fromisoformat(event["time"]).astimezone(UTC).date().toordinal()
    if event["type"] == "tierstream.interaction":
        return Fact(day, "interaction")
    data = event["data"]
    return Fact(day, data["kind"], minor_units(Decimal(data["amount"]), "CNY", "CNY", {}))
