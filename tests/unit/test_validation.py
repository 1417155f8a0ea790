"""The ingest domain: every class of bad input gets a precise error; good input passes."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ingest.validation import (
    EventError,
    MalformedBody,
    Rules,
    TooManyEvents,
    forbidden_sources,
    validate_batch,
    validate_single,
)
from tests.events import changed, customer, interaction, transaction

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
RULES = Rules(
    base_currency="CNY",
    rated_currencies=frozenset({"USD"}),
    max_future_skew=timedelta(minutes=5),
    max_batch_events=1000,
)


def errors_of(event: dict[str, Any]) -> list[EventError]:
    return list(validate_single(orjson.dumps(event), RULES, NOW).errors)


def only_error(event: dict[str, Any]) -> tuple[str, str]:
    errors = errors_of(event)
    assert len(errors) == 1, errors
    return errors[0].field, errors[0].message


class TestValidEvents:
    def test_all_three_types_pass_in_one_batch(self) -> None:
        batch = [transaction(), interaction(), customer()]
        verdict = validate_batch(orjson.dumps(batch), RULES, NOW)
        assert verdict.errors == ()
        assert [dict(event.record.headers)["ce_type"].decode() for event in verdict.events] == [
            e["type"] for e in batch
        ]

    def test_amount_is_exact(self) -> None:
        verdict = validate_single(orjson.dumps(transaction(amount="0.10")), RULES, NOW)
        assert orjson.loads(verdict.events[0].record.value)["amount"] == "0.10"

    def test_event_attributes_and_the_actor_reach_the_record(self) -> None:
        sale = changed(transaction(), "data.attributes", {"line": "software", "seats": 12})
        call = changed(interaction(), "data.actor", "liu.yang")
        verdict = validate_batch(orjson.dumps([sale, call]), RULES, NOW)
        assert verdict.errors == ()
        values = [orjson.loads(event.record.value) for event in verdict.events]
        assert values[0]["attributes"] == {"line": "software", "seats": 12}
        assert values[1]["actor"] == "liu.yang"

    def test_rated_currency_passes(self) -> None:
        assert errors_of(changed(transaction(), "data.currency", "USD")) == []

    def test_exact_duplicate_in_a_batch_is_harmless(self) -> None:
        event = transaction()
        verdict = validate_batch(orjson.dumps([event, event]), RULES, NOW)
        assert verdict.errors == ()
        assert len(verdict.events) == 2

    def test_extension_attributes_are_kept(self) -> None:
        verdict = validate_single(
            orjson.dumps({**transaction(), "traceparent": "00-ab"}), RULES, NOW
        )
        assert ("ce_traceparent", b"00-ab") in verdict.events[0].record.headers


class TestMoney:
    def test_three_decimals(self) -> None:
        assert only_error(transaction(amount="12.345")) == (
            "data.amount",
            '"12.345" has more than 2 decimals',
        )

    def test_float(self) -> None:
        field, message = only_error(changed(transaction(), "data.amount", 12.5))
        assert (field, message) == (
            "data.amount",
            'must be a decimal string such as "1299.00", not a JSON float',
        )

    def test_integer_number(self) -> None:
        assert only_error(changed(transaction(), "data.amount", 12))[0] == "data.amount"

    @pytest.mark.parametrize("amount", ["0", "0.00", "-5.00", "1e3", "", " 12", "012.5"])
    def test_not_a_positive_decimal(self, amount: str) -> None:
        assert only_error(transaction(amount=amount))[0] == "data.amount"

    def test_other_currency_without_rate(self) -> None:
        assert only_error(changed(transaction(), "data.currency", "EUR")) == (
            "data.currency",
            "EUR is not the base currency CNY and no exchange rate is configured for it",
        )

    def test_currency_not_iso(self) -> None:
        assert only_error(changed(transaction(), "data.currency", "yuan"))[0] == "data.currency"


class TestEnvelope:
    def test_unknown_type(self) -> None:
        assert only_error(changed(transaction(), "type", "tierstream.refund")) == (
            "type",
            "unknown event type 'tierstream.refund': expected one of "
            "tierstream.transaction, tierstream.interaction, tierstream.customer",
        )

    def test_missing_type(self) -> None:
        assert only_error(changed(transaction(), "type", ...))[0] == "type"

    def test_naive_timestamp(self) -> None:
        field, message = only_error(transaction(time="2026-11-20T10:00:00"))
        assert field == "time"
        assert "UTC offset" in message

    @pytest.mark.parametrize(
        "time",
        [1795419600, "2026-11-20", "yesterday", "2026-11-20T10:00+08:00", "2026-13-20T10:00:00Z"],
    )
    def test_not_rfc3339(self, time: object) -> None:
        assert only_error(changed(transaction(), "time", time))[0] == "time"

    def test_far_future(self) -> None:
        field, message = only_error(transaction(time="2026-11-21T12:00:00Z"))
        assert field == "time"
        assert "ahead of the ingest clock" in message

    @pytest.mark.parametrize("name", ["specversion", "id", "source", "subject", "time", "data"])
    def test_required_attribute(self, name: str) -> None:
        assert only_error(changed(transaction(), name, ...)) == (name, "Field required")

    def test_wrong_specversion(self) -> None:
        assert only_error(changed(transaction(), "specversion", "0.3"))[0] == "specversion"

    def test_bad_extension_name(self) -> None:
        field, message = only_error({**transaction(), "Trace-Id": "x"})
        assert field == ""
        assert "'Trace-Id'" in message

    def test_unknown_data_field(self) -> None:
        assert only_error(changed(transaction(), "data.discount", "5"))[0] == "data.discount"

    def test_long_action(self) -> None:
        assert only_error(changed(interaction(), "data.action", "x" * 201))[0] == "data.action"

    def test_unknown_channel(self) -> None:
        assert only_error(changed(interaction(), "data.channel", "fax"))[0] == "data.channel"

    def test_subject_with_edge_whitespace(self) -> None:
        assert only_error(changed(customer(), "subject", " C-1"))[0] == "subject"

    def test_too_many_event_attributes(self) -> None:
        many = {f"k{n}": n for n in range(21)}
        assert only_error(changed(transaction(), "data.attributes", many))[0] == "data.attributes"

    def test_event_attribute_of_wrong_kind(self) -> None:
        bad = changed(interaction(), "data.attributes", {"severity": {"a": 1}})
        field, _ = only_error(bad)
        assert field.startswith("data.attributes.severity")

    def test_actor_with_edge_whitespace(self) -> None:
        assert only_error(changed(interaction(), "data.actor", "liu.yang "))[0] == "data.actor"

    def test_attribute_of_wrong_kind(self) -> None:
        field, _ = only_error(changed(customer(), "data.attributes.tags", ["a"]))
        assert field.startswith("data.attributes.tags")

    def test_not_an_object(self) -> None:
        assert only_error([1, 2]) == ("", "an event must be a JSON object")  # type: ignore[arg-type]

    def test_error_names_the_event_id(self) -> None:
        event = transaction(amount="1.001", event_id="SO-1")
        assert errors_of(event)[0].event_id == "SO-1"


class TestBatch:
    def test_every_bad_event_is_listed_with_its_index(self) -> None:
        batch = [
            transaction(),
            transaction(amount="1.001"),
            interaction(),
            changed(customer(), "data.owner_id", ...),
            transaction(time="2026-11-20"),
        ]
        verdict = validate_batch(orjson.dumps(batch), RULES, NOW)
        assert [(e.index, e.field) for e in verdict.errors] == [
            (1, "data.amount"),
            (3, "data.owner_id"),
            (4, "time"),
        ]

    def test_rule_errors_carry_batch_indexes(self) -> None:
        batch = [transaction(), changed(transaction(), "data.currency", "EUR")]
        assert [
            (e.index, e.field) for e in validate_batch(orjson.dumps(batch), RULES, NOW).errors
        ] == [(1, "data.currency")]

    def test_conflicting_duplicate(self) -> None:
        first = transaction(event_id="SO-9")
        second = transaction(event_id="SO-9", amount="5.00")
        errors = validate_batch(orjson.dumps([first, interaction(), second]), RULES, NOW).errors
        assert [(e.index, e.field, e.message) for e in errors] == [
            (2, "id", "same source and id as event 0 but a different content")
        ]

    def test_too_many_events(self) -> None:
        rules = Rules("CNY", frozenset(), timedelta(0), max_batch_events=2)
        with pytest.raises(TooManyEvents, match="3 events; at most 2"):
            validate_batch(orjson.dumps([transaction()] * 3), rules, NOW)

    def test_too_many_events_even_when_some_are_bad(self) -> None:
        rules = Rules("CNY", frozenset(), timedelta(0), max_batch_events=2)
        with pytest.raises(TooManyEvents):
            validate_batch(orjson.dumps([transaction(amount="x")] * 3), rules, NOW)

    def test_not_an_array(self) -> None:
        verdict = validate_batch(orjson.dumps(transaction()), RULES, NOW)
        assert [(e.index, e.message) for e in verdict.errors] == [
            (None, "a batch must be a JSON array of events")
        ]

    @pytest.mark.parametrize("body", [b"", b"[", b"{'a': 1}", b"\xff\xfe"])
    def test_not_json(self, body: bytes) -> None:
        with pytest.raises(MalformedBody, match="not valid JSON"):
            validate_batch(body, RULES, NOW)

    def test_empty_batch_is_accepted(self) -> None:
        assert validate_batch(b"[]", RULES, NOW).events == ()


class TestSources:
    def test_forbidden_sources_are_listed(self) -> None:
        events = validate_batch(
            orjson.dumps([transaction(source="erp/a"), transaction(source="shop/b")]), RULES, NOW
        ).events
        errors = forbidden_sources(events, lambda source: source.startswith("erp/"), batch=True)
        assert [(e.index, e.field) for e in errors] == [(1, "source")]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(
    field=st.sampled_from(
        [
            "id",
            "source",
            "type",
            "subject",
            "time",
            "data",
            "data.kind",
            "data.amount",
            "data.currency",
            "data.order_id",
        ]
    ),
    value=json_values,
)
def test_any_change_is_either_valid_or_a_listed_error(field: str, value: Any) -> None:
    """The validator never crashes, and never lets an event through with an error."""
    body = json.dumps([transaction(), changed(transaction(), field, value)]).encode()
    verdict = validate_batch(body, RULES, NOW)
    assert len(verdict.events) + len({e.index for e in verdict.errors}) == 2
    assert all(error.index == 1 and error.message for error in verdict.errors)
