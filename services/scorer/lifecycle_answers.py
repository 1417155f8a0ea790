"""The ruleset lifecycle API's requests and answers (SPEC §11): frozen models of what
services/scorer/lifecycle_api.py takes and returns, and the OpenAPI document describes."""

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.scorer.core.ruleset_diff import Named, RulesetDiff
from services.scorer.lifecycle import Activated, Progress, RulesetInfo, ShadowView
from services.scorer.preview import Preview
from services.scorer.store.lifecycle import AuditRow, ScheduleRow
from services.scorer.store.shadow import ShadowRow


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ActivateRequest(_Model):
    at: AwareDatetime | None = Field(
        None, description="Activate at this instant (within 60 s of it); absent: now."
    )
    note: str = Field("", max_length=2000, description="Why, for the audit log.")


class NoteRequest(_Model):
    note: str = Field("", max_length=2000, description="Why, for the audit log.")


class RulesetSummary(_Model):
    version: str
    state: Literal["stored", "shadow", "scheduled", "active", "retired"]
    stored_at: datetime
    stored_by: str
    activation: int | None = Field(description="The number of its latest activation.")
    activated_at: datetime | None
    activated_by: str | None = Field(description="Who made its latest activation.")
    scheduled_at: datetime | None


class AuditEntry(_Model):
    id: int
    at: datetime
    actor: str
    action: str
    version: str | None
    note: str
    detail: dict[str, Any]


class PartitionProgress(_Model):
    partition: int
    state: Literal["pending", "running", "done"]
    done: int
    customers: int


class ProgressAnswer(_Model):
    """The active activation's re-tier: customers done of all, per partition."""

    version: str
    activation: int
    complete: bool
    done: int
    customers: int
    partitions: list[PartitionProgress]


class RulesetDetail(RulesetSummary):
    body: str = Field(description="The ruleset as stored (YAML).")
    audit: list[AuditEntry]
    progress: ProgressAnswer | None = Field(description="Its re-tier, when it is active.")


class Changed(_Model):
    name: str
    fields: dict[str, dict[str, Any]] = Field(description='field -> {"from": …, "to": …}')


class NamedDiff(_Model):
    added: list[str]
    removed: list[str]
    changed: list[Changed]


class DiffAnswer(_Model):
    from_version: str = Field(alias="from")
    to_version: str = Field(alias="to")
    same_rules: bool = Field(description="Only the version, comments or layout differ.")
    thresholds: dict[str, dict[str, Any]]
    stability: dict[str, dict[str, Any]]
    tiers: NamedDiff
    tier_order: dict[str, list[str]] | None
    features: NamedDiff
    scores: NamedDiff
    text: list[str] = Field(description="The unified diff of the two texts.")


class Move(_Model):
    from_tier: str = Field(description='"none": a customer with no tier yet.')
    to_tier: str
    customers: int
    samples: list[str] = Field(description="A few of the customers that would move.")


class PreviewAnswer(_Model):
    version: str
    customers: int
    changes: int
    tiers: dict[str, int] = Field(description="Customers per tier after activation.")
    moves: list[Move]


class ActivationAnswer(_Model):
    version: str
    activation: int
    activated_at: datetime
    actor: str
    cause: str


class ScheduleAnswer(_Model):
    id: int
    version: str
    at: datetime
    state: Literal["pending", "done", "cancelled", "failed"]
    actor: str
    note: str
    created_at: datetime
    done_at: datetime | None
    activation: int | None


class ShadowRun(_Model):
    version: str
    run: int = Field(description="A number of its own for each start of a shadow.")
    started_at: datetime
    started_by: str


class ShadowCell(_Model):
    active_tier: str
    shadow_tier: str
    customers: int
    samples: list[str] = Field(description="A few of them, where the two disagree.")


class PassState(_Model):
    partition: int
    current: bool = Field(description="Its pass is complete for the active standard today.")


