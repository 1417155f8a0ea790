"""HTTP entry point of ingest (SPEC §3): decode, validate, authorize, publish, answer."""

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict

from schemas.v1.events import event_adapter
from services.effectively_once.producer import BrokerUnavailable
from services.ingest.auth import ApiKey, authenticate
from services.ingest.metrics import IngestMetrics
from services.ingest.publisher import EventPublisher
from services.ingest.settings import IngestSettings
from services.ingest.validation import (
    EventError,
    MalformedBody,
    Rules,
    TooManyEvents,
    Verdict,
    forbidden_sources,
    validate_batch,
    validate_single,
)
from services.web import problems
from services.web.body import media_type, read_bounded
from services.web.health import health_router
from services.web.problems import Problem, ProblemItem
from services.web.responses import count_responses

SINGLE = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
log = structlog.get_logger()


class Accepted(BaseModel):
    model_config = ConfigDict(frozen=True)
    accepted: int


class Ingest:
    """The request pipeline, with every collaborator passed in."""

    def __init__(
        self,
        settings: IngestSettings,
        publisher: EventPublisher,
        metrics: IngestMetrics,
        now: Callable[[], datetime],
    ) -> None:
        self._settings = settings
        self._keys: Sequence[ApiKey] = settings.api_keys
        self._publisher = publisher
        self._metrics = metrics
        self._now = now
        self._rules = Rules(
            base_currency=settings.base_currency,
            rated_currencies=frozenset(settings.exchange_rates),
            max_future_skew=timedelta(seconds=settings.max_future_skew_seconds),
            max_batch_events=settings.max_batch_events,
        )

    async def accept(self, request: Request, batch: bool) -> JSONResponse:
        try:
            key = self._authenticate(request)
            self._check_media_type(request, BATCH if batch else SINGLE)
            body = await read_bounded(request, self._settings.max_body_bytes)
            verdict = self._validate(body, batch)
            self._authorize(key, verdict, batch)
            await self._publish(verdict)
        except Problem as problem:
            self._metrics.rejected.labels(problem.slug).inc(_count(problem))
            log.info(
                "events_rejected",
                reason=problem.slug,
                status=problem.document.status,
                detail=problem.document.detail,
            )
            raise
        self._metrics.accepted.labels(key.name).inc(len(verdict.events))
        self._metrics.batch_events.observe(len(verdict.events))
        return JSONResponse(Accepted(accepted=len(verdict.events)).model_dump(), status_code=202)

    def _authenticate(self, request: Request) -> ApiKey:
        key = authenticate(self._keys, request.headers.get("authorization"))
        if key is None:
            raise Problem(
                401,
                "unauthenticated",
                "Unauthenticated",
                "a valid API key is required: Authorization: Bearer <key>",
                headers={"WWW-Authenticate": 'Bearer realm="tierstream-ingest"'},
            )
        return key

    def _check_media_type(self, request: Request, expected: str) -> None:
        kind, params = media_type(request)
        if kind != expected or params.get("charset", "utf-8") != "utf-8":
            raise Problem(
                415,
                "unsupported-media-type",
                "Unsupported media type",
                f"this endpoint takes {expected} (UTF-8), not {kind or 'no content type'}",
            )

    def _validate(self, body: bytes, batch: bool) -> Verdict:
        try:
            validate = validate_batch if batch else validate_single
            verdict = validate(body, self._rules, self._now())
        except MalformedBody as error:
            raise Problem(400, "malformed-json", "Malformed JSON", str(error)) from error
        except TooManyEvents as error:
            raise Problem(413, "too-many-events", "Too many events", str(error)) from error
        if verdict.errors:
            bad = len({error.index for error in verdict.errors})
            raise Problem(
                422,
                "invalid-events",
                "Invalid events",
                f"{bad} event(s) are invalid; nothing was published",
                errors=[_item(error) for error in verdict.errors],
            )
        return verdict

    def _authorize(self, key: ApiKey, verdict: Verdict, batch: bool) -> None:
        errors = forbidden_sources(verdict.events, key.may_write, batch)
        if errors:
            raise Problem(
                403,
                "forbidden-source",
                "Forbidden source",
                f"API key {key.name!r} may not write {len(errors)} of these events; "
                "nothing was published",
                errors=[_item(error) for error in errors],
            )

    async def _publish(self, verdict: Verdict) -> None:
        started = time.perf_counter()
        try:
            await self._publisher.publish([event.record for event in verdict.events])
        except BrokerUnavailable as error:
            log.warning("publish_refused", events=len(verdict.events), error=str(error))
            raise Problem(
                503,
                "kafka-unavailable",
                "Kafka unavailable",
                f"{error}; the events are not accepted, retry later",
                headers={"Retry-After": str(self._settings.retry_after_seconds)},
                count=len(verdict.events),
            ) from error
        self._metrics.publish_seconds.observe(time.perf_counter() - started)


