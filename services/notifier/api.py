"""HTTP entry point of the notifier (SPEC §3): tasks and alerts, per person.

Every request carries a person's bearer token (directory, stored hashed). A person sees
their own tasks and their reports' (and their teams' queues); anyone else's task is 404, as
if it did not exist. Acknowledge and complete accept only a note: nothing else about a task
can be set through the API (unknown fields are a 422).
"""

import base64
import binascii
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import FastAPI, Header, Query, Request
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.db.unit_of_work import unit_of_work
from services.notifier.core.directory import Directory, Person
from services.notifier.store.tasks import Page, TaskRepository, ping
from services.web import problems
from services.web.health import Check, health_router
from services.web.problems import Problem
from services.web.responses import count_responses

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
TaskStatus = Literal["open", "acknowledged", "completed", "cancelled"]
AlertStatus = Literal["pending", "delivered", "failed"]


@dataclass(frozen=True)
class Backend:
    """What the handlers use; put on `app.state.backend` by main's lifespan."""

    sessions: async_sessionmaker[AsyncSession]
    directory: Directory
    now: Callable[[], datetime]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Escalation(_Out):
    level: int
    to: str
    at: datetime


class TaskOut(_Out):
    id: UUID
    customer_id: str
    customer_name: str | None
    rule: str
    title: dict[str, str]
    priority: str
    status: TaskStatus
    assignee: str
    due_at: datetime | None
    ack_sla_seconds: int | None
    escalation_level: int
    next_escalation_at: datetime | None
    escalations: list[Escalation]
    change: dict[str, Any] = Field(description="The tier change, with its why")
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    completed_at: datetime | None
    completed_by: str | None
    note: str | None
    cancelled_at: datetime | None
    cancel_reason: str | None


class TaskPage(_Out):
    tasks: list[TaskOut]
    next_cursor: str | None


class AlertOut(_Out):
    id: UUID
    task_id: UUID | None
    purpose: str
    recipient: str
    channel: str
    target: str = Field(description="The channel's key (never its URL)")
    language: str
    title: str | None
    status: AlertStatus
    attempts: int
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class AlertPage(_Out):
    alerts: list[AlertOut]
    next_cursor: str | None


