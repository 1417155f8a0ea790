"""`tierstream demo`: a realistic stream through the ingest API, so that within a minute of
`make up` tiers, tasks, alerts and the dashboard move.

Customers of four kinds: loyal (frequent orders, heavy-tailed values), drifters (good
customers who stopped ordering months ago), returners (stopped, and order again during the
demo) and occasional buyers. First their profiles (owners from the demo directory and their
sales team; some have none and go to the team queue; an industry and a region, and for some
a later profile that changes them) and a year of history with seasonality: orders of a
product line, and the owner's meetings, calls and emails; then live traffic: orders,
interactions, refunds (some of big orders, which drop customers out of the high-value tiers:
retention tasks, alerts), and now and then a malformed event, as real upstream systems send.

Everything the example ruleset of SPEC §10 (`rulesets/abc-value.yaml`) reads is there:
orders carry `attributes.line`, interactions a `channel` and the owner as `actor`, profiles
`attributes.industry`, `attributes.region` and a `team`.
"""

import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from services.demo.people import OWNERS, TEAM_OF

KINDS = ("loyal", "drifter", "returner", "occasional")
LINES = ("software", "hardware", "services")  # an order's `attributes.line`
INDUSTRIES = ("finance", "manufacturing", "retail", "technology", "healthcare", "logistics")
REGIONS = ("east", "north", "south", "west", "central")
OWNER_CHANNELS = ("meeting", "call", "email")  # the owner's own touches: `actor` is the owner
ACTIONS = {
    "meeting": ("quarterly review", "on-site visit", "renewal meeting"),
    "call": ("follow-up call", "check-in call"),
    "email": ("follow-up", "offer"),
    "web": ("visit",),
    "ticket": ("support ticket",),
    "chat": ("question",),
}
BATCH = "application/cloudevents-batch+json"
SINGLE = "application/cloudevents+json"


@dataclass
class Customer:
    id: str
    kind: str
    owner: str  # one not in the directory: the customer goes to the team queue
    orders: list[tuple[str, str, str]]  # (order id, amount, product line) for refunds
    team: str = "unassigned"  # the owner's sales team
    attributes: dict[str, str] = field(default_factory=dict)  # the profile's
    lines: tuple[int, ...] = (1, 1, 1)  # weights: how often they buy each of LINES
    placed: int = 0  # orders so far (the next order's number; refunds do not take it back)

    @property
    def owned(self) -> bool:
        """Whether the owner is in the directory (the one who left has no touches)."""
        return self.owner in OWNERS


def _amount(rng: random.Random, big: bool = False) -> str:
    """Heavy-tailed order values (Pareto), in yuan, exact to the cent."""
    value = min(rng.paretovariate(1.3) * (3000 if big else 400), 500_000)
    return f"{value:.2f}"


def _event(
    rng: random.Random, kind: str, customer: str, moment: datetime, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"demo-{uuid.UUID(int=rng.getrandbits(128), version=4)}",
        "source": "erp/demo" if kind == "tierstream.transaction" else "crm/demo",
        "type": kind,
        "subject": customer,
        "time": moment.isoformat(),
        "data": data,
    }


def _order(rng: random.Random, c: Customer, moment: datetime, big: bool) -> dict[str, Any]:
    order = f"SO-{c.id}-{c.placed}"
    c.placed += 1
    amount = _amount(rng, big)
    line = rng.choices(LINES, weights=c.lines)[0]
    c.orders.append((order, amount, line))
    data = {
        "kind": "purchase",
        "amount": amount,
        "currency": "CNY",
        "order_id": order,
        "attributes": {"line": line},
    }
    return _event(rng, "tierstream.transaction", c.id, moment, data)


def _interaction(rng: random.Random, c: Customer, moment: datetime, channel: str) -> dict[str, Any]:
    """The owner's meetings, calls and emails name them as `actor`; visits, tickets and
    chats come from the customer (a ticket has a severity)."""
    data: dict[str, Any] = {"channel": channel, "action": rng.choice(ACTIONS[channel])}
    if channel in OWNER_CHANNELS:
        data["actor"] = c.owner
    if channel == "ticket":
        data["attributes"] = {"severity": rng.choice(("low", "normal", "high"))}
    return _event(rng, "tierstream.interaction", c.id, moment, data)


def _profile(rng: random.Random, c: Customer, moment: datetime) -> dict[str, Any]:
    data = {
        "name": f"演示客户 {c.id[-4:]}",
        "owner_id": c.owner,
        "team": c.team,
        "attributes": dict(c.attributes),
    }
    return _event(rng, "tierstream.customer", c.id, moment, data)


def customers(rng: random.Random, count: int) -> list[Customer]:
    """Customers of every kind; a tenth have an owner who left the company (their team is
    the queue), a tenth no known industry yet."""
    out = []
    for n in range(count):
        kind = rng.choices(KINDS, weights=(3, 2, 2, 3))[0]
        owner = "left.the.company" if rng.random() < 0.1 else rng.choice(OWNERS)
        attributes = {"region": rng.choice(REGIONS)}
        if rng.random() >= 0.1:
            attributes["industry"] = rng.choices(INDUSTRIES, weights=(2, 3, 2, 2, 1, 1))[0]
        main = rng.randrange(len(LINES))  # the line they mostly buy; now and then the others
        lines = tuple(4 if i == main else rng.choice((0, 1)) for i in range(len(LINES)))
        team = TEAM_OF.get(owner, "unassigned")
        out.append(Customer(f"DEMO-{n:04d}", kind, owner, [], team, attributes, lines))
    return out


