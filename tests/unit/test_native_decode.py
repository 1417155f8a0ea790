"""The compiled decoding (native/src/event.rs) is exact or refuses: whatever it accepts,
services/scorer/decoding.py's `decode` accepts with the same result (attributes, time,
fact with its attributes' order and types, profile, digest); whatever Python finds poison,
it refuses; and the records the workload and ingest write do take it."""

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import tierstream_native
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from harness.scorer_run import records as workload_records
from harness.workload import generate
from schemas.v1.binding import encode_event
from schemas.v1.events import event_adapter
from services.scorer.compiled_zone import offsets
from services.scorer.core.config import Scoring
from services.scorer.core.facts import local_day
from services.scorer.core.state import Attribute, Windows
from services.scorer.decoding import Incoming, Poison, decode
from tests.events import changed, customer, interaction, transaction
from tests.unit.test_decoding import record as json_record
from tests.unit.test_fastpath import mutated_events

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
Headers = list[tuple[str, bytes]]
Record = tuple[bytes | None, Headers, bytes | None]
Typed = list[tuple[str, type, Attribute]]
Row = tuple[Any, ...]

ZONES = ("Asia/Shanghai", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe")
BASES = ("CNY", "USD")
CURRENCIES = ("CNY", "USD", "EUR", "JPY", "GBP")  # GBP never has a rate: unknown


def config(
    zone: str, base: str, rates: Mapping[str, Decimal]
) -> tuple[Scoring, tierstream_native.Decoder]:
    table, until = offsets(ZoneInfo(zone))
    scoring = Scoring(ZoneInfo(zone), Windows(), base, dict(rates))
    decoder = tierstream_native.Decoder(
        list(table), until, base, {currency: str(rate) for currency, rate in rates.items()}
    )
    return scoring, decoder


SHANGHAI = config("Asia/Shanghai", "CNY", {"USD": Decimal("7.1")})


def typed(attributes: Mapping[str, Attribute] | list[tuple[str, Attribute]]) -> Typed:
    pairs = attributes.items() if isinstance(attributes, Mapping) else attributes
    return [(name, type(value), value) for name, value in pairs]


def python_row(event: Incoming) -> Row:
    fact, profile = event.fact, event.fact.profile
    return (
        event.source,
        event.id,
        event.subject,
        (event.time - EPOCH) // MICROSECOND,
        fact.day,
        fact.kind,
        fact.amount,
        fact.channel,
        fact.action,
        fact.actor,
        typed(fact.attributes),
        None if profile is None else (*profile.order, profile.team, typed(profile.attributes)),
        event.digest,
    )


def rust_row(row: Row) -> Row:
    profile = row[11]
    return (
        *row[:10],
        typed(row[10]),
        None if profile is None else (*profile[:4], typed(profile[4])),
        row[12],
    )


def python_decode(record: Record, scoring: Scoring) -> Incoming | None:
    key, headers, value = record
    try:
        return decode(key, headers, value, scoring)
    except Poison:
        return None


def differs(record: Record, scoring: Scoring, decoder: tierstream_native.Decoder) -> str:
    """Checks the contract between the two; says which way the record went."""
    key, headers, value = record
    native = decoder.decode(key, headers, value)
    python = python_decode(record, scoring)
    if native is None:
        return "python" if python is not None else "poison"
    assert python is not None, "the compiled decoding accepted what Python finds poison"
    assert rust_row(native) == python_row(python)
    for value_type in (type(v) for v in native[:7]):
        assert value_type in (str, int)
    return "native"


# -- valid events, as producers may write them -------------------------------------------


def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`usual` about nine times in ten."""
    return st.sampled_from([False] * 9 + [True]).flatmap(lambda n: odd if n else usual)


unicode_text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)
identifiers = mostly(
    st.sampled_from(["C-10023", "W-00042", "华东精密", "客户-7", "liu.yang", "a b", "x" * 128, "é"])
    | st.text(st.characters(categories=["L", "N", "Pd"]), min_size=1, max_size=12),
    unicode_text | st.sampled_from(["", " a", "a ", "a\nb", "a\u00a0", "\u3000a", "x" * 129]),
)
texts = mostly(
    st.sampled_from(["erp/sap-prod", "crm/main", "销售/华东", "SO-1", "w-7", "x" * 256, "值" * 256])
    | unicode_text,
    st.sampled_from(["", "x" * 257, "值" * 257, " ", "a\n"]),
)
names = mostly(
    st.sampled_from(["华东精密", "Acme GmbH", " padded ", "follow-up", "值" * 200]) | unicode_text,
    st.sampled_from(["", "值" * 201]),
)
attribute_values: st.SearchStrategy[Any] = mostly(
    st.sampled_from(["software", "华东", "", "a\nb", True, False, 0, -1, 2**63 - 1, -(2**63)])
    | st.integers(-(10**6), 10**6)
    | unicode_text,
    st.sampled_from([2**63, -(2**63) - 1, 1.0, 1e16, -0.0, 0.5, None, [1], {"a": 1}]),
)
attribute_names = mostly(
    st.sampled_from(["line", "区域", "units", "x" * 64]) | unicode_text,
    st.sampled_from(["", "x" * 65]),
)
attribute_maps = st.dictionaries(attribute_names, attribute_values, max_size=3) | st.sampled_from(
    [{f"k{n}": n for n in range(size)} for size in (20, 21)]
)
profile_attribute_maps = attribute_maps | st.sampled_from(
    [{f"k{n}": n % 3 == 0 for n in range(size)} for size in (64, 65)]
)
amounts = mostly(
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10**7), places=2).map(str)
    | st.sampled_from(["0.01", "0.1", "0.10", "0.05", "0.15", "12.5", "7", "999999999999999.99"]),
    st.sampled_from(["0", "0.00", "1.", ".5", "01.00", "1e3", "-1", "1.999", " 1", "9" * 16]),
)
rates = st.decimals(min_value=0, max_value=1000, places=2) | st.sampled_from(
    [
        Decimal("7.1"),
        Decimal("0.5"),
        Decimal("0.0482"),
        Decimal("0.00000881"),
        Decimal("-7.1"),
        Decimal("1E+1"),
        Decimal("1.5E-7"),
        Decimal("1.23456789012345"),
        Decimal("7.10000000000000000000"),
    ]
)
configs = st.builds(
    config,
    st.sampled_from(ZONES),
    st.sampled_from(BASES),
    st.dictionaries(st.sampled_from(["USD", "EUR", "JPY", "CNY"]), rates, max_size=3),
)
moments = st.datetimes(
    min_value=datetime(1899, 12, 1),  # noqa: DTZ001 - hypothesis takes naive bounds
    max_value=datetime(2200, 2, 1),  # noqa: DTZ001
)
offset_minutes = st.sampled_from([0, 0, 480, -300, 60, 330, -570, 845]) | st.integers(-1439, 1439)
fraction_digits = st.sampled_from([None, None, 1, 3, 6, 6, 7, 9])
utc_spellings = mostly(st.sampled_from(["+00:00", "Z", "-00:00"]), st.sampled_from(["z", "+0000"]))
time_forms = mostly(
    st.just("as is"), st.sampled_from(["seconds offset", "no offset", "space", "newline"])
)


@st.composite
def time_texts(draw: st.DrawFn) -> str:
    """RFC 3339 times, mostly in the form the compiled decoding reads, some not."""
    moment, minutes, digits = draw(moments), draw(offset_minutes), draw(fraction_digits)
    text = moment.isoformat(timespec="seconds")
    if digits is not None:
        text += "." + f"{moment.microsecond:06d}000"[:digits]
    sign = "-" if minutes < 0 else "+"
    offset = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    if minutes == 0:
        offset = draw(utc_spellings)
    form = draw(time_forms)
    return {
        "as is": text + offset,
        "seconds offset": text + offset + ":00",
        "no offset": text,
        "space": text.replace("T", " ") + offset,
        "newline": text + offset + "\n",
    }[form]


KINDS = ("tierstream.transaction", "tierstream.interaction", "tierstream.customer")
OPTIONAL = {
    "tierstream.transaction": ("attributes",),
    "tierstream.interaction": ("actor", "attributes"),
    "tierstream.customer": ("team", "attributes"),
}
kinds = st.sampled_from(KINDS)
transaction_kinds = st.sampled_from(["purchase", "refund"])
currencies = st.sampled_from(CURRENCIES)
channels = st.sampled_from(["call", "email", "web", "other", "chat"])
maybe_identifiers = st.none() | identifiers


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(kinds)
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": draw(texts),
        "source": draw(texts),
        "type": kind,
        "subject": draw(identifiers),
        "time": draw(time_texts()),
    }
    data: dict[str, Any]
    if kind == "tierstream.transaction":
        data = {
            "kind": draw(transaction_kinds),
            "amount": draw(amounts),
            "currency": draw(currencies),
            "order_id": draw(identifiers),
        }
    elif kind == "tierstream.interaction":
        data = {"channel": draw(channels), "action": draw(names)}
    else:
        data = {"name": draw(names), "owner_id": draw(identifiers)}
    for name in draw(st.lists(st.sampled_from(OPTIONAL[kind]), unique=True)):
        if name == "attributes":
            maps = profile_attribute_maps if kind == "tierstream.customer" else attribute_maps
            data[name] = draw(maps)
        else:
            data[name] = draw(maybe_identifiers)
    # the JSON's member order is the producer's
    event["data"] = dict(draw(st.permutations(list(data.items()))))
    return event


def encoded(event: dict[str, Any], how: str) -> Record:
    """The record as ingest writes it (pydantic's JSON; when the contract accepts it) or as
    another producer might (json.dumps: ASCII escapes, spaces, or raw UTF-8)."""
    if how == "ingest":
        try:
            key, headers, value = encode_event(event_adapter().validate_python(event))
        except ValidationError:
            return json_record(event)
        return key, headers, value
    key, headers, _ = json_record(event)
    data = event["data"]
    text = {
        "json": json.dumps(data),
        "utf-8": json.dumps(data, ensure_ascii=False, separators=(",", ":")),
        "pretty": "\n " + json.dumps(data, indent=2, ensure_ascii=False) + "\r\n",
    }[how]
    return key, headers, text.encode()


hows = st.sampled_from(["ingest", "ingest", "json", "utf-8", "pretty"])
changes = st.sampled_from(["key", "add", "drop", "header bytes", "value", "order"])
keys = st.sampled_from([None, b"", b"other", b" ", b"\xff"])
header_names = st.sampled_from(
    [
        *("ce_traceparent", "ce_id", "ce_time", "ce_subject", "ce_type", "ce_specversion"),
        *("ce_", "ce_datacontenttype", "content-type", "CE_id", "traceparent"),
    ]
)
header_values = st.sampled_from([b"1.0", b"x", b"\xff", b"", b"2026-11-20T10:00:00Z"]) | st.text(
    max_size=8
).map(str.encode)
broken = st.sampled_from([b"\xff", b"\xc3"])
value_changes = st.integers(0, 10)


@st.composite
def tampered(draw: st.DrawFn, record: Record) -> Record:
    """The record with one thing changed at the byte level (some changes keep it valid)."""
    key, headers, value = record
    headers = list(headers)
    change = draw(changes)
    if change == "key":
        key = draw(keys)
    elif change == "add":
        at = draw(st.integers(0, len(headers)))
        headers.insert(at, (draw(header_names), draw(header_values)))
    elif change == "drop" and headers:
        headers.pop(draw(st.integers(0, len(headers) - 1)))
    elif change == "header bytes" and headers:
        at = draw(st.integers(0, len(headers) - 1))
        headers[at] = (headers[at][0], headers[at][1] + draw(broken))
    elif change == "value" and value is not None:
        members = value.decode().strip()[1:-1]
        first = members.split(",")[0] if members else '"kind": "refund"'
        value = [
            None,
            value[:-1],
            value + b" x",
            b"\xef\xbb\xbf" + value,
            b" \t" + value + b"\n",
            value.replace(b'"', b"'", 2),
            value.replace(b":", b":\xff", 1),
            ("{" + first + "," + members + "}").encode(),  # a duplicated member
            value.replace(b"}", b', "extra": 1}', 1),
            b"[" + value + b"]",
            value.replace(b'"', b'"\\u0041', 1),
        ][draw(value_changes)]
    elif change == "order":
        headers = draw(st.permutations(headers))
    return key, headers, value


Case = tuple[Record, tuple[Scoring, tierstream_native.Decoder]]
sources = st.integers(0, 9)
settings_ = st.just(SHANGHAI) | configs


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """Records of the three types, valid or tampered with, under various settings; and
    test_fastpath's mutated events."""
    source = draw(sources)
    if source == 0:
        return json_record(draw(mutated_events())), SHANGHAI
    record = encoded(draw(events()), draw(hows))
    if source > 6:
        record = draw(tampered(record))
    return record, draw(settings_)


def test_whatever_the_compiled_decoding_accepts_python_decodes_identically() -> None:
    """And what Python finds poison it refuses. Prints how the generated records went."""
    outcomes: Counter[str] = Counter()

    @settings(max_examples=600, deadline=None)
    @given(case=cases())
    def check(case: Case) -> None:
        record, (scoring, decoder) = case
        outcomes[differs(record, scoring, decoder)] += 1

    check()
    total = sum(outcomes.values())
    print(  # noqa: T201 - the shares are the point
        f"\ngenerated records: {total}, "
        + ", ".join(f"{way} {n / total:.0%}" for way, n in sorted(outcomes.items()))
        + " (native: taken by the compiled decoding; python: valid, left to Python)"
    )
    assert outcomes["native"] > 0


# -- the common shapes take the compiled path --------------------------------------------

chinese = st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5), min_size=1, max_size=8)


