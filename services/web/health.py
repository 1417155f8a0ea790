"""`/healthz` (alive), `/readyz` (dependencies reachable) and `/metrics` (Prometheus)."""

from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

Check = Callable[[], Awaitable[str | None]]
"""Returns None when the dependency is fine, otherwise what is wrong with it."""


def health_router(
    registry: CollectorRegistry, checks: Mapping[str, Check], metrics_dir: str | None = None
) -> APIRouter:
    """`metrics_dir`: the prometheus_client multiprocess directory, when several processes
    serve one port; /metrics then sums them all."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Dependencies are reachable",
        responses={503: {"description": "A dependency is not reachable"}},
    )
    async def readyz(response: Response) -> dict[str, object]:
        failures = {
            name: problem
            for name, check in checks.items()
            if (problem := await check()) is not None
        }
        if failures:
            response.status_code = 503
            return {"status": "unavailable", "failures": failures}
        return {"status": "ready", "checks": sorted(checks)}

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        if metrics_dir is None:
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined, path=metrics_dir)  # type: ignore[no-untyped-call]
        return Response(generate_latest(combined), media_type=CONTENT_TYPE_LATEST)

    return router