def history(rng: random.Random, people: list[Customer], now: datetime) -> list[dict[str, Any]]:
    """Profiles (some updated later in the year), then a year of orders per customer, more of
    them in November and December, and of the owner's touches (none after a customer
    stopped ordering)."""
    out = []
    for c in people:
        out.append(_profile(rng, c, now - timedelta(days=400)))
        if rng.random() < 0.15:  # reclassified: moved region, or an industry learnt at last
            if "industry" in c.attributes:
                c.attributes["region"] = rng.choice(REGIONS)
            else:
                c.attributes["industry"] = rng.choice(INDUSTRIES)
            moment = now - timedelta(days=rng.randint(1, 300), seconds=rng.randint(0, 86_000))
            out.append(_profile(rng, c, moment))
        stop = 0 if c.kind == "loyal" else rng.randint(100, 200)
        orders = {"loyal": 8, "drifter": 6, "returner": 5, "occasional": 2}[c.kind]
        for _ in range(orders):
            day = rng.randint(stop + 1, 365)
            moment = now - timedelta(days=day, seconds=rng.randint(0, 86_000))
            if moment.month not in (11, 12) and rng.random() < 0.3:
                continue  # seasonality: a third of the off-season orders never happen
            out.append(_order(rng, c, moment, big=c.kind != "occasional"))
        touches = {"loyal": 6, "drifter": 3, "returner": 2, "occasional": 1}[c.kind]
        for _ in range(touches):
            moment = now - timedelta(
                days=rng.randint(stop + 1, 365), seconds=rng.randint(0, 86_000)
            )
            channels = OWNER_CHANNELS if c.owned else ("web", "ticket", "chat")
            out.append(_interaction(rng, c, moment, rng.choice(channels)))
    out.sort(key=lambda e: e["time"])
    return out


def live(rng: random.Random, people: list[Customer], now: datetime) -> dict[str, Any]:
    """One event of live traffic at `now`."""
    c = rng.choice(people)
    roll = rng.random()
    if roll < 0.08 and c.orders:  # a refund, often of the customer's biggest order
        refunded = (
            max(c.orders, key=lambda o: float(o[1])) if rng.random() < 0.7 else rng.choice(c.orders)
        )
        c.orders.remove(refunded)
        order, amount, line = refunded
        data = {
            "kind": "refund",
            "amount": amount,
            "currency": "CNY",
            "order_id": order,
            "attributes": {"line": line},
        }
        return _event(rng, "tierstream.transaction", c.id, now, data)
    if roll < 0.35:
        channel = rng.choice(("web", "email", "call", "meeting", "ticket", "chat"))
        if channel in OWNER_CHANNELS and not c.owned:
            channel = "web"  # nobody calls on a customer whose owner left
        return _interaction(rng, c, now, channel)
    if c.kind == "drifter" and rng.random() < 0.8:
        return _interaction(rng, c, now, "web")
    return _order(rng, c, now, big=c.kind in ("loyal", "returner"))


def malformed(rng: random.Random, people: list[Customer], now: datetime) -> dict[str, Any]:
    c = rng.choice(people)
    data = {"kind": "purchase", "amount": "12.345", "currency": "CNY", "order_id": "SO-bad"}
    return _event(rng, "tierstream.transaction", c.id, now, data)


def _chunks(events: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(events), size):
        yield events[start : start + size]


def run(url: str, key: str, *, customers_count: int, seconds: float, rate: float, seed: int) -> int:
    rng = random.Random(seed)  # noqa: S311 - a demo workload, not security
    people = customers(rng, customers_count)
    headers = {"authorization": f"Bearer {key}"}
    sent = rejected = 0
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for chunk in _chunks(history(rng, people, datetime.now(UTC)), 500):
            response = client.post("/v1/events:batch", content=orjson.dumps(chunk),
                                   headers={"content-type": BATCH})  # fmt: skip
            response.raise_for_status()
            sent += len(chunk)
        print(f"history posted: {sent} events for {len(people)} customers", flush=True)
        started = time.monotonic()
        second = 0
        while time.monotonic() - started < seconds:
            tick = time.monotonic()
            now = datetime.now(UTC)
            batch = [live(rng, people, now + timedelta(microseconds=n)) for n in range(int(rate))]
            response = client.post("/v1/events:batch", content=orjson.dumps(batch),
                                   headers={"content-type": BATCH})  # fmt: skip
            response.raise_for_status()
            sent += len(batch)
            if second % 5 == 0:  # now and then, a malformed event (upstream bugs happen)
                bad = client.post("/v1/events", content=orjson.dumps(malformed(rng, people, now)),
                                  headers={"content-type": SINGLE})  # fmt: skip
                rejected += bad.status_code == 422
            second += 1
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
    print(f"demo done: {sent} events accepted, {rejected} malformed ones rejected", flush=True)
    return 0
