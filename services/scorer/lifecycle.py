"""The rulesets' lifecycle (SPEC §11): store, list, diff, preview, activate now or at an
instant, cancel a schedule, roll back, the audit log and the re-tier's progress. The HTTP
API (services/scorer/lifecycle_api.py) and `tierstream rules` call this, so both do the same.

Every action that changes something writes its audit entry in the same transaction. An
activation only records the new standard: each running scorer re-tiers its partitions
within its maintenance interval (services/scorer/handler.py) and emits the changes.
Scheduled activations are carried out by whichever scorer instance first finds one due
(`run_due`, every few seconds on each instance): the schedule's row is locked and marked
done in the transaction that activates, so it happens once, and a schedule an instance was
carrying out when it stopped is carried out by the next one to look.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.db.unit_of_work import unit_of_work
from services.scorer import preview as previews
from services.scorer.core.config import Scoring
from services.scorer.core.facts import local_day
from services.scorer.core.rules import Ruleset, RulesetError
from services.scorer.core.ruleset_diff import RulesetDiff, diff
from services.scorer.core.scoring import activation_of
from services.scorer.core.state import Windows
from services.scorer.shadow import pass_key
from services.scorer.standards import load_ruleset
from services.scorer.store.control import ControlRepository
from services.scorer.store.lifecycle import (
    AuditRow,
    LifecycleRepository,
    PartitionProgress,
    RulesetRow,
    ScheduleRow,
)
from services.scorer.store.shadow import Pair, ShadowRepository, ShadowRow

State = Literal["stored", "shadow", "scheduled", "active", "retired"]
Cause = Literal["activate", "schedule", "rollback", "configuration"]


class Refusal(Exception):
    """An action the lifecycle refuses (its message says why)."""


class UnknownVersion(Refusal):
    def __init__(self, version: str) -> None:
        super().__init__(f"no ruleset version {version!r} is stored")
        self.version = version


class VersionMismatch(Refusal):
    """The body's `version` is not the one in the path."""


class NothingToRollBack(Refusal):
    """No earlier activation of another version."""


class AlreadyScheduled(Refusal):
    """The version has a pending schedule (cancel it first)."""


class NotScheduled(Refusal):
    """The version has no pending schedule."""


class ShadowRunning(Refusal):
    """Another version runs in shadow (one at a time), or this one is the active one."""


class NotShadowing(Refusal):
    """The version does not run in shadow."""


@dataclass(frozen=True, slots=True)
class RulesetInfo:
    row: RulesetRow
    state: State
    body: str = ""


@dataclass(frozen=True, slots=True)
class Activated:
    version: str
    activation: int
    at: datetime
    actor: str
    cause: Cause


@dataclass(frozen=True, slots=True)
class Progress:
    """The active activation's re-tier, partition by partition: `done` customers of
    `customers` (a partition's `state`: pending, running or done)."""

    version: str
    activation: int
    partitions: tuple[tuple[int, str, int, int], ...]  # (partition, state, done, customers)

    @property
    def complete(self) -> bool:
        return all(state == "done" for _, state, _, _ in self.partitions)

    @property
    def done(self) -> int:
        return sum(done for _, _, done, _ in self.partitions)

    @property
    def customers(self) -> int:
        return sum(customers for _, _, _, customers in self.partitions)


@dataclass(frozen=True, slots=True)
class ShadowView:
    """The shadow as it is now: its agreement matrix (active tier -> shadow tier), a few
    customers of each cell where they disagree, and whether each partition's pass is
    current (complete for the active standard and today)."""

    row: ShadowRow
    partitions: tuple[tuple[int, bool], ...]
    matrix: Mapping[Pair, int]
    samples: Mapping[Pair, list[str]]

    @property
    def current(self) -> bool:
        return all(current for _, current in self.partitions)

    @property
    def customers(self) -> int:
        return sum(self.matrix.values())

    @property
    def agreement(self) -> float | None:
        return agreement(self.matrix)


def agreement(matrix: Mapping[Pair, int]) -> float | None:
    """The share of customers whose shadow tier is their tier (None: none counted)."""
    customers = sum(matrix.values())
    agreeing = sum(n for (active, shadow), n in matrix.items() if active == shadow)
    return agreeing / customers if customers else None


def state_of(row: RulesetRow) -> State:
    if row.active:
        return "active"
    if row.shadow:
        return "shadow"
    if row.scheduled_at is not None:
        return "scheduled"
    if row.activation is not None:
        return "retired"
    return "stored"