@st.composite
def common_events(draw: st.DrawFn) -> dict[str, Any]:
    moment = draw(
        st.datetimes(
            min_value=datetime(2023, 1, 1),  # noqa: DTZ001 - hypothesis takes naive bounds
            max_value=datetime(2027, 1, 1),  # noqa: DTZ001
            timezones=st.sampled_from([UTC, timezone(timedelta(hours=8))]),
        )
    )
    if draw(st.booleans()):
        moment = moment.replace(microsecond=0)
    time = moment.isoformat()
    if draw(st.booleans()):
        time = time.replace("+00:00", "Z")
    subject = f"{draw(st.sampled_from(['C', 'W', 'KA']))}-{draw(st.integers(0, 99999)):05d}"
    amount = f"{draw(st.decimals(min_value=Decimal('0.01'), max_value=10**7, places=2)):.2f}"
    event: dict[str, Any] = draw(
        st.sampled_from(
            [
                transaction(customer=subject, amount=amount, time=time),
                transaction(customer=subject, amount=amount, time=time, kind="refund"),
                changed(interaction(customer=subject), "time", time),
                changed(customer(customer_id=subject), "time", time),
            ]
        )
    )
    data = event["data"]
    if event["type"] == "tierstream.transaction":
        data["currency"] = draw(st.sampled_from(["CNY", "USD"]))
        data["attributes"] = {"line": draw(st.sampled_from(["hardware", "software", "服务"]))}
    elif event["type"] == "tierstream.interaction":
        data["channel"] = draw(st.sampled_from(["email", "call", "meeting", "web", "ticket"]))
        data["actor"] = draw(st.none() | st.just("liu.yang"))
        data["attributes"] = {"severity": draw(st.integers(0, 5)), "区域": draw(chinese)}
    else:
        data["name"] = draw(chinese)
        data["team"] = draw(st.sampled_from(["east", "华东"]))
        data["attributes"]["region"] = draw(chinese)
    return event


