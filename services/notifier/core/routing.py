"""Who gets what (pure): a customer's assignee from its profile, and the deliveries of an
alert to people through their directory channels, in their language."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from schemas.v1.tiers import TierChangedV1
from services.notifier.core.directory import TEAM, Directory, channel_key
from services.notifier.core.messages import Purpose, TaskFacts, render


@dataclass(frozen=True, slots=True)
class Profile:
    customer_id: str
    name: str | None
    owner_id: str | None
    team: str | None


@dataclass(frozen=True, slots=True)
class NewDelivery:
    key: str  # unique: the same alert is never enqueued twice
    task_id: str
    purpose: str
    recipient: str
    channel: str  # the channel's kind
    target: str  # directory.channel_key: never the URL itself
    language: str
    message: dict[str, Any]


def assignee_for(profile: Profile | None, directory: Directory, default_team: str) -> str:
    """The owner when the directory knows them; else the customer's team queue when the
    directory knows the team; else the configured default team's queue. Never nobody."""
    if profile is not None:
        if profile.owner_id is not None and profile.owner_id in directory.people:
            return profile.owner_id
        if profile.team is not None and profile.team in directory.teams:
            return TEAM + profile.team
    return TEAM + default_team


def recipients(role: str, assignee: str, chain: Sequence[str]) -> list[str]:
    """People an alert for `role` (assignee or manager) goes to; a team queue's assignee
    alert goes to its lead."""
    if role == "assignee":
        if assignee.startswith(TEAM):
            return list(chain[:1])
        return [assignee]
    return list(chain[:1])


def deliveries(
    directory: Directory,
    people: Sequence[str],
    purpose: Purpose,
    task: TaskFacts,
    change: TierChangedV1,
    *,
    link: str,
    level: int = 0,
) -> list[NewDelivery]:
    """One delivery per person and contact channel, keyed so a redo adds nothing."""
    out = []
    for person_id in dict.fromkeys(people):
        person = directory.people.get(person_id)
        if person is None:
            continue
        message = render(purpose, person.language, task, change, link=link, level=level)
        for channel in person.channels:
            target = channel_key(channel)
            out.append(
                NewDelivery(
                    key=f"{task.id}:{purpose}:{level}:{person.id}:{target}",
                    task_id=task.id,
                    purpose=purpose if level == 0 else f"{purpose}_{level}",
                    recipient=person.id,
                    channel=channel.kind,
                    target=target,
                    language=person.language,
                    message=message,
                )
            )
    return out
