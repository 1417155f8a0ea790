"""Wiring of notifier. Until its issue lands it only says it is alive and not ready."""

import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.logs import configure_logging
from services.notifier.settings import NotifierSettings
from services.web import problems
from services.web.health import health_router


async def _not_built() -> str:
    return "the notifier is not built yet: it consumes nothing"


def build() -> FastAPI:
    app = FastAPI(title="tierstream notifier", version="0.0.0")
    problems.install(app)
    app.include_router(health_router(CollectorRegistry(), {"consumer": _not_built}))
    return app


def main() -> None:
    settings = NotifierSettings()
    configure_logging(settings.log_level, "notifier")
    uvicorn.run(build(), host=settings.host, port=settings.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
