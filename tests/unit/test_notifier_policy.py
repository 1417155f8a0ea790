"""The notification policy, escalation steps, retries, routing and the directory: pure."""

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notifier.core import directory as directories
from services.notifier.core import policy as policies
from services.notifier.core.escalation import Due, next_step
from services.notifier.core.messages import TaskFacts, render
from services.notifier.core.policy import OpenTask, decide
from services.notifier.core.retries import Backoff
from services.notifier.core.routing import Profile, assignee_for, deliveries, recipients
from services.notifier.settings import DEFAULT_POLICY
from tests.notifier_run import NOW, TIERS, change, directory_yaml

DEFAULT = policies.parse(DEFAULT_POLICY.read_text(encoding="utf-8"))
HIGH = [t for t, (_, high) in TIERS.items() if high]
WINBACK = ("important_winback", "general_winback")


def test_a_drop_out_of_high_value_makes_one_urgent_task_with_an_sla_and_alerts() -> None:
    decision = decide(DEFAULT, change("C", "important_value", "important_retain"), "owner", [], NOW)
    (task,) = decision.tasks
    assert task.rule == "high_value_retention"
    assert task.priority == "urgent"
    assert task.ack_sla_seconds == 2 * 3600
    assert task.next_escalation_at == NOW + timedelta(hours=2)
    assert task.alert == ("assignee", "manager")
    assert task.assignee == "owner"


def test_into_high_value_is_a_welcome_task_due_in_a_day_and_initial_winback_is_nothing() -> None:
    (task,) = decide(DEFAULT, change("C", None, "important_develop"), "o", [], NOW).tasks
    assert (task.rule, task.priority, task.due_at) == (
        "high_value_welcome",
        "high",
        NOW + timedelta(hours=24),
    )
    assert task.next_escalation_at is None
    assert decide(DEFAULT, change("C", None, "general_winback"), "o", [], NOW).tasks == ()
    drift = change("C", "general_retain", "general_winback")
    (winback,) = decide(DEFAULT, drift, "o", [], NOW).tasks
    assert winback.rule == "winback"


def test_an_upgrade_back_cancels_the_retention_task_with_the_reason() -> None:
    retention = OpenTask("t1", "high_value_retention", policies.OpenWhile(high_value=False))
    up = change("C", "important_retain", "important_value", change_id="ch-2")
    decision = decide(DEFAULT, up, "owner", [retention], NOW)
    (cancel,) = decision.cancellations
    assert cancel.task_id == "t1"
    assert "important_retain to important_value" in cancel.reason
    assert "ch-2" in cancel.reason
    assert [t.rule for t in decision.tasks] == ["high_value_welcome"]


@st.composite
def journeys(draw: st.DrawFn) -> list[str]:
    return draw(st.lists(st.sampled_from(sorted(TIERS)), min_size=1, max_size=25))


@given(journeys())
def test_open_tasks_always_fit_the_current_tier_and_retention_follows_the_oracle(
    path: list[str],
) -> None:
    """Applying the policy change after change (nobody acts on the tasks): every open task
    still fits the customer's tier, there is at most one open task per rule, and a retention
    task is open exactly when the customer is out of high value since a drop from it."""
    open_tasks: list[OpenTask] = []
    before: str | None = None
    dropped = False  # the batch oracle: out of high value since a drop from it
    for n, current in enumerate(path):
        if before == current:
            continue
        c = change("C", before, current)
        decision = decide(DEFAULT, c, "owner", open_tasks, NOW)
        gone = {x.task_id for x in decision.cancellations}
        open_tasks = [t for t in open_tasks if t.id not in gone]
        open_tasks += [OpenTask(f"{n}-{t.rule}", t.rule, t.open_while) for t in decision.tasks]
        high = TIERS[current][1]
        was_high = before is not None and TIERS[before][1]
        dropped = (dropped or was_high) and not high
        assert all(t.open_while.holds(current, high) for t in open_tasks)
        rules = [t.rule for t in open_tasks]
        assert len(rules) == len(set(rules))
        assert ("high_value_retention" in rules) == dropped
        before = current


def test_policy_errors_name_the_rule() -> None:
    bad = """
version: x
rules:
  - id: fine
    when: {into_high_value: true}
    task: {title: {zh: a, en: a}}
  - id: broken
    when: {into_high_value: true}
    task: {title: {zh: a, en: a}, ack_within: two hours}
"""
    with pytest.raises(policies.PolicyError, match=r"rule 'broken'.*ack_within"):
        policies.parse(bad)
    with pytest.raises(policies.PolicyError, match=r"rule .any..*no condition"):
        policies.parse("version: x\nrules:\n- {id: any, when: {}, task: {title: {zh: a, en: a}}}")


