"""The quix-streams peer: per customer, what the scorer's default ruleset reads (SPEC §4), from
the same customer-events topic, with exactly-once processing and RocksDB state.

Records are CloudEvents in Kafka binary mode (the attributes in `ce_*` headers, the data as
the JSON value, the customer id as the key), as the scorer reads them. Per customer the
state holds what the scorer's does for these features: one bucket per local day (UTC) with
purchases, purchased and refunded amounts (integer minor units, converted exactly from the
decimal strings) and interactions, the days more than 365 + 365 days behind the customer's
latest day dropped; the first day; the last purchase; the segment.

Events already seen (the same source and id; the workload sends some twice) are skipped.
The ids seen are kept in the customer's own state value (one RocksDB read and one write per
event, one changelog record per customer per checkpoint), with their event days: an id is
remembered while its day is within 400 days of the customer's latest event day (the
scorer's `dedupe_retention_days`, counted in event time, per customer), at most the
SEEN_MAX most recent ones. A repeat older than that would land in a day the features no
longer read (they read 365 days) unless it arrives among more than SEEN_MAX newer events of
its customer. (An earlier version kept a TTL'd state key per event: a RocksDB read, a write
and a changelog record more per event, and the TTL store's stamps and sweeps; 4x the time.)

After each event the customer's features are computed at today = the larger of the clock's
day and the customer's latest day: the wall clock's, or (`--clock event`, SPEC §4 replay) the
latest event day seen in the partition. Then the segment, with the default ruleset's fixed
thresholds (services/scorer/rulesets/default.yaml), and a change message to the output topic
when it differs from the customer's last one (the first one too, as the scorer's `initial`).
Unlike the scorer it makes no time-driven changes: nothing sweeps customers without events
at a day boundary (quix-streams has no timer per key), which on the event clock is work the
scorer does and the peer does not.

The per-record work is kept to what the features need: only the value of a transaction is
parsed (the value deserializer is "bytes", orjson as quix's own JSON), the `ce_*` headers
are read as bytes and only the source and id decoded, a UTC time's day comes from its date
(any other offset through `datetime.fromisoformat`), a plain amount ("123.45") is converted
with integer arithmetic (anything else through `Decimal`, as exactly).

Run with the peer's interpreter (see bench/peer/__init__.py); it writes one line, "started",
to stdout when it processes its first record, and stops on SIGTERM. Imports nothing of the
project, so that it runs without the project's packages.
"""

import argparse
import sys
import time
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

import orjson
from quixstreams import Application, message_context
from quixstreams.models import TopicConfig

# the default ruleset's fixed thresholds (rfm-segments-1)
RECENCY_DAYS = 90
FREQUENCY = 3
MONETARY_MINOR = 1_000_000  # 10000.00 CNY
CURRENCY = "CNY"  # the base currency; 2 minor digits
MAIN, SHORT, INTERACTIONS = 365, 90, 30  # the windows, days
RETAINED = MAIN + 365  # the scorer's Windows.retained: the main window and a year of history
SEEN_DAYS = 400  # the scorer's dedupe_retention_days, here in the customer's event days
SEEN_MAX = 1000  # ids kept per customer at most (the most recent)
SEGMENTS = {
    (True, True, True): "important_value",
    (True, False, True): "important_develop",
    (False, True, True): "important_retain",
    (False, False, True): "important_winback",
    (True, True, False): "general_value",
    (True, False, False): "general_develop",
    (False, True, False): "general_retain",
    (False, False, False): "general_winback",
}
EPOCH_DAY = date(1970, 1, 1).toordinal()
TRANSACTION, INTERACTION = b"tierstream.transaction", b"tierstream.interaction"
PURCHASE, REFUND, INTERACTED = 0, 1, 2  # what an event does to its day's bucket
STATE_KEY = b"c"  # the customer's one state key (under quix's prefix: the message key)

# a customer's state (JSON, quix's default state serializer): [first day, latest day, last
# purchase day or None, segment or None, [[day, purchases, purchased, refunded,
# interactions], ...] in day order, [id seen, ...] oldest first, [its event day, ...]]
Customer = list[Any]
Bucket = list[int]
# an id seen: the source's length, ":", the source, the id (unambiguous for any two strings)
Seen = str


