"""Rulesets: the default is the eight RFM segments; bad rulesets are refused at load with the
tier and the problem named; evaluation is first match, with exact money comparisons."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.scorer.core import rules
from services.scorer.core.rules import RulesetError, Thresholds, evaluate, levels, load
from services.scorer.core.state import Features
from services.scorer.settings import DEFAULT_RULESET
from services.scorer.standards import Population

DEFAULT = DEFAULT_RULESET
RULESET = load(DEFAULT.read_text(), str(DEFAULT))


def features(
    recency: int | None = 10,
    frequency: int = 1,
    monetary: int = 0,
    frequency_90d: int = 0,
    monetary_90d: int = 0,
) -> Features:
    return Features(0, recency, frequency, monetary, frequency_90d, monetary_90d, 0, 100)


def ruleset(
    *tiers: str,
    thresholds: str = "{mode: fixed, recency_days: 30, frequency: 2, monetary: '100.00'}",
) -> str:
    body = "\n".join(
        f"  - {{id: t{i}, labels: {{zh: 层{i}, en: T{i}}}, rank: {i}, high_value: false, "
        f"condition: '{condition}'}}"
        for i, condition in enumerate(tiers)
    )
    return f"version: test-1\nthresholds: {thresholds}\ntiers:\n{body}\n"


def problems(text: str) -> list[str]:
    with pytest.raises(RulesetError) as refused:
        load(text, "test.yaml")
    return refused.value.problems


@given(
    recency=st.none() | st.integers(0, 2000),
    frequency=st.integers(0, 20),
    monetary=st.integers(-(10**9), 10**10),
)
def test_the_default_ruleset_is_the_eight_segments(
    recency: int | None, frequency: int, monetary: int
) -> None:
    found = features(recency, frequency, monetary)
    r = "high" if recency is not None and recency <= 90 else "low"
    f = "high" if frequency >= 3 else "low"
    m = "high" if monetary >= 1_000_000 else "low"  # 10000.00 in minor units
    match = evaluate(RULESET, found, RULESET.thresholds)
    assert match is not None
    assert match.tier.id == rules.SEGMENTS[(r, f, m)]  # type: ignore[index]
    assert (match.levels.recency, match.levels.frequency, match.levels.monetary) == (r, f, m)


def test_the_default_ruleset_labels_and_high_value_tiers() -> None:
    assert [t.label_zh for t in RULESET.tiers][:2] == ["重要价值客户", "重要发展客户"]
    assert {t.id for t in RULESET.tiers if t.high_value} == {"important_value", "important_develop"}
    assert [t.rank for t in RULESET.tiers] == sorted((t.rank for t in RULESET.tiers), reverse=True)


def test_the_spec_example_compares_money_exactly() -> None:
    core = load(ruleset("frequency_90d > 5 && monetary_90d > 100000", "true"))
    at = features(frequency_90d=6, monetary_90d=10_000_000)  # exactly 100000.00
    above = features(frequency_90d=6, monetary_90d=10_000_001)  # 100000.01
    assert evaluate(core, at, core.thresholds).tier.id == "t1"  # type: ignore[union-attr]
    assert evaluate(core, above, core.thresholds).tier.id == "t0"  # type: ignore[union-attr]


def test_first_match_wins() -> None:
    both = load(ruleset("frequency >= 1", "frequency >= 0"))
    assert evaluate(both, features(), both.thresholds).tier.id == "t0"  # type: ignore[union-attr]


def test_a_misspelt_feature_is_refused_naming_tier_and_position() -> None:
    [problem] = problems(ruleset("frequncy_90d > 5", "true"))
    assert problem.startswith(
        "tier 't0': condition does not compile: <input>:1:1: undeclared reference to 'frequncy_90d'"
    )


def test_a_condition_that_is_not_a_bool_is_refused() -> None:
    assert problems(ruleset("frequency + 1", "true")) == [
        "tier 't0': condition is of type number, not bool"
    ]


def test_a_type_error_is_refused() -> None:
    [problem] = problems(ruleset("segment > 5", "true"))
    assert "tier 't0'" in problem
    assert "no matching overload" in problem


def test_an_unguarded_null_recency_is_refused_with_the_fix() -> None:
    [problem] = problems(ruleset("recency_days <= 30", "true"))
    assert problem.startswith("tier 't0': ")
    assert "guard it" in problem
    assert problem.endswith("(for a customer who never purchased)")
    load(ruleset("recency_days != null && recency_days <= 30", "true"))  # the fix loads


def test_customers_without_a_tier_are_refused() -> None:
    found = problems(ruleset("frequency >= 2"))
    assert (
        "no tier matches a customer who never purchased: end with a catch-all tier "
        '(condition: "true")' in found
    )


def test_duplicate_ids_and_bad_fields_are_named() -> None:
    text = ruleset("true", "true").replace("id: t1", "id: t0")
    assert problems(text) == ["tier 't0': the id is used twice"]
    bad = ruleset(
        "true", thresholds="{mode: fixed, recency_days: -1, frequency: 2, monetary: '1.001'}"
    ).replace("id: t0", "id: 1top")
    assert problems(bad) == [
        "ruleset: thresholds.recency_days: Input should be greater than or equal to 0",
        "ruleset: thresholds.monetary: Decimal input should have no more than 2 decimal places",
        "tier '1top': id: String should match pattern '^[A-Za-z][A-Za-z0-9_]{0,63}$'",
    ]


def test_not_yaml() -> None:
    assert problems("tiers: [")[0].startswith("not YAML")


def test_levels_use_the_thresholds_given() -> None:
    found = levels(
        features(recency=31, frequency=2, monetary=10_000),
        Thresholds(recency_days=30, frequency=2, monetary=10_000),
    )
    assert (found.recency, found.frequency, found.monetary, found.segment) == (
        "low",
        "high",
        "high",
        "important_retain",
    )


def test_population_thresholds_round_to_what_the_comparison_means() -> None:
    fallback = rules.Thresholds(90, 3, 1_000_000)
    found = Population(4, Decimal("2.25"), Decimal("1050000.5"), Decimal("25.75"))
    # F high when frequency >= 2.25: 3 or more; M high when >= 10500.005: 10500.01 (minor
    # units ceil); R high when recency <= 25.75: 25 or less
    assert found.thresholds(fallback) == rules.Thresholds(25, 3, 1_050_001)
    assert Population(0, None, None, None).thresholds(fallback) == fallback


def test_numbers_mix_in_conditions() -> None:
    """SPEC §4: `frequency * 0.3 >= 1.0` is valid, and division is real division."""
    mixed = load(ruleset("frequency * 0.3 >= 1.0", "frequency / 2 > 1", "true"))

    def tier(frequency: int) -> str:
        match = evaluate(mixed, features(frequency=frequency), mixed.thresholds)
        assert match is not None
        return match.tier.id

    assert [tier(f) for f in (4, 3, 2)] == ["t0", "t1", "t2"]  # 1.2; 0.9 then 1.5; 1.0


def test_integer_literals_become_reals_outside_strings_only() -> None:
    assert rules.reals('frequency > 3 && segment == "a3 5"') == (
        'frequency > 3.0 && segment == "a3 5"'
    )
    assert rules.reals("1e-3 < monetary && .5 < frequency_90d") == (
        "1e-3 < monetary && .5 < frequency_90d"
    )
    assert rules.reals("tenure_days-3 >= 0x10") == "tenure_days-3.0 >= 0x10"


def test_an_integer_only_operation_is_refused_naming_the_tier() -> None:
    [problem] = problems(ruleset("frequency % 2 == 0", "true"))
    assert problem.startswith("tier 't0': ")
    assert "overload" in problem


OPERATORS = ("<", "<=", ">", ">=", "==", "!=")


@given(
    frequency=st.integers(0, 50),
    literal=st.integers(-3, 60),
    operator=st.sampled_from(OPERATORS),
)
def test_comparisons_with_integers_mean_what_they_meant(
    frequency: int, literal: int, operator: str
) -> None:
    """Reading literals as reals changes no comparison of a count with an integer."""
    compared = load(ruleset(f"frequency {operator} {literal}", "true"))
    match = evaluate(compared, features(frequency=frequency), compared.thresholds)
    assert match is not None
    expected = {
        "<": frequency < literal,
        "<=": frequency <= literal,
        ">": frequency > literal,
        ">=": frequency >= literal,
        "==": frequency == literal,
        "!=": frequency != literal,
    }[operator]
    assert (match.tier.id == "t0") == expected
