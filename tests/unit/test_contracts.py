"""schemas/: the committed JSON Schemas match the models, and the Kafka binding round-trips."""

import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from schemas import generate
from schemas.v1.binding import UndecodableRecord, decode_event, encode_event
from schemas.v1.events import event_adapter
from tests.events import customer, interaction, transaction

SCHEMAS = Path(generate.__file__).parent


def test_committed_files_match_the_models() -> None:
    assert generate.drifted() == [], "run: python -m schemas.generate"


@pytest.mark.parametrize("path", sorted((SCHEMAS / "json").glob("*.json")), ids=lambda p: p.name)
def test_every_json_schema_is_a_valid_2020_12_schema(path: Path) -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))


@pytest.mark.parametrize(
    "event",
    [transaction(), interaction(), customer()],
    ids=["transaction", "interaction", "customer"],
)
def test_examples_satisfy_both_the_model_and_the_json_schema(event: dict[str, Any]) -> None:
    schema = json.loads((SCHEMAS / "json" / "customer-event.v1.schema.json").read_text())
    jsonschema.validate(event, schema, cls=jsonschema.Draft202012Validator)
    event_adapter().validate_python(event)


def test_json_schema_rejects_a_float_amount_like_the_model() -> None:
    schema = json.loads((SCHEMAS / "json" / "transaction-data.v1.schema.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {"kind": "purchase", "amount": 12.5, "currency": "CNY", "order_id": "1"}, schema
        )


def test_asyncapi_describes_the_four_topics() -> None:
    document = yaml.safe_load((SCHEMAS / "asyncapi.yaml").read_text())
    assert document["asyncapi"].startswith("3.")
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {
        "tierstream.customer-events.v1",
        "tierstream.tier-changes.v1",
        "tierstream.customer-tiers.v1",
        "tierstream.dead-letters.v1",
    }
    for message in document["components"]["messages"].values():
        for ref in (message.get("payload", {}).get("$ref"), message.get("headers", {}).get("$ref")):
            if ref:
                assert (SCHEMAS / ref).exists(), ref


@given(
    amount=st.decimals(min_value="0.01", max_value="999999999", places=2),
    customer_id=st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=40),
    kind=st.sampled_from(["purchase", "refund"]),
)
def test_binary_mode_round_trips(amount: Any, customer_id: str, kind: str) -> None:
    event = event_adapter().validate_python(
        transaction(customer=customer_id, amount=str(amount), kind=kind)
    )
    key, headers, value = encode_event(event)
    assert key == customer_id.encode()
    assert dict(headers)["ce_type"] == b"tierstream.transaction"
    assert dict(headers)["content-type"] == b"application/json"
    assert decode_event(headers, value) == event


def test_decoding_rejects_records_that_are_not_binary_mode_cloudevents() -> None:
    with pytest.raises(UndecodableRecord, match="ce_specversion"):
        decode_event([], b"{}")
    _, headers, _ = encode_event(event_adapter().validate_python(transaction()))
    with pytest.raises(UndecodableRecord, match="not JSON"):
        decode_event(headers, b"{not json")
    assert (
        orjson.loads(encode_event(event_adapter().validate_python(transaction()))[2])["amount"]
        == "1299.00"
    )