@settings(max_examples=300, deadline=None)
@given(event=common_events())
def test_records_in_the_common_shapes_take_the_compiled_path(event: dict[str, Any]) -> None:
    (record,) = workload_records([event])
    scoring, decoder = SHANGHAI
    assert differs((record.key, record.headers, record.value), scoring, decoder) == "native"


def test_the_workload_takes_the_compiled_path() -> None:
    """Prints the share of a workload's records the compiled decoding takes."""
    scoring, decoder = SHANGHAI
    sample = workload_records(generate(300, 2000, days=20, seed=3, attributes=True).events)
    ways = Counter(differs((r.key, r.headers, r.value), scoring, decoder) for r in sample)
    print(f"\nworkload records taken by the compiled decoding: {ways['native'] / len(sample):.1%}")  # noqa: T201
    assert ways["native"] == len(sample)


# -- known vectors --------------------------------------------------------------------------


def canonical(event: dict[str, Any]) -> Record:
    key, headers, value = encode_event(event_adapter().validate_python(event))
    return key, headers, value


def test_known_records() -> None:
    scoring, decoder = SHANGHAI
    event = transaction(amount="10.00", event_id="SO-1")
    event["data"]["currency"] = "USD"
    event["data"]["attributes"] = {"line": "软件", "units": 3, "renewal": True}
    key, headers, value = canonical(event)
    assert value is not None
    digest = hashlib.sha256(
        b"tierstream.transaction|C-10023|2026-11-20T10:00:00+08:00|" + value
    ).digest()
    assert decoder.decode(key, headers, value) == (
        "erp/sap-prod",
        "SO-1",
        "C-10023",
        1795140000000000,
        739940,
        "purchase",
        7100,
        None,
        None,
        None,
        [("line", "软件"), ("units", 3), ("renewal", True)],
        None,
        digest,
    )
    assert differs((key, headers, value), scoring, decoder) == "native"

    profile = customer()
    profile["id"] = "CU-1"
    profile["time"] = "2026-11-01T09:00:00.25-00:00"
    key, headers, value = canonical(profile)
    found = decoder.decode(key, headers, value)
    assert found is not None
    assert found[3:12] == (
        1793523600250000,
        739921,
        "profile",
        0,
        None,
        None,
        None,
        [],
        (
            1793523600250000,
            "crm/main",
            "CU-1",
            "east",
            [("industry", "manufacturing"), ("size", 1200), ("key_account", True)],
        ),
    )
    assert value is not None
    assert (
        found[12]
        == hashlib.sha256(
            b"tierstream.customer|C-10023|2026-11-01T09:00:00.250000+00:00|" + value
        ).digest()
    )
    assert differs((key, headers, value), scoring, decoder) == "native"


