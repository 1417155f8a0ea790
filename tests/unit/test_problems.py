"""Every error is an RFC 9457 document: expected ones with their status, unexpected ones as an
opaque 500 that leaks nothing."""

import httpx
import pytest
from fastapi import FastAPI

from services.web import problems
from services.web.problems import Problem, ProblemItem


def app() -> FastAPI:
    application = FastAPI()
    problems.install(application)

    @application.get("/expected")
    async def expected() -> None:
        raise Problem(
            409,
            "conflict",
            "Conflict",
            "it clashes",
            errors=[ProblemItem(pointer="/a", detail="here")],
            headers={"Retry-After": "3"},
        )

    @application.get("/unexpected")
    async def unexpected() -> None:
        raise RuntimeError("secret internals")

    return application


async def get(path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path)


@pytest.mark.asyncio
async def test_a_problem_keeps_its_status_headers_and_items() -> None:
    response = await get("/expected")
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "3"
    assert response.json() == {
        "type": "https://tierstream.dev/problems/conflict",
        "title": "Conflict",
        "status": 409,
        "detail": "it clashes",
        "errors": [{"pointer": "/a", "detail": "here"}],
    }


@pytest.mark.asyncio
async def test_an_unknown_route_is_a_404_problem() -> None:
    response = await get("/nowhere")
    assert response.status_code == 404
    assert response.json()["type"].endswith("not-found")


@pytest.mark.asyncio
async def test_an_unexpected_error_is_an_opaque_500_problem() -> None:
    response = await get("/unexpected")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("internal-error")
    assert "secret" not in response.text
