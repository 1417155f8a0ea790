"""The notification policy (SPEC §6): which tier changes make which tasks, whom they alert,
when they escalate, and which later changes make them obsolete. Pure: a tier change, the
customer's assignee and open tasks, and `now` in; tasks to create and cancel out.

A rule matches a change on its `when` (all the given conditions hold). Each matching rule
makes one task (the database keeps it to one per change and rule). A task stays open while
its `open_while` holds for the customer's current tier; a later change that breaks it cancels
the task with the reason.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.v1.tiers import TierChangedV1

Priority = Literal["urgent", "high", "normal", "low"]
Recipient = Literal["assignee", "manager"]
Direction = Literal["up", "down", "lateral", "initial"]
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class PolicyError(ValueError):
    """A policy that cannot be used: names the rule and the problem."""


def seconds(text: str) -> int:
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 30s, 15m, 2h or 7d")
    return int(match.group(1)) * _UNITS[match.group(2)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Title(_Strict):
    zh: str = Field(min_length=1)
    en: str = Field(min_length=1)


class When(_Strict):
    into_high_value: bool | None = None
    out_of_high_value: bool | None = None
    to_tiers: tuple[str, ...] | None = None
    from_tiers: tuple[str, ...] | None = None
    directions: tuple[Direction, ...] | None = None


class OpenWhile(_Strict):
    """The task stays open while the customer's current tier satisfies this."""

    high_value: bool | None = None
    tiers: tuple[str, ...] | None = None

    def holds(self, tier_id: str, high_value: bool) -> bool:
        if self.high_value is not None and high_value != self.high_value:
            return False
        return self.tiers is None or tier_id in self.tiers


class TaskSpec(_Strict):
    title: Title
    priority: Priority = "normal"
    due: str | None = None
    ack_within: str | None = Field(None, description="SLA: escalates when not acknowledged")

    @field_validator("due", "ack_within")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            seconds(value)
        return value


class Rule(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    when: When
    task: TaskSpec
    open_while: OpenWhile = OpenWhile()
    alert: tuple[Recipient, ...] = ()
    escalate: bool = Field(True, description="escalate up the manager chain after ack_within")


class Policy(_Strict):
    version: str = Field(min_length=1)
    rules: tuple[Rule, ...]


def parse(text: str) -> Policy:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PolicyError(f"policy: not YAML: {error}") from error
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as error:
        raise PolicyError(f"policy: {_where(raw, error)}") from error
    ids = [rule.id for rule in policy.rules]
    if len(set(ids)) != len(ids):
        raise PolicyError("policy: a rule id is used twice")
    for rule in policy.rules:
        if rule.when == When():
            raise PolicyError(f"rule {rule.id!r}: `when` has no condition (it would match all)")
    return policy


def _where(raw: object, error: ValidationError) -> str:
    """Pydantic's message, with the rule named by its id rather than its index."""
    problems = []
    for item in error.errors():
        loc = list(item["loc"])
        if (
            len(loc) >= 2
            and loc[0] == "rules"
            and isinstance(loc[1], int)
            and isinstance(raw, dict)
        ):
            rules = raw.get("rules") or []
            rule = rules[loc[1]] if loc[1] < len(rules) else {}
            name = rule.get("id", f"#{loc[1]}") if isinstance(rule, dict) else f"#{loc[1]}"
            loc = [f"rule {name!r}", *loc[2:]]
        problems.append(f"{'.'.join(map(str, loc))}: {item['msg']}")
    return "; ".join(problems)


@dataclass(frozen=True, slots=True)
class NewTask:
    rule: str
    title_zh: str
    title_en: str
    priority: Priority
    assignee: str
    open_while: OpenWhile
    due_at: datetime | None
    ack_sla_seconds: int | None
    next_escalation_at: datetime | None
    alert: tuple[Recipient, ...]


@dataclass(frozen=True, slots=True)
class OpenTask:
    id: str
    rule: str
    open_while: OpenWhile


@dataclass(frozen=True, slots=True)
class Cancellation:
    task_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    tasks: tuple[NewTask, ...]
    cancellations: tuple[Cancellation, ...]


def matches(when: When, change: TierChangedV1) -> bool:
    before, after = change.from_tier, change.to_tier
    was_high = before is not None and before.high_value
    checks = (
        when.into_high_value is None or when.into_high_value == (after.high_value and not was_high),
        when.out_of_high_value is None
        or when.out_of_high_value == (was_high and not after.high_value),
        when.to_tiers is None or after.id in when.to_tiers,
        when.from_tiers is None or (before is not None and before.id in when.from_tiers),
        when.directions is None or change.direction in when.directions,
    )
    return all(checks)


def decide(
    policy: Policy,
    change: TierChangedV1,
    assignee: str,
    open_tasks: Sequence[OpenTask],
    now: datetime,
) -> Decision:
    """Open tasks the change makes obsolete, and the tasks it makes: one per matching rule,
    unless the customer already has an open task of that rule that stays open."""
    after = change.to_tier
    obsolete = {
        task.id for task in open_tasks if not task.open_while.holds(after.id, after.high_value)
    }
    still_open = {task.rule for task in open_tasks if task.id not in obsolete}
    tasks = tuple(
        _task(rule, assignee, now)
        for rule in policy.rules
        if rule.id not in still_open and matches(rule.when, change)
    )
    cancellations = tuple(
        Cancellation(task.id, _reason(change, task)) for task in open_tasks if task.id in obsolete
    )
    return Decision(tasks, cancellations)


def _task(rule: Rule, assignee: str, now: datetime) -> NewTask:
    spec = rule.task
    sla = None if spec.ack_within is None else seconds(spec.ack_within)
    return NewTask(
        rule=rule.id,
        title_zh=spec.title.zh,
        title_en=spec.title.en,
        priority=spec.priority,
        assignee=assignee,
        open_while=rule.open_while,
        due_at=None if spec.due is None else now + timedelta(seconds=seconds(spec.due)),
        ack_sla_seconds=sla,
        next_escalation_at=None
        if sla is None or not rule.escalate
        else now + timedelta(seconds=sla),
        alert=rule.alert,
    )


def _reason(change: TierChangedV1, task: OpenTask) -> str:
    before = "none" if change.from_tier is None else change.from_tier.id
    return (
        f"obsolete: the customer moved from {before} to {change.to_tier.id} "
        f"(change {change.change_id}), so {task.rule} no longer applies"
    )