@pytest.mark.parametrize(
    ("amount", "rate", "minor"),
    [("0.05", "0.5", 2), ("0.15", "0.5", 8), ("0.25", "0.5", 12), ("1", "1E+1", 1000)],
)
def test_conversions_round_half_to_even(amount: str, rate: str, minor: int) -> None:
    scoring, decoder = config("Asia/Shanghai", "CNY", {"USD": Decimal(rate)})
    event = transaction(amount=amount)
    event["data"]["currency"] = "USD"
    record = canonical(event)
    found = decoder.decode(*record)
    assert found is not None
    assert found[6] == minor
    assert differs(record, scoring, decoder) == "native"


def refused_records() -> list[tuple[str, Record]]:
    key, headers, value = canonical(transaction())
    assert value is not None
    unknown = changed(transaction(), "data.currency", "GBP")
    long_rate = changed(transaction(), "data.currency", "EUR")
    floats = changed(interaction(), "data.attributes", {"score": 1.5})
    return [
        ("key is not the subject", (b"C-1", headers, value)),
        ("no key", (None, headers, value)),
        ("no value", (key, headers, None)),
        ("unknown currency", canonical(unknown)),
        ("extension attribute", (key, [*headers, ("ce_traceparent", b"00-1")], value)),
        ("float attribute", canonical(floats)),
        ("duplicated member", (key, headers, value.replace(b"{", b'{"kind":"refund",', 1))),
        (
            "7 fraction digits",
            json_record(changed(transaction(), "time", "2026-11-20T10:00:00.1234567Z")),
        ),
        ("space separator", json_record(changed(transaction(), "time", "2026-11-20 10:00:00Z"))),
        ("non-UTF-8 header", (key, [*headers, ("ce_id", b"\xff")], value)),
        (
            "29 significant digits",
            canonical(changed(long_rate, "data.amount", "999999999999999.99")),
        ),
    ]