def progress_of(version: str, activation: int, rows: list[PartitionProgress]) -> Progress:
    """Each partition's re-tier for the activation: done once the partition applied it,
    running while its re-tier is for it, else pending (no scorer has started it)."""
    this = f"{version}#{activation}"
    found = []
    for row in rows:
        if row.applied is None or activation_of(row.applied) == this:
            found.append((row.partition, "done", row.customers, row.customers))
        elif row.retier_for is not None and activation_of(row.retier_for) == this:
            found.append((row.partition, "running", min(row.done, row.customers), row.customers))
        else:
            found.append((row.partition, "pending", 0, row.customers))
    return Progress(version, activation, tuple(found))


async def progress_in(session: AsyncSession, topic: str) -> Progress | None:
    """The active activation's re-tier (None: no ruleset was ever activated)."""
    active = await ControlRepository(session, topic).active_ruleset()
    if active is None or active.activation is None:
        return None
    rows = await LifecycleRepository(session).progress(topic)
    return progress_of(active.version, active.activation, rows)


class Lifecycle:
    def __init__(
        self,
        make_session: async_sessionmaker[AsyncSession],
        *,
        scoring: Scoring,
        topic: str,
        clock: str,
        now: Callable[[], datetime],
    ) -> None:
        self._sessions = make_session
        self._scoring = scoring
        self._topic = topic
        self._clock = clock
        self._now = now

    def check(self, text: str, version: str | None = None) -> Ruleset:
        """The ruleset a text holds, validated as `tierstream rules check` does (RulesetError
        names each problem); `version`: the version it must have."""
        where = "the ruleset" if version is None else f"ruleset {version}"
        ruleset = load_ruleset(text, where, self._scoring.windows)
        if version is not None and ruleset.version != version:
            raise VersionMismatch(
                f"the body's version is {ruleset.version!r}, the path's {version!r}: "
                "they must be the same"
            )
        return ruleset

    async def store(self, version: str, text: str, actor: str, note: str = "") -> bool:
        """Stores a new version (True) or finds it stored with the same text (False);
        VersionConflict when it is stored with another text."""
        self.check(text, version)
        async with unit_of_work(self._sessions) as session:
            return await _store(session, version, text, actor, note)

    async def rulesets(self) -> list[RulesetInfo]:
        async with unit_of_work(self._sessions) as session:
            rows = await LifecycleRepository(session).rulesets()
        return [RulesetInfo(row, state_of(row)) for row in rows]

    async def ruleset(self, version: str) -> RulesetInfo:
        async with unit_of_work(self._sessions) as session:
            row = await LifecycleRepository(session).ruleset(version)
            stored = await ControlRepository(session, self._topic).ruleset(version)
        if row is None or stored is None:
            raise UnknownVersion(version)
        return RulesetInfo(row, state_of(row), stored.body)

    async def diff(self, before: str, after: str) -> RulesetDiff:
        async with unit_of_work(self._sessions) as session:
            control = ControlRepository(session, self._topic)
            a, b = await control.ruleset(before), await control.ruleset(after)
        if a is None:
            raise UnknownVersion(before)
        if b is None:
            raise UnknownVersion(after)
        return diff(a.body, b.body)

    async def preview(self, version: str, actor: str, samples: int = 3) -> previews.Preview:
        """What activating `version` now would do to the live state (it writes nothing but
        the audit entry)."""
        return await self._preview(version, (await self.ruleset(version)).body, actor, samples)

    async def _preview(self, version: str, body: str, actor: str, samples: int) -> previews.Preview:
        found = await previews.preview(
            self._sessions,
            body,
            scoring=self._scoring,
            topic=self._topic,
            clock=self._clock,
            now=self._now,
            samples=samples,
        )
        async with unit_of_work(self._sessions) as session:
            await LifecycleRepository(session).audit(
                actor,
                "previewed",
                version,
                detail={"customers": found.customers, "moves": sum(found.moves.values())},
            )
        return found

    async def preview_text(
        self, text: str, source: str, actor: str, samples: int = 3
    ) -> previews.Preview:
        """The preview of a ruleset that need not be stored (`tierstream rules preview FILE`)."""
        ruleset = load_ruleset(text, source, self._scoring.windows)
        return await self._preview(ruleset.version, text, actor, samples)

    async def activate(self, version: str, actor: str, note: str = "") -> Activated:
        """Makes `version` active now, as a new activation (new change ids, SPEC §11)."""
        async with unit_of_work(self._sessions) as session:
            return await self._activate(session, version, actor, note, "activate")

    async def schedule(self, version: str, at: datetime, actor: str, note: str = "") -> ScheduleRow:
        """Activates `version` at `at` (within a minute of it); one schedule per version."""
        async with unit_of_work(self._sessions) as session:
            await self._stored(session, version)
            lifecycle = LifecycleRepository(session)
            if any(s.version == version for s in await lifecycle.schedules()):
                raise AlreadyScheduled(
                    f"ruleset {version!r} is already scheduled: cancel that schedule first"
                )
            found = await lifecycle.schedule(version, at, actor, note)
            await lifecycle.audit(
                actor, "scheduled", version, note, {"at": at.isoformat(), "schedule": found.id}
            )
            return found

    async def schedules(self, *, everything: bool = False) -> list[ScheduleRow]:
        async with unit_of_work(self._sessions) as session:
            return await LifecycleRepository(session).schedules(everything=everything)

    async def cancel(self, version: str, actor: str, note: str = "") -> list[ScheduleRow]:
        async with unit_of_work(self._sessions) as session:
            lifecycle = LifecycleRepository(session)
            cancelled = await lifecycle.cancel(version)
            if not cancelled:
                raise NotScheduled(f"ruleset {version!r} has no pending schedule")
            await lifecycle.audit(
                actor, "schedule_cancelled", version, note, {"schedules": [s.id for s in cancelled]}
            )
            return cancelled

    async def rollback(self, actor: str, note: str = "") -> Activated:
        """Re-activates the version active before the current one, as a new activation."""
        async with unit_of_work(self._sessions) as session:
            active = await ControlRepository(session, self._topic).active_ruleset()
            previous = None
            if active is not None:
                previous = await LifecycleRepository(session).active_before(active.version)
            if active is None or previous is None:
                raise NothingToRollBack("no other version was active before the current one")
            return await self._activate(
                session, previous, actor, note, "rollback", rolled_back=active.version
            )

    async def run_due(self) -> list[Activated]:
        """Carries out the schedules due now, each in a transaction of its own."""
        done: list[Activated] = []
        while True:
            async with unit_of_work(self._sessions) as session:
                lifecycle = LifecycleRepository(session)
                due = await lifecycle.take_due(self._now())
                if due is None:
                    return done
                try:
                    activated = await self._activate(
                        session, due.version, due.actor, due.note, "schedule", schedule=due
                    )
                except RulesetError as error:  # valid when scheduled, not with today's settings
                    await lifecycle.failed(due.id)
                    await lifecycle.audit(
                        due.actor,
                        "schedule_failed",
                        due.version,
                        due.note,
                        {"schedule": due.id, "problems": error.problems},
                    )
                    continue
                await lifecycle.done(due.id, activated.activation)
            done.append(activated)

    async def start_shadow(self, version: str, actor: str, note: str = "") -> ShadowRow:
        """Runs `version` in shadow beside the active ruleset (one at a time)."""
        async with unit_of_work(self._sessions) as session:
            await self._stored(session, version)
            active = await ControlRepository(session, self._topic).active_ruleset()
            if active is not None and active.version == version:
                raise ShadowRunning(f"ruleset {version!r} is the active one")
            shadows = ShadowRepository(session)
            started = await shadows.start(version, actor)
            if started is None:
                running = await shadows.current()
                raise ShadowRunning(
                    f"ruleset {running.version if running else '?'!r} runs in shadow: stop "
                    "it first (one shadow at a time)"
                )
            await LifecycleRepository(session).audit(
                actor, "shadow_started", version, note, {"run": started.run}
            )
            return started

    async def stop_shadow(self, version: str, actor: str, note: str = "") -> ShadowRow:
        async with unit_of_work(self._sessions) as session:
            shadows = ShadowRepository(session)
            running = await shadows.current()
            if running is None or running.version != version:
                raise NotShadowing(f"ruleset {version!r} does not run in shadow")
            await shadows.stop()
            await LifecycleRepository(session).audit(
                actor, "shadow_stopped", version, note, {"run": running.run}
            )
            return running

    async def shadow(self, version: str, samples: int = 3) -> ShadowView:
        async with unit_of_work(self._sessions) as session:
            running = await ShadowRepository(session).current()
            if running is None or running.version != version:
                raise NotShadowing(f"ruleset {version!r} does not run in shadow")
            shadows = ShadowRepository(session, running.run)
            matrix = await shadows.matrix()
            named = {
                pair: await shadows.samples(pair, samples)
                for pair in sorted(matrix)
                if pair[0] != pair[1]
            }
            passes = await shadows.passes(self._topic)
        wall = self._now()
        current = []
        for one in passes:
            moment = (one.clock or wall) if self._clock == "event" else wall
            key = pass_key(running.run, one.applied or "", local_day(moment, self._scoring.zone))
            current.append(
                (one.partition, one.applied is None or (one.after is None and one.key == key))
            )
        return ShadowView(running, tuple(current), matrix, named)

    async def shadow_agreement(self) -> tuple[str, float | None] | None:
        """The shadow's version and agreement ratio (None: no shadow runs), from the
        counters alone."""
        async with unit_of_work(self._sessions) as session:
            running = await ShadowRepository(session).current()
            if running is None:
                return None
            matrix = await ShadowRepository(session, running.run).matrix()
        return running.version, agreement(matrix)

    async def audit(
        self, *, version: str | None = None, before: int | None = None, limit: int = 100
    ) -> list[AuditRow]:
        async with unit_of_work(self._sessions) as session:
            return await LifecycleRepository(session).audit_log(
                version=version, before=before, limit=limit
            )

    async def progress(self) -> Progress | None:
        async with unit_of_work(self._sessions) as session:
            return await progress_in(session, self._topic)

    async def _activate(
        self,
        session: AsyncSession,
        version: str,
        actor: str,
        note: str,
        cause: Cause,
        *,
        rolled_back: str | None = None,
        schedule: ScheduleRow | None = None,
    ) -> Activated:
        ruleset, body = await self._stored(session, version)
        return await _activate(
            session, ruleset, body, actor, note, cause,
            rolled_back=rolled_back, schedule=schedule,
        )  # fmt: skip

    async def _stored(self, session: AsyncSession, version: str) -> tuple[Ruleset, str]:
        """A stored version and its text, valid under this deployment's settings
        (UnknownVersion, or RulesetError naming the problems)."""
        stored = await ControlRepository(session, self._topic).ruleset(version)
        if stored is None:
            raise UnknownVersion(version)
        return self.check(stored.body, version), stored.body


