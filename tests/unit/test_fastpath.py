"""The ingest fast path may only ever be faster: whatever it accepts, the contract (schemas/,
pydantic) accepts with the same Kafka record; and canonical events do take it."""

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.v1.binding import encode_event
from schemas.v1.events import event_adapter
from services import event_codec as fastpath
from services.effectively_once.record import Record
from tests.events import changed, customer, interaction, transaction

offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
aware_times = st.datetimes(
    min_value=datetime(1970, 1, 2),  # noqa: DTZ001 - hypothesis takes naive bounds
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=offsets,
)


@st.composite
def time_strings(draw: st.DrawFn) -> str:
    moment = draw(
        st.datetimes(
            min_value=datetime(1, 1, 2),  # noqa: DTZ001 - hypothesis takes naive bounds
            max_value=datetime(9999, 1, 1),  # noqa: DTZ001
            timezones=st.one_of(st.none(), offsets, st.just(UTC)),
        )
    )
    text = draw(
        st.sampled_from(
            [
                moment.isoformat(),
                moment.isoformat(timespec="seconds"),
                moment.isoformat(timespec="minutes"),
                moment.isoformat(sep=" "),
                moment.isoformat().replace("+00:00", "Z"),
                moment.isoformat().replace("+00:00", "z").replace("T", "t"),
                moment.date().isoformat(),
                moment.isoformat() + "\n",
                moment.isoformat(timespec="seconds").replace("T", "_"),
            ]
        )
    )
    digits = draw(st.integers(1, 12))
    if draw(st.booleans()) and "." not in text and len(text) > 19:
        text = text[:19] + "." + "1" * digits + text[19:]
    return text


weird_text = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            " ",
            "a ",
            " a",
            "a\n",
            "\n",
            "a\tb",
            "C-1",
            "x" * 129,
            "x" * 257,
            "值",
            "a\u00a0",
            "\u2028a",
        ]
    ),
)
amounts = st.one_of(
    st.decimals(min_value=-10, max_value=10**16, places=2).map(str),
    st.decimals(min_value=0, max_value=100, places=3).map(str),
    st.sampled_from(
        [
            "0",
            "0.00",
            "0.01",
            "0.1",
            "0.10",
            "0.001",
            "1.",
            ".5",
            "01.00",
            "1e3",
            "-1",
            "1,00",
            "1.5",
            "1.50",
            "9" * 15,
            "9" * 16,
            "1.999",
            " 1",
            "1\n",
        ]
    ),
    st.floats(allow_nan=False),
    st.integers(),
    st.none(),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    weird_text,
    st.lists(st.integers(), max_size=2),
)
MUTATIONS: dict[str, st.SearchStrategy[Any]] = {
    "id": weird_text,
    "source": weird_text,
    "subject": weird_text,
    "time": time_strings(),
    "specversion": st.sampled_from(["1.0", "0.3", 1.0, None]),
    "type": st.sampled_from(
        [
            "tierstream.transaction",
            "tierstream.interaction",
            "tierstream.customer",
            "tierstream.other",
        ]
    ),
    "datacontenttype": st.sampled_from(["application/json", "text/plain", None]),
    "traceparent": weird_text,
    "data.amount": amounts,
    "data.kind": st.sampled_from(["purchase", "refund", "gift", 1]),
    "data.currency": st.sampled_from(["CNY", "USD", "cny", "CN", "CNYY", "CNY\n"]),
    "data.order_id": weird_text,
    "data.channel": st.sampled_from(["call", "fax", ""]),
    "data.action": weird_text,
    "data.name": weird_text,
    "data.owner_id": weird_text,
    "data.team": st.none() | weird_text,
    "data.actor": st.none() | weird_text,
    "data.attributes": st.one_of(
        st.dictionaries(weird_text, scalars, max_size=3),
        st.dictionaries(st.text(min_size=1, max_size=3), st.integers(), min_size=19, max_size=22),
    ),
    "data.extra": scalars,
}
bases: st.SearchStrategy[dict[str, Any]] = st.one_of(
    st.builds(transaction), st.builds(interaction), st.builds(customer)
)


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    event = draw(bases)
    for path in draw(st.lists(st.sampled_from(sorted(MUTATIONS)), max_size=3, unique=True)):
        parent = path.split(".")[0]
        if parent == "data" and path.count(".") and not isinstance(event.get("data"), dict):
            continue
        event = changed(event, path, draw(st.just(...) | MUTATIONS[path]))
    return event


def contract_record(body: bytes) -> Record | None:
    try:
        event = event_adapter().validate_json(body)
    except ValidationError:
        return None
    key, headers, value = encode_event(event)
    return Record(key, value, headers)


@settings(max_examples=1500)
@given(event=mutated_events())
def test_whatever_the_fast_path_accepts_the_contract_accepts_identically(
    event: dict[str, Any],
) -> None:
    body = json.dumps(event).encode()
    fast = fastpath.decode_single(body)
    if fast is not None:
        assert fastpath.encode(fast) == contract_record(body)


@settings(max_examples=300)
@given(events=st.lists(mutated_events(), max_size=4))
def test_a_batch_takes_the_fast_path_only_when_every_event_could(
    events: list[dict[str, Any]],
) -> None:
    fast = fastpath.decode_batch(json.dumps(events).encode())
    singles = [fastpath.decode_single(json.dumps(event).encode()) for event in events]
    assert (fast is not None) == all(single is not None for single in singles)
    if fast is not None:
        assert [fastpath.encode(e) for e in fast] == [
            contract_record(json.dumps(event).encode()) for event in events
        ]


@given(
    moment=aware_times,
    amount=st.decimals(min_value="0.01", max_value="99999999", places=2),
    subject=st.text(st.characters(categories=["L", "N", "Pd"]), min_size=1, max_size=40),
)
def test_canonical_events_take_the_fast_path(moment: datetime, amount: Any, subject: str) -> None:
    with_attributes = changed(
        transaction(customer=subject, amount=str(amount), time=moment.isoformat()),
        "data.attributes",
        {"line": "software", "units": 3, "renewal": True},
    )
    by_owner = changed(interaction(customer=subject), "data.actor", "liu.yang")
    for event in (
        transaction(customer=subject, amount=str(amount), time=moment.isoformat()),
        with_attributes,
        interaction(customer=subject),
        changed(by_owner, "data.attributes", {"severity": 2}),
        customer(customer_id=subject),
    ):
        body = json.dumps(event).encode()
        fast = fastpath.decode_single(body)
        assert fast is not None, event
        assert fastpath.encode(fast) == contract_record(body)
