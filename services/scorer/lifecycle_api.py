"""HTTP entry point of the ruleset lifecycle (SPEC §11), for admin tokens: store, list, show,
diff, preview, activate (now or at an instant), cancel a schedule, roll back, the audit log
and the re-tier's progress. It decodes, authorizes, calls services/scorer/lifecycle.py and
answers; every refusal is a problem document naming what and where."""

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse

from services.scorer import access
from services.scorer.core.rules import RulesetError
from services.scorer.lifecycle import (
    AlreadyScheduled,
    Lifecycle,
    NothingToRollBack,
    NotScheduled,
    NotShadowing,
    Refusal,
    ShadowRunning,
    UnknownVersion,
    VersionMismatch,
)
from services.scorer.lifecycle_answers import (
    ActivateRequest,
    ActivationAnswer,
    AuditEntry,
    DiffAnswer,
    NoteRequest,
    PreviewAnswer,
    ProgressAnswer,
    RulesetDetail,
    RulesetSummary,
    ScheduleAnswer,
    ShadowAnswer,
    ShadowRun,
    activation_answer,
    detail,
    diff_answer,
    entry,
    preview_answer,
    progress_answer,
    schedule_answer,
    shadow_answer,
    shadow_run,
    summary,
)
from services.scorer.store.control import VersionConflict
from services.web import problems
from services.web.body import media_type, read_bounded
from services.web.problems import Problem, ProblemItem, problem_response
from services.web.tokens import Token

MAX_RULESET_BYTES = 256 * 1024
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain")
Version = Annotated[str, "a ruleset version"]