async def activate_text(
    make_session: async_sessionmaker[AsyncSession],
    text: str,
    source: str,
    windows: Windows,
    *,
    actor: str,
    note: str = "",
) -> Activated:
    """Validates, stores (unless stored with this text) and activates a ruleset file
    (`tierstream rules activate`); running scorers re-tier within their maintenance
    interval and emit the changes."""
    ruleset = load_ruleset(text, source, windows)
    async with unit_of_work(make_session) as session:
        await _store(session, ruleset.version, text, actor, note)
        return await _activate(session, ruleset, text, actor, note, "activate")


async def _store(session: AsyncSession, version: str, text: str, actor: str, note: str) -> bool:
    control = ControlRepository(session, "")
    existing = await control.ruleset(version)
    await control.store_ruleset(version, text, actor)
    if existing is not None:
        return False
    await LifecycleRepository(session).audit(actor, "stored", version, note)
    return True


async def _activate(  # noqa: PLR0917 - one activation's whole record
    session: AsyncSession,
    ruleset: Ruleset,
    body: str,
    actor: str,
    note: str,
    cause: Cause,
    *,
    rolled_back: str | None = None,
    schedule: ScheduleRow | None = None,
) -> Activated:
    """Activates a stored ruleset and writes the audit entry, in the caller's transaction."""
    control = ControlRepository(session, "")
    active = await control.activate(ruleset.version, body, ruleset.plan.keys, actor, cause)
    assert active.activation is not None  # noqa: S101 - an activation has both
    assert active.activated_at is not None  # noqa: S101
    detail: dict[str, object] = {"activation": active.activation, "cause": cause}
    if rolled_back is not None:
        detail["rolled_back"] = rolled_back
    if schedule is not None:
        late = (active.activated_at - schedule.at).total_seconds()
        detail |= {"schedule": schedule.id, "scheduled_at": schedule.at.isoformat()}
        detail["late_seconds"] = round(late, 3)
    action = "rolled_back" if cause == "rollback" else "activated"
    lifecycle = LifecycleRepository(session)
    await lifecycle.audit(actor, action, ruleset.version, note, detail)
    shadows = ShadowRepository(session)
    running = await shadows.current()
    if running is not None and running.version == ruleset.version:  # promoted: it ends
        matrix = await ShadowRepository(session, running.run).matrix()
        await shadows.stop()
        await lifecycle.audit(
            actor,
            "shadow_promoted",
            ruleset.version,
            note,
            {
                "run": running.run,
                "activation": active.activation,
                "matrix": [[a, b, n] for (a, b), n in sorted(matrix.items())],
            },
        )
    return Activated(ruleset.version, active.activation, active.activated_at, actor, cause)