@pytest.mark.parametrize(
    ("why", "record"), refused_records(), ids=lambda x: x if isinstance(x, str) else ""
)
def test_what_the_compiled_decoding_refuses(why: str, record: Record) -> None:
    _, decoder = config(
        "Asia/Shanghai", "CNY", {"USD": Decimal("7.1"), "EUR": Decimal("7.123456789012")}
    )
    assert decoder.decode(*record) is None, why


def test_escapes_are_read_as_msgspec_reads_them() -> None:
    scoring, decoder = SHANGHAI
    key, headers, _ = canonical(transaction())
    value = (
        rb'{"\u006bind":"purch\u0061se","amount":"1.00","currency":"CNY","order_id":"x\/y",'
        rb'"attributes":{"\u0061":"\ud83d\ude00\n","b":-0,"c":false}}'
    )
    found = decoder.decode(key, headers, value)
    assert found is not None
    assert found[5:7] == ("purchase", 100)
    assert found[10] == [("a", "\U0001f600\n"), ("b", 0), ("c", False)]
    assert differs((key, headers, value), scoring, decoder) == "native"
    for lone in (rb'"\ud83d"', rb'"\ude00"', rb'"\ud83dx"'):
        assert decoder.decode(key, headers, value.replace(rb'"x\/y"', lone)) is None