class ShadowAnswer(ShadowRun):
    current: bool = Field(
        description="Every partition's pass is complete: the matrix is what promoting the "
        "shadow would move now"
    )
    customers: int
    agreement: float | None = Field(description="The share whose shadow tier is their tier.")
    matrix: list[ShadowCell] = Field(description="Customers per (active tier, shadow tier).")
    partitions: list[PassState]


def shadow_run(row: ShadowRow) -> ShadowRun:
    return ShadowRun(
        version=row.version, run=row.run, started_at=row.started_at, started_by=row.actor
    )


def shadow_answer(view: ShadowView) -> ShadowAnswer:
    return ShadowAnswer(
        **shadow_run(view.row).model_dump(),
        current=view.current,
        customers=view.customers,
        agreement=view.agreement,
        matrix=[
            ShadowCell(
                active_tier=active,
                shadow_tier=shadow,
                customers=count,
                samples=list(view.samples.get((active, shadow), [])),
            )
            for (active, shadow), count in sorted(view.matrix.items())
        ],
        partitions=[PassState(partition=p, current=c) for p, c in view.partitions],
    )


def summary(info: RulesetInfo) -> RulesetSummary:
    row = info.row
    return RulesetSummary(
        version=row.version,
        state=info.state,
        stored_at=row.stored_at,
        stored_by=row.stored_by,
        activation=row.activation,
        activated_at=row.activated_at,
        activated_by=row.activated_by,
        scheduled_at=row.scheduled_at,
    )


def detail(info: RulesetInfo, audit: list[AuditRow], progress: Progress | None) -> RulesetDetail:
    return RulesetDetail(
        **summary(info).model_dump(),
        body=info.body,
        audit=[entry(row) for row in audit],
        progress=None if progress is None else progress_answer(progress),
    )


def entry(row: AuditRow) -> AuditEntry:
    return AuditEntry.model_validate(row, from_attributes=True)


def progress_answer(progress: Progress) -> ProgressAnswer:
    return ProgressAnswer(
        version=progress.version,
        activation=progress.activation,
        complete=progress.complete,
        done=progress.done,
        customers=progress.customers,
        partitions=[
            PartitionProgress(partition=p, state=state, done=done, customers=customers)  # type: ignore[arg-type]
            for p, state, done, customers in progress.partitions
        ],
    )


def diff_answer(found: RulesetDiff) -> DiffAnswer:
    order = found.order
    return DiffAnswer.model_validate(
        {
            "from": found.before,
            "to": found.after,
            "same_rules": found.same_rules,
            "thresholds": found.thresholds,
            "stability": found.stability,
            "tiers": _named(found.tiers),
            "tier_order": None if order is None else {"from": list(order[0]), "to": list(order[1])},
            "features": _named(found.features),
            "scores": _named(found.scores),
            "text": list(found.text),
        }
    )


def _named(found: Named) -> NamedDiff:
    return NamedDiff(
        added=list(found.added),
        removed=list(found.removed),
        changed=[Changed(name=name, fields=fields) for name, fields in found.changed],
    )


def preview_answer(found: Preview) -> PreviewAnswer:
    return PreviewAnswer(
        version=found.version,
        customers=found.customers,
        changes=sum(found.moves.values()),
        tiers=dict(found.tiers.most_common()),
        moves=[
            Move(
                from_tier=before,
                to_tier=after,
                customers=count,
                samples=found.samples.get((before, after), []),
            )
            for (before, after), count in sorted(found.moves.items())
        ],
    )


def activation_answer(found: Activated) -> ActivationAnswer:
    return ActivationAnswer(
        version=found.version,
        activation=found.activation,
        activated_at=found.at,
        actor=found.actor,
        cause=found.cause,
    )


def schedule_answer(row: ScheduleRow) -> ScheduleAnswer:
    return ScheduleAnswer.model_validate(row, from_attributes=True)