def test_escalation_goes_one_level_up_per_step_and_stops_at_the_top() -> None:
    chain = ("manager", "director", "vp")
    first = next_step(Due("t", "owner", 0, 60), chain, NOW)
    assert (first.level, first.to, first.next_at) == (1, "director", NOW + timedelta(seconds=60))
    second = next_step(Due("t", "owner", 1, 60), chain, NOW)
    assert (second.level, second.to, second.next_at) == (2, "vp", None)
    done = next_step(Due("t", "owner", 2, 60), chain, NOW)
    assert (done.to, done.next_at) == (None, None)


@given(st.integers(1, 30), st.floats(0, 0.999), st.none() | st.floats(0, 1e4))
def test_backoff_grows_is_capped_jittered_and_honours_retry_after(
    attempt: int, jitter: float, retry_after: float | None
) -> None:
    backoff = Backoff(base_s=2.0, cap_s=600.0, max_attempts=5)
    full = min(600.0, 2.0 * 2 ** (attempt - 1))
    delay = backoff.delay(attempt, jitter, retry_after)
    assert delay >= (retry_after or 0.0)
    if retry_after is None:
        assert full / 2 <= delay <= full
    assert backoff.exhausted(5, permanent=False)
    assert not backoff.exhausted(4, permanent=False)
    assert backoff.exhausted(1, permanent=True)


def test_directory_visibility_chain_and_tokens() -> None:
    d = directories.parse(directory_yaml())
    owner, manager, vp, other = (d.people[p] for p in ("owner", "manager", "vp", "other"))
    assert d.chain("owner") == ("manager", "director", "vp")
    assert d.chain("team:queue") == ("manager", "director", "vp")
    assert d.can_see(manager, "owner")
    assert d.can_see(vp, "owner")
    assert not d.can_see(owner, "manager")
    assert not d.can_see(other, "owner")
    assert d.can_see(owner, "team:queue")
    assert not d.can_see(other, "team:queue")
    assert d.authenticate("token-of-owner") == owner
    assert d.authenticate("nope") is None
    assert d.visible(d.people["admin"]) is None


def test_directory_errors_name_the_person() -> None:
    loop = "people:\n- {id: a, name: A, manager: b}\n- {id: b, name: B, manager: a}\n"
    with pytest.raises(directories.DirectoryError, match="person 'a': the manager chain loops"):
        directories.parse(loop)
    unknown = "people:\n- {id: a, name: A, manager: ghost}\n"
    with pytest.raises(directories.DirectoryError, match="person 'a': manager 'ghost'"):
        directories.parse(unknown)
    no_url = "people:\n- {id: a, name: A, channels: [{kind: slack}]}\n"
    with pytest.raises(directories.DirectoryError, match=r"person 'a', channel 0 \(slack\)"):
        directories.parse(no_url)


def test_assignee_is_the_owner_else_the_team_else_the_default_queue() -> None:
    d = directories.parse(directory_yaml())
    assert assignee_for(Profile("C", None, "owner", None), d, "queue") == "owner"
    assert assignee_for(Profile("C", None, "stranger", "queue"), d, "x") == "team:queue"
    assert assignee_for(Profile("C", None, None, "unknown"), d, "queue") == "team:queue"
    assert assignee_for(None, d, "queue") == "team:queue"
    assert recipients("manager", "owner", d.chain("owner")) == ["manager"]
    assert recipients("assignee", "team:queue", d.chain("team:queue")) == ["manager"]


def test_alerts_are_in_the_recipients_language_with_the_why_and_the_link() -> None:
    hook = [{"kind": "webhook", "url": "https://example.invalid/hook?token=secret"}]
    d = directories.parse(directory_yaml({"manager": hook, "other.manager": hook}))
    facts = TaskFacts("t-1", "挽留", "Retain", "urgent", "owner", "C-9", "ACME")
    c = change("C-9", "important_value", "important_retain")
    zh = render("manager_alert", "zh", facts, c, link="http://x/v1/tasks/t-1")
    en = render("manager_alert", "en", facts, c, link="http://x/v1/tasks/t-1")
    assert "挽留" in zh["title"]
    assert "important_value-zh" in zh["text"]
    assert "Retain" in en["title"]
    assert "important_retain" in en["text"]
    for text in (zh["text"], en["text"]):
        assert "R 120d vs ≤90 (low)" in text
        assert "rfm-segments-1" in text
        assert "http://x/v1/tasks/t-1" in text
    (one,) = deliveries(d, ["manager", "nobody"], "manager_alert", facts, c, link="L")
    assert one.recipient == "manager"
    assert one.language == "zh"
    assert "secret" not in one.target
    assert one.target.startswith("webhook:")


def test_the_shipped_directory_and_policy_load() -> None:
    root = DEFAULT_POLICY.parents[3]
    shipped = directories.parse((root / "deploy/notifier/directory.yaml").read_text("utf-8"))
    assert "unassigned" in shipped.teams
    assert shipped.authenticate("demo-token-owner") == shipped.people["owner"]
    assert [rule.id for rule in DEFAULT.rules] == [
        "high_value_welcome",
        "high_value_retention",
        "winback",
    ]