def test_a_later_header_wins_as_in_python() -> None:
    scoring, decoder = SHANGHAI
    key, headers, value = canonical(interaction())
    headers = [("ce_id", b"\xc3\xa9"), ("ce_id", b"first"), *headers, ("ce_source", b"later")]
    found = decoder.decode(key, headers, value)
    assert found is not None
    assert found[0] == "later"
    assert differs((key, headers, value), scoring, decoder) == "native"


# -- the zone table ------------------------------------------------------------------------

TABLE_ZONES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Shanghai")


@st.composite
def instants(draw: st.DrawFn, zone: str) -> datetime:
    """Instants between 1970 and 2100, many of them near a change of the zone's offset."""
    start, end = (
        int((datetime(y, 1, 1, tzinfo=UTC) - EPOCH).total_seconds()) for y in (1970, 2100)
    )
    changes = [s for s, _ in offsets(ZoneInfo(zone))[0] if start <= s < end]
    second = draw(
        st.integers(start, end - 1)
        | st.sampled_from(changes or [start]).flatmap(
            lambda s: st.integers(s - 2 * 86_400, s + 2 * 86_400)
        )
    )
    return EPOCH + timedelta(seconds=second, microseconds=draw(st.integers(0, 999_999)))


@settings(max_examples=400, deadline=None)
@given(data=st.data(), zone=st.sampled_from(TABLE_ZONES))
def test_local_days_are_pythons(data: st.DataObject, zone: str) -> None:
    moment = data.draw(instants(zone))
    scoring, decoder = config(zone, "CNY", {})
    text = moment.isoformat().replace("+00:00", data.draw(st.sampled_from(["Z", "+00:00"])))
    key, headers, value = json_record(changed(interaction(), "time", text))
    found = decoder.decode(key, headers, value)
    assert found is not None
    assert found[4] == local_day(moment, ZoneInfo(zone))
    assert differs((key, headers, value), scoring, decoder) == "native"