def _count(problem: Problem) -> int:
    return problem.count or len({item.index for item in problem.document.errors or ()}) or 1


def _item(error: EventError) -> ProblemItem:
    path = [str(error.index)] if error.index is not None else []
    path += error.field.split(".") if error.field else []
    return ProblemItem(
        pointer="/" + "/".join(path),
        detail=error.message,
        index=error.index,
        field=error.field or None,
        event_id=error.event_id,
    )


def create_app(
    settings: IngestSettings,
    publisher: EventPublisher,
    *,
    registry: CollectorRegistry,
    now: Callable[[], datetime],
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    metrics_dir: str | None = None,
) -> FastAPI:
    app = FastAPI(
        title="tierstream ingest",
        version="1.0.0",
        lifespan=lifespan,
        description="Accepts CloudEvents from upstream systems (SPEC §2, §3).",
    )
    problems.install(app)
    count_responses(app, registry, "ingest")
    ingest = Ingest(settings, publisher, IngestMetrics(registry), now)
    errors = problems.responses(400, 401, 403, 413, 415, 422, 503)

    @app.post(
        "/v1/events",
        status_code=202,
        response_model=Accepted,
        responses=errors,
        summary="Post one event",
        openapi_extra=_body(SINGLE, batch=False),
        tags=["events"],
    )
    async def post_event(request: Request) -> JSONResponse:
        return await ingest.accept(request, batch=False)

    @app.post(
        "/v1/events:batch",
        status_code=202,
        response_model=Accepted,
        responses=errors,
        summary="Post a batch of events, accepted or rejected whole",
        openapi_extra=_body(BATCH, batch=True, limit=settings.max_batch_events),
        tags=["events"],
    )
    async def post_batch(request: Request) -> JSONResponse:
        return await ingest.accept(request, batch=True)

    app.include_router(health_router(registry, {"kafka": publisher.problem}, metrics_dir))
    currencies = [settings.base_currency, *sorted(settings.exchange_rates)]
    app.openapi = lambda: _openapi(app, currencies)  # type: ignore[method-assign]
    return app


def _body(content_type: str, batch: bool, limit: int = 1) -> dict[str, Any]:
    schema: dict[str, Any] = {"$ref": "#/components/schemas/CustomerEventV1"}
    if batch:
        schema = {"type": "array", "items": schema, "maxItems": limit}
    return {
        "requestBody": {"required": True, "content": {content_type: {"schema": schema}}},
        "security": [{"bearer": []}],
    }


def _openapi(app: FastAPI, currencies: list[str]) -> dict[str, Any]:
    if app.openapi_schema is None:
        spec = get_openapi(
            title=app.title, version=app.version, routes=app.routes, description=app.description
        )
        event_schema = event_adapter().json_schema(ref_template="#/components/schemas/{model}")
        components = spec.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas.update(event_schema.pop("$defs", {}))
        schemas["CustomerEventV1"] = event_schema
        currency = schemas["TransactionData"]["properties"]["currency"]
        currency["enum"] = currencies  # what this instance is configured to accept
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        app.openapi_schema = spec
    return app.openapi_schema
