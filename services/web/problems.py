"""Every error is an RFC 9457 problem document: what was wrong, and where."""

from collections.abc import Mapping, Sequence
from typing import Any, cast

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException

MEDIA_TYPE = "application/problem+json"
log = structlog.get_logger()
TYPE_BASE = "https://tierstream.dev/problems/"


class ProblemItem(BaseModel):
    """One thing wrong with the request: which event (`index`), which field, and why."""

    model_config = ConfigDict(frozen=True)

    pointer: str
    detail: str
    index: int | None = None
    field: str | None = None
    event_id: str | None = None


class ProblemDocument(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: str
    title: str
    status: int
    detail: str
    errors: list[ProblemItem] | None = None


class Problem(Exception):
    """Raised anywhere in a request; rendered by the handler installed by `install`."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        errors: Sequence[ProblemItem] = (),
        headers: Mapping[str, str] | None = None,
        count: int = 0,
    ) -> None:
        super().__init__(detail)
        self.count = count  # how many events it rejects, when the errors do not say
        self.document = ProblemDocument(
            type=TYPE_BASE + slug,
            title=title,
            status=status,
            detail=detail,
            errors=list(errors) or None,
        )
        self.headers = dict(headers or {})
        self.slug = slug


def problem_response(problem: Problem) -> JSONResponse:
    return JSONResponse(
        problem.document.model_dump(mode="json", exclude_none=True),
        status_code=problem.document.status,
        media_type=MEDIA_TYPE,
        headers=problem.headers,
    )


async def _on_problem(_: Request, error: Exception) -> JSONResponse:
    return problem_response(cast(Problem, error))


async def _on_http_error(_: Request, error: Exception) -> JSONResponse:
    error = cast(HTTPException, error)
    slug = {404: "not-found", 405: "method-not-allowed"}.get(error.status_code, "http-error")
    problem = Problem(
        error.status_code,
        slug,
        _reason(error.status_code),
        str(error.detail),
        headers=error.headers,
    )
    return problem_response(problem)


async def _on_validation_error(_: Request, error: Exception) -> JSONResponse:
    items = [
        ProblemItem(
            pointer="/" + "/".join(str(part) for part in item["loc"]),
            field=".".join(str(part) for part in item["loc"]),
            detail=item["msg"],
        )
        for item in cast(RequestValidationError, error).errors()
    ]
    return problem_response(
        Problem(422, "invalid-request", "Invalid request", "the request is invalid", errors=items)
    )


def _reason(status: int) -> str:
    from http import HTTPStatus  # noqa: PLC0415 - only on the error path

    return HTTPStatus(status).phrase


async def _on_unexpected(_: Request, error: Exception) -> JSONResponse:
    log.error("unexpected_error", exc_info=error)
    return problem_response(
        Problem(
            500,
            "internal-error",
            "Internal error",
            "an unexpected error occurred; it has been logged",
        )
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _on_unexpected)
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(HTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem responses an operation may give."""
    schema = ProblemDocument.model_json_schema()
    return {
        status: {"description": _reason(status), "content": {MEDIA_TYPE: {"schema": schema}}}
        for status in statuses
    }