def lifecycle_router(tokens: Sequence[Token]) -> APIRouter:
    """The routes, for the configured `tokens` (only `admin` ones may use them)."""
    router = APIRouter(prefix="/v1/rulesets", tags=["rulesets"])
    admin = Depends(access.admin(tokens))
    refused = (401, 403)

    @router.put(
        "/{version}",
        summary="Store a ruleset version (YAML body); a version is immutable",
        responses=problems.responses(*refused, 409, 413, 415, 422),
        status_code=201,
        openapi_extra={
            "requestBody": {"content": {"application/yaml": {"schema": {"type": "string"}}}}
        },
    )
    async def store(
        request: Request, response: Response, version: str, actor: Token = admin, note: str = ""
    ) -> RulesetSummary:
        kind, _ = media_type(request)
        if kind not in YAML_TYPES:
            raise Problem(
                415,
                "unsupported-media-type",
                "Unsupported media type",
                f"a ruleset is YAML ({', '.join(YAML_TYPES)}), not {kind or 'no type'!r}",
            )
        body = await read_bounded(request, MAX_RULESET_BYTES)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise Problem(
                422, "invalid-ruleset", "Invalid ruleset", f"the body is not UTF-8: {error}"
            ) from error
        created = await _lifecycle(request).store(version, text, actor.name, note)
        found = await _lifecycle(request).ruleset(version)
        if not created:
            response.status_code = 200
        return summary(found)

    @router.get("", summary="Every stored version and its state")
    async def listing(request: Request, _: Token = admin) -> list[RulesetSummary]:
        return [summary(info) for info in await _lifecycle(request).rulesets()]

    @router.get(
        "/audit",
        summary="The audit log, newest first",
        responses=problems.responses(*refused),
    )
    async def audit(
        request: Request,
        _: Token = admin,
        version: str | None = None,
        before: Annotated[int | None, Query(description="entries older than this id")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[AuditEntry]:
        found = await _lifecycle(request).audit(version=version, before=before, limit=limit)
        return [entry(row) for row in found]

    @router.get(
        "/progress",
        summary="The active activation's re-tier, per partition",
        responses=problems.responses(*refused, 404),
    )
    async def progress(request: Request, _: Token = admin) -> ProgressAnswer:
        found = await _lifecycle(request).progress()
        if found is None:
            raise Problem(404, "no-active-ruleset", "No active ruleset", "none was activated")
        return progress_answer(found)

    @router.get(
        "/schedules",
        summary="Scheduled activations (all=true: also those done and cancelled)",
        responses=problems.responses(*refused),
    )
    async def schedules(
        request: Request, _: Token = admin, all: bool = False
    ) -> list[ScheduleAnswer]:
        found = await _lifecycle(request).schedules(everything=all)
        return [schedule_answer(row) for row in found]

    @router.post(
        "/rollback",
        summary="Re-activate the version active before the current one (a new activation)",
        responses=problems.responses(*refused, 409),
    )
    async def rollback(
        request: Request, body: NoteRequest | None = None, actor: Token = admin
    ) -> ActivationAnswer:
        found = await _lifecycle(request).rollback(actor.name, (body or NoteRequest()).note)
        return activation_answer(found)

    @router.get(
        "/{version}", summary="One version, its audit and progress", responses=_one(refused)
    )
    async def one(request: Request, version: str, _: Token = admin) -> RulesetDetail:
        lifecycle = _lifecycle(request)
        info = await lifecycle.ruleset(version)
        audit = await lifecycle.audit(version=version, limit=1000)
        progress = await lifecycle.progress() if info.state == "active" else None
        return detail(info, audit, progress)

    @router.get(
        "/{before}/diff/{after}",
        summary="What changes from one version to another",
        responses=_one(refused),
    )
    async def diff(request: Request, before: str, after: str, _: Token = admin) -> DiffAnswer:
        return diff_answer(await _lifecycle(request).diff(before, after))

    _changes(router, admin)
    return router


def _changes(router: APIRouter, admin: Any) -> None:
    """The routes that change what is active or in shadow, and the preview."""
    refused = (401, 403)

    @router.post(
        "/{version}/preview",
        summary="What activating the version now would do: distribution and from->to moves",
        responses=_one(refused),
    )
    async def preview(request: Request, version: str, actor: Token = admin) -> PreviewAnswer:
        return preview_answer(await _lifecycle(request).preview(version, actor.name))

    @router.post(
        "/{version}/activate",
        summary="Activate now, or at `at` (202: scheduled)",
        responses=problems.responses(*refused, 404, 409, 422),
        response_model=ActivationAnswer | ScheduleAnswer,
    )
    async def activate(
        request: Request,
        response: Response,
        version: str,
        body: ActivateRequest | None = None,
        actor: Token = admin,
    ) -> ActivationAnswer | ScheduleAnswer:
        asked = body or ActivateRequest()
        lifecycle = _lifecycle(request)
        if asked.at is None:
            return activation_answer(await lifecycle.activate(version, actor.name, asked.note))
        found = await lifecycle.schedule(version, asked.at, actor.name, asked.note)
        response.status_code = 202
        return schedule_answer(found)

    @router.post(
        "/{version}/shadow",
        summary="Run the version in shadow beside the active one (emits nothing)",
        responses=problems.responses(*refused, 404, 409, 422),
        status_code=201,
    )
    async def start_shadow(
        request: Request, version: str, body: NoteRequest | None = None, actor: Token = admin
    ) -> ShadowRun:
        found = await _lifecycle(request).start_shadow(
            version, actor.name, (body or NoteRequest()).note
        )
        return shadow_run(found)

    @router.get(
        "/{version}/shadow",
        summary="The shadow's agreement matrix (active tier -> shadow tier) as it is now",
        responses=_one(refused),
    )
    async def shadow(request: Request, version: str, _: Token = admin) -> ShadowAnswer:
        return shadow_answer(await _lifecycle(request).shadow(version))

    @router.delete(
        "/{version}/shadow", summary="Stop the version's shadow", responses=_one(refused)
    )
    async def stop_shadow(
        request: Request, version: str, body: NoteRequest | None = None, actor: Token = admin
    ) -> ShadowRun:
        found = await _lifecycle(request).stop_shadow(
            version, actor.name, (body or NoteRequest()).note
        )
        return shadow_run(found)

    @router.delete(
        "/{version}/schedule",
        summary="Cancel the version's pending scheduled activation",
        responses=_one(refused),
    )
    async def cancel(
        request: Request, version: str, body: NoteRequest | None = None, actor: Token = admin
    ) -> list[ScheduleAnswer]:
        found = await _lifecycle(request).cancel(version, actor.name, (body or NoteRequest()).note)
        return [schedule_answer(row) for row in found]


def _one(refused: tuple[int, ...]) -> dict[int | str, dict[str, object]]:
    return problems.responses(*refused, 404)


def _lifecycle(request: Request) -> Lifecycle:
    lifecycle: Lifecycle = request.app.state.lifecycle
    return lifecycle


def install(app: FastAPI) -> None:
    """The lifecycle's refusals as problem documents, wherever a route raises them."""
    for kind in (Refusal, RulesetError, VersionConflict):
        app.add_exception_handler(kind, _on_refusal)


async def _on_refusal(_: Request, error: Exception) -> JSONResponse:
    return problem_response(_problem(error))


# each refusal: its status, problem type and title
_REFUSALS: dict[type[Exception], tuple[int, str, str]] = {
    UnknownVersion: (404, "unknown-ruleset", "No such ruleset"),
    VersionMismatch: (422, "version-mismatch", "Version mismatch"),
    VersionConflict: (409, "version-conflict", "Version already stored"),
    AlreadyScheduled: (409, "already-scheduled", "Already scheduled"),
    NotScheduled: (404, "not-scheduled", "Not scheduled"),
    NothingToRollBack: (409, "nothing-to-roll-back", "Nothing to roll back to"),
    ShadowRunning: (409, "shadow-running", "A shadow runs already"),
    NotShadowing: (404, "not-shadowing", "Not in shadow"),
}


def _problem(error: Exception) -> Problem:
    if isinstance(error, RulesetError):
        return Problem(
            422,
            "invalid-ruleset",
            "Invalid ruleset",
            f"{len(error.problems)} problem(s): " + "; ".join(error.problems),
            errors=[_item(p) for p in error.problems],
        )
    status, slug, title = _REFUSALS[type(error)]
    return Problem(status, slug, title, str(error))


def _item(problem: str) -> ProblemItem:
    """A ruleset problem (`where: field: problem`) as an item pointing into the ruleset."""
    where, _, rest = problem.partition(": ")
    kind, _, name = where.partition(" ")
    name = name.strip("'")
    pointer = "/"
    if kind in ("tier", "feature", "score") and name and not name.startswith("#"):
        pointer = f"/{kind}s/{name}"
    elif kind == "tier" and name.startswith("#") and name[1:].isdigit():
        pointer = f"/tiers/{int(name[1:]) - 1}"
    field = rest.partition(": ")[0] if rest.count(": ") else None
    return ProblemItem(pointer=pointer, detail=problem, field=field)
