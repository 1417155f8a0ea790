"""Alert texts (pure): in the recipient's language (zh or en), with the task, the tier change
and its "why" (features against thresholds, levels, ruleset version, matched rule, cause) and
the task's link."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from schemas.v1.tiers import TierChangedV1

Purpose = Literal["task_created", "manager_alert", "escalation"]
Language = Literal["zh", "en"]

_TEXT: Mapping[Language, Mapping[str, str]] = {
    "zh": {
        "task_created": "新任务",
        "manager_alert": "团队客户变动",
        "escalation": "任务升级（第{level}级）：未在时限内确认",
        "customer": "客户",
        "move": "层级变化",
        "priority": "优先级",
        "assignee": "负责人",
        "why": "原因",
        "cause_event": "事件 {id}（{source}）",
        "cause_clock": "时间推移（{reason}）",
        "rule": "规则集 {version}，命中规则 {rule}",
        "link": "查看任务",
        "none": "无",
    },
    "en": {
        "task_created": "New task",
        "manager_alert": "A customer of your team moved",
        "escalation": "Escalation (level {level}): not acknowledged in time",
        "customer": "Customer",
        "move": "Tier",
        "priority": "Priority",
        "assignee": "Assignee",
        "why": "Why",
        "cause_event": "event {id} ({source})",
        "cause_clock": "time passed ({reason})",
        "rule": "ruleset {version}, matched rule {rule}",
        "link": "Open the task",
        "none": "none",
    },
}


@dataclass(frozen=True, slots=True)
class TaskFacts:
    id: str
    title_zh: str
    title_en: str
    priority: str
    assignee: str
    customer_id: str
    customer_name: str | None


def render(
    purpose: Purpose,
    language: Language,
    task: TaskFacts,
    change: TierChangedV1,
    *,
    link: str,
    level: int = 0,
) -> dict[str, Any]:
    """The stored message of a delivery: title, text, link and structured data."""
    words = _TEXT[language]
    title = task.title_zh if language == "zh" else task.title_en
    heading = words[purpose].format(level=level)
    lines = [
        f"**{heading}: {title}**",
        f"{words['customer']}: {task.customer_name or task.customer_id} ({task.customer_id})",
        f"{words['move']}: {_label(change, 'from', language, words)} → "
        f"{_label(change, 'to', language, words)}",
        f"{words['priority']}: {task.priority}; {words['assignee']}: {task.assignee}",
        f"{words['why']}: {_why(change, words)}",
        f"{words['link']}: {link}",
    ]
    return {
        "title": f"{heading}: {title}",
        "text": "\n".join(lines),
        "link": link,
        "data": {
            "purpose": purpose,
            "level": level,
            "task_id": task.id,
            "customer_id": task.customer_id,
            "priority": task.priority,
            "assignee": task.assignee,
            "change": change.model_dump(mode="json"),
        },
    }


def _label(change: TierChangedV1, side: str, language: Language, words: Mapping[str, str]) -> str:
    tier = change.from_tier if side == "from" else change.to_tier
    if tier is None:
        return words["none"]
    return tier.labels.zh if language == "zh" else tier.labels.en


def _why(change: TierChangedV1, words: Mapping[str, str]) -> str:
    f, t, lv = change.features, change.thresholds, change.levels
    recency = "-" if f.recency_days is None else str(f.recency_days)
    parts = [
        f"R {recency}d vs ≤{t.recency_days} ({lv.recency})",
        f"F {f.frequency} vs ≥{t.frequency} ({lv.frequency})",
        f"M {f.monetary} vs ≥{t.monetary} ({lv.monetary})",
        words["rule"].format(version=change.ruleset_version, rule=change.matched_rule),
    ]
    cause = change.cause
    if cause.kind == "event":
        parts.append(words["cause_event"].format(id=cause.event_id, source=cause.event_source))
    else:
        parts.append(words["cause_clock"].format(reason=cause.reason))
    return "; ".join(parts)
