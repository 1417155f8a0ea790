"""The scorer's outgoing records: built without pydantic on the hot path, they must be
byte for byte what the contract's models serialize, and valid under the contract; built
again from a history row (a relay after a restart), they are the same bytes."""

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from schemas.v1.binding import attribute_headers
from schemas.v1.tiers import CustomerTierV1, TierChangedV1
from services.scorer.core import rules
from services.scorer.core.state import Fact
from services.scorer.publisher import SOURCE, change_json, change_records, history_records
from services.scorer.settings import DEFAULT_RULESET
from tests.contract_oracle import to_contract
from tests.unit.test_rfm import START
from tests.unit.test_scoring import facts, run

zones = st.sampled_from([ZoneInfo("UTC"), ZoneInfo("Asia/Shanghai"), ZoneInfo("America/Lima")])
instants = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - made aware below
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))]),
)


# SPEC §10's example: declared features (money, counts, days, partial ones) and a score
EXAMPLE = rules.load((DEFAULT_RULESET.parent / "abc-value.yaml").read_text(encoding="utf-8"))
rulesets = st.sampled_from([rules.load(DEFAULT_RULESET.read_text()), EXAMPLE])
declared_facts = st.one_of(
    facts,
    st.builds(
        Fact,
        st.integers(START - 400, START),
        st.just("purchase"),
        st.integers(1, 10_000_000),
        attributes=st.sampled_from([{}, {"line": "software"}, {"line": "hardware"}]),
    ),
    st.builds(
        Fact,
        st.integers(START - 120, START),
        st.just("interaction"),
        st.just(0),
        st.sampled_from(["meeting", "call"]),
        st.just("visit"),
    ),
)


@given(
    history=st.lists(declared_facts, min_size=1, max_size=20),
    clock=st.integers(0, 200),
    zone=zones,
    start=instants,
    ruleset=rulesets,
)
def test_change_json_is_the_contract_serialization(
    history: list[Fact], clock: int, zone: ZoneInfo, start: datetime, ruleset: rules.Ruleset
) -> None:
    for _, change in run(history, clock_day=START + clock, now=start, ruleset=ruleset):
        if change is None:
            continue
        expected = to_contract(change, zone)
        raw = change_json(change, zone)
        assert raw == expected.__pydantic_serializer__.to_json(expected)
        assert TierChangedV1.model_validate_json(raw) == expected
        changed, latest = change_records(change, zone)
        assert changed.value == raw
        assert changed.headers == attribute_headers(
            {
                "specversion": "1.0",
                "id": change.change_id,
                "source": SOURCE,
                "type": "tierstream.tier.changed",
                "subject": change.customer_id,
                "time": change.after.since.isoformat(),
            }
        )
        tier = CustomerTierV1.model_validate_json(latest.value)
        assert tier.change_id == change.change_id
        assert tier.since == change.after.since
        assert latest.value == tier.model_dump_json().encode()
        # a relay publishing after a restart builds them again from the history row
        assert history_records(change.customer_id, change.change_id, raw) == (changed, latest)