class Peer:
    """The per-record function and what it keeps across records of a partition (the event
    clock: the latest event day seen per partition, in memory)."""

    def __init__(self, clock: str) -> None:
        self.event_clock = clock == "event"
        self.latest: dict[int, int] = {}  # partition -> latest event day seen
        self.started = False

    def __call__(
        self,
        value: bytes,
        key: bytes,
        _timestamp: int,
        headers: list[tuple[str, bytes]] | None,
        state: Any,
    ) -> dict[str, Any] | None:
        if not self.started:
            self.started = True
            sys.stdout.write("started\n")
            sys.stdout.flush()
        ce = dict(headers) if headers else {}
        kind = ce.get("ce_type")
        if kind == TRANSACTION:
            data = orjson.loads(value)
            amount = _minor_units(data["amount"], data["currency"])
            what = PURCHASE if data["kind"] == "purchase" else REFUND
        elif kind == INTERACTION:
            amount, what = 0, INTERACTED
        else:
            return None  # profiles change nothing the default ruleset reads
        source, event_id = ce["ce_source"].decode(), ce["ce_id"].decode()
        seen = f"{len(source)}:{source}{event_id}"
        day = _day(ce["ce_time"])
        customer: Customer | None = state.get(STATE_KEY)
        if customer is None:
            customer = [day, day, None, None, [], [], []]
        elif seen in customer[5]:
            return None
        _remember(customer, seen, day)
        _apply(customer, day, what, amount)
        today = max(self._today(day), customer[1])
        segment = _segment(customer, today)
        before = customer[3]
        customer[3] = segment
        state.set(STATE_KEY, customer)
        if segment == before:
            return None
        return {
            "customer": key.decode(),
            "from": before,
            "to": segment,
            "day": date.fromordinal(today).isoformat(),
            "cause": {"source": source, "id": event_id},
        }

    def _today(self, day: int) -> int:
        if not self.event_clock:
            return EPOCH_DAY + int(time.time() // 86_400)
        partition: int = message_context().partition
        latest = self.latest.get(partition)
        if latest is None or day > latest:
            self.latest[partition] = latest = day
        return latest


_DAYS: dict[bytes, int] = {}  # a date ("2024-12-09") -> its day number, as met
_UTC = (b"Z", b"z", b"+00:00")


def _day(moment: bytes) -> int:
    """The UTC day of a CloudEvents time (RFC 3339): from its date when it is in UTC."""
    if len(moment) >= 20 and moment.endswith(_UTC):
        day = _DAYS.get(moment[:10])
        if day is None:
            day = _DAYS[moment[:10]] = date.fromisoformat(moment[:10].decode()).toordinal()
        return day
    return datetime.fromisoformat(moment.decode()).astimezone(UTC).date().toordinal()


def _remember(customer: Customer, seen: Seen, day: int) -> None:
    """The id among the customer's seen ones, unless already too old to keep."""
    if day <= customer[1] - SEEN_DAYS:
        return
    ids: list[Seen] = customer[5]
    days: list[int] = customer[6]
    ids.append(seen)
    days.append(day)
    if len(ids) > SEEN_MAX:
        del ids[0], days[0]


def _apply(customer: Customer, day: int, what: int, amount: int) -> None:
    """The event (a purchase or a refund of `amount` minor units, or an interaction) into
    its day's bucket; the days too far behind the latest dropped, and the ids seen too long
    ago forgotten."""
    if what == PURCHASE and (customer[2] is None or day > customer[2]):
        customer[2] = day
    customer[0] = min(customer[0], day)
    days: list[Bucket] = customer[4]
    if day > customer[1]:
        customer[1] = day
        horizon = day - RETAINED
        if days and days[0][0] <= horizon:
            days[:] = [bucket for bucket in days if bucket[0] > horizon]
        _forget(customer, day - SEEN_DAYS)
    elif day <= customer[1] - RETAINED:
        return  # older than the state keeps (the last purchase and first day kept above)
    at = len(days)
    while at and days[at - 1][0] > day:  # mostly the latest day: no step
        at -= 1
    if at and days[at - 1][0] == day:
        bucket = days[at - 1]
    else:
        bucket = [day, 0, 0, 0, 0]
        days.insert(at, bucket)
    if what == PURCHASE:
        bucket[1] += 1
        bucket[2] += amount
    elif what == REFUND:
        bucket[3] += amount
    else:
        bucket[4] += 1


def _forget(customer: Customer, horizon: int) -> None:
    """The ids seen on days up to `horizon` forgotten."""
    days: list[int] = customer[6]
    if customer[0] <= horizon and days and min(days) <= horizon:  # [0]: no day before it
        kept = [n for n, seen_on in enumerate(days) if seen_on > horizon]
        customer[5] = [customer[5][n] for n in kept]
        customer[6] = [days[n] for n in kept]


def _minor_units(amount: str, currency: str) -> int:
    """A decimal string in minor units, exactly (no float): "123.45" -> 12345."""
    if currency != CURRENCY:
        raise ValueError(f"{currency} is not {CURRENCY}")
    whole, _, cents = amount.partition(".")
    if len(cents) == 2 and (whole + cents).isdigit() and amount.isascii():
        return int(whole + cents)  # the usual form, "123.45", in integers
    try:
        minor = Decimal(amount).scaleb(2)
    except InvalidOperation as error:
        raise ValueError(f"not an amount: {amount!r}") from error
    if minor != minor.to_integral_value():
        raise ValueError(f"{amount} has more than 2 decimals")
    return int(minor)


class Features(NamedTuple):
    recency_days: int | None
    frequency: int
    monetary: int  # minor units
    frequency_90d: int
    monetary_90d: int
    interactions_30d: int
    tenure_days: int


def features(customer: Customer, today: int) -> Features:
    """SPEC §4's features at `today` (an event on day d is inside a W-day window when
    today - W < d <= today)."""
    frequency = monetary = frequency_90d = monetary_90d = interactions_30d = 0
    for day, purchases, purchased, refunded, interactions in customer[4]:
        age = today - day
        if age < 0 or age >= MAIN:
            continue
        frequency += purchases
        monetary += purchased - refunded
        if age < SHORT:
            frequency_90d += purchases
            monetary_90d += purchased - refunded
            if age < INTERACTIONS:
                interactions_30d += interactions
    last = customer[2]
    return Features(
        None if last is None else today - last,
        frequency,
        monetary,
        frequency_90d,
        monetary_90d,
        interactions_30d,
        today - customer[0],
    )


def _segment(customer: Customer, today: int) -> str:
    found = features(customer, today)
    recent = found.recency_days is not None and found.recency_days <= RECENCY_DAYS
    return SEGMENTS[(recent, found.frequency >= FREQUENCY, found.monetary >= MONETARY_MINOR)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--input", required=True, help="the customer-events topic")
    parser.add_argument("--output", required=True, help="the topic of segment changes")
    parser.add_argument("--group", required=True, help="the consumer group")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--clock", choices=("wall", "event"), default="wall")
    parser.add_argument("--partitions", type=int, default=12, help="of the output topic")
    parser.add_argument("--commit-interval", type=float, default=1.0, help="seconds")
    args = parser.parse_args()
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        commit_interval=args.commit_interval,
        state_dir=args.state_dir,
        loglevel="WARNING",
        # quix's default, 1 s: with nothing left to consume, the last checkpoint would wait
        # a whole poll before it commits
        consumer_poll_timeout=0.1,
    )
    events = app.topic(args.input, value_deserializer="bytes", key_deserializer="bytes")
    changes = app.topic(
        args.output,
        key_serializer="bytes",
        value_serializer="json",
        config=TopicConfig(num_partitions=args.partitions, replication_factor=1),
    )
    frame = app.dataframe(events)
    frame = frame.apply(Peer(args.clock), stateful=True, metadata=True)
    frame = frame.filter(lambda change: change is not None)
    frame.to_topic(changes)
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
