"""The lifecycle's pure parts (SPEC §11): a diff names exactly what an edit changed, a
version's state, an activation's progress per partition."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from services.scorer.core.ruleset_diff import diff
from services.scorer.lifecycle import progress_of, state_of
from services.scorer.store.lifecycle import PartitionProgress, RulesetRow

DEFAULT = Path("services/scorer/rulesets/default.yaml").read_text(encoding="utf-8")
EXAMPLE = Path("services/scorer/rulesets/abc-value.yaml").read_text(encoding="utf-8")
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def edited(text: str, edit: Any) -> str:
    spec = yaml.safe_load(text)
    spec["version"] = spec["version"] + "-b"
    edit(spec)
    return yaml.safe_dump(spec, allow_unicode=True, sort_keys=False)


def test_a_ruleset_against_itself_differs_in_nothing_but_what_the_text_says() -> None:
    for text in (DEFAULT, EXAMPLE):
        found = diff(text, edited(text, lambda _: None))
        assert found.same_rules
        assert found.before != found.after
        assert found.text  # the version line, and the comments the edit dropped


TIER_FIELDS = st.sampled_from(
    [
        ("condition", "frequency >= 7"),
        ("rank", 42),
        ("high_value", None),  # flipped
        ("labels.en", "Renamed"),
        ("stay_while", "monetary >= 1.0"),
    ]
)


@given(st.integers(0, 7), TIER_FIELDS)
def test_a_tier_field_edited_is_the_one_change_named(index: int, change: tuple[str, Any]) -> None:
    field, value = change
    before = yaml.safe_load(DEFAULT)["tiers"][index]

    def edit(spec: dict[str, Any]) -> None:
        tier = spec["tiers"][index]
        if field == "high_value":
            tier["high_value"] = not tier["high_value"]
        elif field == "labels.en":
            tier["labels"]["en"] = value
        else:
            tier[field] = value

    after = edited(DEFAULT, edit)
    found = diff(DEFAULT, after)
    old = {"labels.en": before["labels"]["en"]}.get(field, before.get(field))
    new = (not before["high_value"]) if field == "high_value" else value
    assert found.tiers.changed == ((before["id"], {field: {"from": old, "to": new}}),)
    assert (found.tiers.added, found.tiers.removed, found.order) == ((), (), None)
    assert (found.thresholds, found.stability, found.features.changed) == ({}, {}, ())
    assert not found.same_rules
    back = diff(after, DEFAULT)  # the other way round: the same field, from and to swapped
    assert back.tiers.changed == ((before["id"], {field: {"from": new, "to": old}}),)


def test_tiers_added_removed_reordered_and_every_other_section() -> None:
    def edit(spec: dict[str, Any]) -> None:
        tiers = spec["tiers"]
        tiers[0], tiers[1] = tiers[1], tiers[0]
        del tiers[2]
        tiers.insert(3, {**tiers[3], "id": "platinum"})
        spec["thresholds"]["monetary"] = "5000.00"
        spec["stability"] = {"min_days_in_tier": 7}

    found = diff(DEFAULT, edited(DEFAULT, edit))
    assert found.tiers.added == ("platinum",)
    assert found.tiers.removed == ("important_retain",)
    assert found.order is not None
    assert found.order[0][:2] == ("important_value", "important_develop")
    assert found.order[1][:2] == ("important_develop", "important_value")
    assert found.thresholds == {"monetary": {"from": "10000.00", "to": "5000.00"}}
    assert found.stability == {"min_days_in_tier": {"from": None, "to": 7}}


def test_declared_features_and_scores_added_removed_changed() -> None:
    def edit(spec: dict[str, Any]) -> None:
        spec["features"]["orders_180d"]["window_days"] = 90
        del spec["features"]["software_365d"]
        spec["features"]["refunds_90d"] = {"aggregate": "count", "of": "refund", "window_days": 90}
        spec["scores"]["value"]["components"]["recency"]["weight"] = 0.5
        spec["scores"]["loyalty"] = spec["scores"]["value"]

    found = diff(EXAMPLE, edited(EXAMPLE, edit))
    assert found.features.added == ("refunds_90d",)
    assert found.features.removed == ("software_365d",)
    assert found.features.changed == (("orders_180d", {"window_days": {"from": 180, "to": 90}}),)
    assert found.scores.added == ("loyalty",)
    [(name, fields)] = found.scores.changed
    assert name == "value"
    assert list(fields) == ["components.recency.weight"]
    assert {k: str(v) for k, v in fields["components.recency.weight"].items()} == {
        "from": "0.4",
        "to": "0.5",
    }


def row(**given: Any) -> RulesetRow:
    values: dict[str, Any] = {
        "version": "v1",
        "stored_at": T0,
        "stored_by": "admin",
        "activation": None,
        "activated_at": None,
        "active": False,
        "scheduled_at": None,
    }
    return RulesetRow(**(values | given))


def test_a_versions_state() -> None:
    assert state_of(row()) == "stored"
    assert state_of(row(scheduled_at=T0)) == "scheduled"
    assert state_of(row(activation=3, activated_at=T0)) == "retired"
    assert state_of(row(activation=3, activated_at=T0, scheduled_at=T0)) == "scheduled"
    assert state_of(row(activation=4, activated_at=T0, active=True)) == "active"
    assert state_of(row(activation=3, activated_at=T0, shadow=True)) == "shadow"
    assert state_of(row(scheduled_at=T0, shadow=True)) == "shadow"


def test_progress_counts_each_partition_for_this_activation_only() -> None:
    rows = [
        PartitionProgress(0, "v2#5", None, 0, 100),  # applied
        PartitionProgress(1, "v2#5@r90f3m100#2", None, 0, 50),  # applied, population mode
        PartitionProgress(2, "v1#4", "v2#5", 30, 80),  # running
        PartitionProgress(3, "v1#4", "v1#4@r1f1m1#3", 70, 80),  # another re-tier: pending
        PartitionProgress(4, None, None, 0, 0),  # nothing scored yet
        PartitionProgress(5, "v1#4", "v2#5", 99, 60),  # more examined than counted
    ]
    found = progress_of("v2", 5, rows)
    assert found.partitions == (
        (0, "done", 100, 100),
        (1, "done", 50, 50),
        (2, "running", 30, 80),
        (3, "pending", 0, 80),
        (4, "done", 0, 0),
        (5, "running", 60, 60),
    )
    assert (found.done, found.customers, found.complete) == (240, 370, False)
    assert progress_of("v2", 5, rows[:2]).complete
