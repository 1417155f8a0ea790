"""The operator's command line."""

import json
from pathlib import Path

import pytest

from services.cli import main
from services.ingest.auth import ApiKey, authenticate
from services.scorer.settings import DEFAULT_RULESET


def test_keys_new_prints_a_key_and_the_entry_that_accepts_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["keys", "new", "--name", "erp", "--source", "erp/*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    secret = lines[0].rsplit(" ", 1)[-1]
    entry = ApiKey.model_validate(json.loads(lines[-1]))
    assert entry.sources == ("erp/*",)
    assert authenticate([entry], f"Bearer {secret}") == entry
    assert secret not in lines[-1]


def test_unknown_commands_are_refused() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["keys", "rotate"])
    assert exit_info.value.code == 2


def test_rules_check_accepts_the_default_ruleset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(DEFAULT_RULESET)]) == 0
    assert "ruleset rfm-segments-1 (fixed thresholds) is valid" in capsys.readouterr().out


def test_rules_check_names_the_tier_and_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: x\nthresholds: {mode: fixed, recency_days: 3, frequency: 2, "
        "monetary: '1.00'}\ntiers:\n  - {id: a, labels: {zh: a, en: a}, rank: 1, "
        "high_value: false, condition: 'frequncy > 1'}\n"
    )
    assert main(["rules", "check", str(bad)]) == 1
    assert "tier 'a': condition does not compile" in capsys.readouterr().err


def test_rules_check_explains_the_example_and_names_every_refusal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SPEC §10's example is valid and described; a broken copy is refused with each place
    (feature, score, tier) and its problem, all at once."""
    example = DEFAULT_RULESET.parent / "abc-value.yaml"
    assert main(["rules", "check", str(example)]) == 0
    out = capsys.readouterr().out
    assert "ruleset abc-value-1 (fixed thresholds) is valid" in out
    assert "declared features: orders_180d, spend_180d" in out
    assert "score value: recency, frequency, monetary" in out
    assert "stability: min_days_in_tier 7" in out
    broken = (
        example.read_text(encoding="utf-8")
        .replace("window_days: 180}", "window_days: 900}", 1)
        .replace("weight: 0.4", "weight: 0.5")
        .replace("condition: scores.value >= 50, ", "")
    )
    bad = tmp_path / "broken.yaml"
    bad.write_text(broken, encoding="utf-8")
    assert main(["rules", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "feature 'orders_180d': window_days 900 is beyond the retained span" in err
    assert "score 'value': the weights sum to 1.1, not 1" in err
    assert "tier 'B': stay_while on a tier without a condition" in err
