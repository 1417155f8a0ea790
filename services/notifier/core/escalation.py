"""Escalation (pure): an urgent task not acknowledged within its SLA goes one level up the
manager chain per SLA period.

The chain of a task is `Directory.chain(assignee)`: level 0 (the assignee's manager, or a
team queue's lead) is alerted when the task is made; escalation level n goes to chain[n].
Each step gives the new person a full SLA period before the next (the timer restarts at the
step), so a notifier that was down does not fire several levels at once on its return.
When the chain has no one left, the timer stops.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Due:
    """A task whose escalation timer fired."""

    task_id: str
    assignee: str
    level: int
    ack_sla_seconds: int


@dataclass(frozen=True, slots=True)
class Step:
    task_id: str
    level: int
    to: str | None  # None: nobody is left above; the timer stops without a step
    next_at: datetime | None


def next_step(due: Due, chain: Sequence[str], now: datetime) -> Step:
    level = due.level + 1
    if level >= len(chain):
        return Step(due.task_id, due.level, None, None)
    more = level + 1 < len(chain)
    next_at = now + timedelta(seconds=due.ack_sla_seconds) if more else None
    return Step(due.task_id, level, chain[level], next_at)