class Action(BaseModel):
    """The only thing a person sets when acknowledging or completing a task."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    note: str | None = Field(None, max_length=2000)


def create_app(
    *, registry: CollectorRegistry, checks: dict[str, Check], lifespan: Lifespan | None = None
) -> FastAPI:
    app = FastAPI(title="tierstream notifier", version="1.0.0", lifespan=lifespan)
    problems.install(app)
    count_responses(app, registry, "notifier")
    app.include_router(health_router(registry, {"database": _database(app), **checks}))
    Auth = Annotated[str | None, Header(alias="Authorization", include_in_schema=False)]

    @app.get("/v1/tasks", summary="Tasks you may see, newest first")
    async def tasks(  # noqa: PLR0917 - FastAPI binds query parameters by name
        request: Request,
        authorization: Auth = None,
        assignee: str | None = None,
        status: TaskStatus | None = None,
        customer_id: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        cursor: str | None = None,
    ) -> TaskPage:
        backend, viewer = _caller(request, authorization)
        page = _page(cursor, limit + 1)
        async with unit_of_work(backend.sessions) as session:
            repo = TaskRepository(session, backend.directory.visible(viewer))
            rows = await repo.tasks(
                assignee=assignee, status=status, customer=customer_id, page=page
            )
        return TaskPage(
            tasks=[_task(r) for r in rows[:limit]],
            next_cursor=_cursor(rows[limit - 1]) if len(rows) > limit else None,
        )

    @app.get("/v1/tasks/{task_id}", summary="One task", responses=problems.responses(401, 404))
    async def task(request: Request, task_id: UUID, authorization: Auth = None) -> TaskOut:
        backend, viewer = _caller(request, authorization)
        async with unit_of_work(backend.sessions) as session:
            found = await TaskRepository(session, backend.directory.visible(viewer)).task(
                str(task_id)
            )
        if found is None:
            raise _not_found(task_id)
        return _task(found)

    @app.post(
        "/v1/tasks/{task_id}/ack",
        summary="Acknowledge a task (stops its escalation)",
        responses=problems.responses(401, 404, 409, 422),
    )
    async def ack(
        request: Request, task_id: UUID, body: Action | None = None, authorization: Auth = None
    ) -> TaskOut:
        return await _act(request, authorization, task_id, body, "acknowledge")

    @app.post(
        "/v1/tasks/{task_id}/complete",
        summary="Complete a task",
        responses=problems.responses(401, 404, 409, 422),
    )
    async def complete(
        request: Request, task_id: UUID, body: Action | None = None, authorization: Auth = None
    ) -> TaskOut:
        return await _act(request, authorization, task_id, body, "complete")

    @app.get("/v1/alerts", summary="Alert deliveries and their outcome")
    async def alerts(
        request: Request,
        authorization: Auth = None,
        status: AlertStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        cursor: str | None = None,
    ) -> AlertPage:
        backend, viewer = _caller(request, authorization)
        async with unit_of_work(backend.sessions) as session:
            repo = TaskRepository(session, backend.directory.visible(viewer))
            rows = await repo.alerts(viewer.id, status, _page(cursor, limit + 1))
        return AlertPage(
            alerts=[AlertOut.model_validate(r) for r in rows[:limit]],
            next_cursor=_cursor(rows[limit - 1]) if len(rows) > limit else None,
        )

    return app


async def _act(
    request: Request, authorization: str | None, task_id: UUID, body: Action | None, verb: str
) -> TaskOut:
    """Acknowledging an acknowledged task, or completing a completed one, is a harmless
    repeat (200); anything else from a closed state is a 409 naming the state."""
    backend, viewer = _caller(request, authorization)
    note = None if body is None else body.note
    async with unit_of_work(backend.sessions) as session:
        repo = TaskRepository(session, backend.directory.visible(viewer))
        act = repo.acknowledge if verb == "acknowledge" else repo.complete
        changed = await act(str(task_id), viewer.id, note, backend.now())
        found = await repo.task(str(task_id))
    if found is None:
        raise _not_found(task_id)
    repeat = (verb, found["status"]) in (("acknowledge", "acknowledged"), ("complete", "completed"))
    if not changed and not repeat:
        raise Problem(
            409,
            "task-closed",
            "The task cannot be changed",
            f"task {task_id} is {found['status']}; it cannot be {verb}d",
        )
    return _task(found)


def _caller(request: Request, authorization: str | None) -> tuple[Backend, Person]:
    backend: Backend = request.app.state.backend
    scheme, _, token = (authorization or "").partition(" ")
    person = backend.directory.authenticate(token.strip()) if scheme.lower() == "bearer" else None
    if person is None:
        raise Problem(
            401,
            "unauthenticated",
            "A valid bearer token is required",
            "send Authorization: Bearer <your token from the directory>",
            headers={"WWW-Authenticate": 'Bearer realm="tierstream-notifier"'},
        )
    return backend, person


def _task(row: dict[str, Any]) -> TaskOut:
    return TaskOut.model_validate(row | {"title": {"zh": row["title_zh"], "en": row["title_en"]}})


def _not_found(task_id: UUID) -> Problem:
    return Problem(404, "unknown-task", "No such task", f"no task {task_id} that you may see")


def _cursor(row: dict[str, Any]) -> str:
    raw = f"{row['created_at'].isoformat()}|{row['id']}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _page(cursor: str | None, limit: int) -> Page:
    if cursor is None:
        return Page(limit=limit)
    try:
        at, _, task_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return Page(datetime.fromisoformat(at), str(UUID(task_id)), limit)
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise Problem(400, "bad-cursor", "Bad cursor", "cursor is not one this API gave") from error


def _database(app: FastAPI) -> Check:
    async def check() -> str | None:
        backend: Backend | None = getattr(app.state, "backend", None)
        if backend is None:
            return "not started"
        try:
            async with unit_of_work(backend.sessions) as session:
                await ping(session)
        except (OSError, SQLAlchemyError) as error:
            return f"database not reachable: {type(error).__name__}"
        return None

    return check
