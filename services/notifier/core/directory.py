"""The directory (YAML): people, their managers, roles, languages, contact channels and API
tokens (SHA-256 hashes only), and teams with a lead. Pure once loaded.

Who may see a task (SPEC §3): its assignee, anyone above the assignee in the manager chain,
and for a team's queue its lead, its members and anyone above the lead; `admin`s see all.
"""

import hashlib
import hmac
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from services.notifier.core.contacts import Channel, Kind

Language = Literal["zh", "en"]
TEAM = "team:"
Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")]
RATES: Mapping[str, int] = {"dingtalk": 20, "wecom": 20, "slack": 60, "webhook": 600, "email": 600}


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ChannelSpec(_Strict):
    kind: Kind
    url: str | None = Field(None, description="webhook, slack, dingtalk, wecom")
    address: str | None = Field(None, description="email")
    secret: str | None = None
    secret_env: str | None = Field(None, description="read the secret from this variable")
    rate_per_minute: int | None = Field(None, ge=1)


class PersonSpec(_Strict):
    id: Id
    name: str
    role: str = "account_owner"
    manager: Id | None = None
    language: Language = "zh"
    token_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    channels: tuple[ChannelSpec, ...] = ()


class TeamSpec(_Strict):
    id: Id
    name: str
    lead: Id
    members: tuple[Id, ...] = ()


class DirectorySpec(_Strict):
    people: tuple[PersonSpec, ...]
    teams: tuple[TeamSpec, ...] = ()


class DirectoryError(ValueError):
    """A directory that cannot be used, with what is wrong and where."""


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    name: str
    role: str
    manager: str | None
    language: Language
    channels: tuple[Channel, ...]


@dataclass(frozen=True, slots=True)
class Team:
    id: str
    name: str
    lead: str
    members: frozenset[str]


def channel_key(channel: Channel) -> str:
    """Names a channel without its secret URL (logs, the database, rate limits per robot)."""
    digest = hashlib.sha256(f"{channel.kind}\n{channel.target}".encode()).hexdigest()
    return f"{channel.kind}:{digest[:16]}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Directory:
    people: Mapping[str, Person]
    teams: Mapping[str, Team]
    tokens: Mapping[str, str]  # sha256 hex -> person id
    by_key: Mapping[str, Channel]  # channel_key -> channel

    def authenticate(self, token: str) -> Person | None:
        digest = hash_token(token)
        for known, person in self.tokens.items():
            if hmac.compare_digest(known, digest):
                return self.people[person]
        return None

    def managers(self, person_id: str) -> Iterator[str]:
        """The manager chain above a person, nearest first."""
        current = self.people.get(person_id)
        while current is not None and current.manager is not None:
            yield current.manager
            current = self.people.get(current.manager)

    def chain(self, assignee: str) -> tuple[str, ...]:
        """Who is alerted and escalated to for a task of `assignee`: level 0 is alerted when
        the task is created, level n is the n-th escalation."""
        if assignee.startswith(TEAM):
            team = self.teams.get(assignee.removeprefix(TEAM))
            return () if team is None else (team.lead, *self.managers(team.lead))
        return tuple(self.managers(assignee))

    def can_see(self, viewer: Person, assignee: str) -> bool:
        if viewer.role == "admin" or viewer.id == assignee:
            return True
        if assignee.startswith(TEAM):
            team = self.teams.get(assignee.removeprefix(TEAM))
            if team is None:
                return False
            return viewer.id in team.members or viewer.id in (team.lead, *self.managers(team.lead))
        return viewer.id in self.managers(assignee)

    def visible(self, viewer: Person) -> list[str] | None:
        """Every assignee whose tasks the viewer may see; None: all (an admin)."""
        if viewer.role == "admin":
            return None
        people = [p for p in self.people if self.can_see(viewer, p)]
        return people + [TEAM + t for t in self.teams if self.can_see(viewer, TEAM + t)]

    def channel(self, key: str) -> Channel | None:
        return self.by_key.get(key)


def parse(text: str, env: Mapping[str, str] | None = None) -> Directory:
    """Loads and checks a directory; every problem names the person or team."""
    try:
        spec = DirectorySpec.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as error:
        raise DirectoryError(f"directory: {error}") from error
    env = os.environ if env is None else env
    people = {p.id: _person(p, env) for p in spec.people}
    if len(people) != len(spec.people):
        raise DirectoryError("directory: a person id is used twice")
    for person in people.values():
        _check_chain(person, people)
    teams = {t.id: Team(t.id, t.name, t.lead, frozenset(t.members)) for t in spec.teams}
    for team in teams.values():
        unknown = sorted({team.lead, *team.members} - people.keys())
        if unknown:
            raise DirectoryError(f"team {team.id!r}: unknown people {unknown}")
    tokens = {p.token_sha256: p.id for p in spec.people if p.token_sha256}
    by_key = {channel_key(c): c for p in people.values() for c in p.channels}
    return Directory(people, teams, tokens, by_key)


def _person(spec: PersonSpec, env: Mapping[str, str]) -> Person:
    channels = tuple(_channel(spec.id, i, c, env) for i, c in enumerate(spec.channels))
    return Person(spec.id, spec.name, spec.role, spec.manager, spec.language, channels)


def _channel(person: str, index: int, spec: ChannelSpec, env: Mapping[str, str]) -> Channel:
    where = f"person {person!r}, channel {index} ({spec.kind})"
    target = spec.address if spec.kind == "email" else spec.url
    if not target:
        field = "address" if spec.kind == "email" else "url"
        raise DirectoryError(f"{where}: {field} is required")
    if spec.kind != "email" and not target.startswith(("https://", "http://")):
        raise DirectoryError(f"{where}: url must be http(s)")
    secret = spec.secret
    if spec.secret_env is not None:
        secret = env.get(spec.secret_env)
        if secret is None:
            raise DirectoryError(f"{where}: variable {spec.secret_env} is not set")
    rate = spec.rate_per_minute or RATES[spec.kind]
    return Channel(spec.kind, target, secret, rate)


def _check_chain(person: Person, people: Mapping[str, Person]) -> None:
    seen = {person.id}
    current = person
    while current.manager is not None:
        if current.manager not in people:
            raise DirectoryError(
                f"person {current.id!r}: manager {current.manager!r} is not in the directory"
            )
        if current.manager in seen:
            raise DirectoryError(f"person {person.id!r}: the manager chain loops")
        seen.add(current.manager)
        current = people[current.manager]
