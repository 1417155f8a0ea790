"""Wiring of scorer. Until its issue lands it only says it is alive and not ready."""

import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.logs import configure_logging
from services.scorer.settings import ScorerSettings
from services.web import problems
from services.web.health import health_router


async def _not_built() -> str:
    return "the scorer is not built yet: it consumes nothing"


def build() -> FastAPI:
    app = FastAPI(title="tierstream scorer", version="0.0.0")
    problems.install(app)
    app.include_router(health_router(CollectorRegistry(), {"consumer": _not_built}))
    return app


def main() -> None:
    settings = ScorerSettings()
    configure_logging(settings.log_level, "scorer")
    uvicorn.run(build(), host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
