"""Runs a service's app under uvicorn until SIGTERM, or until one of its background tasks
fails: then the process exits non-zero, to be restarted (its work is committed or not at
all)."""

import sys
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

Build = Callable[[Callable[[], None]], FastAPI]
"""Builds the app inside the serving event loop, given what to call when a task fails."""


def serve(build: Build, *, host: str, port: int, name: str) -> None:
    server: uvicorn.Server | None = None
    failures: list[str] = []

    def on_failure() -> None:
        failures.append(f"a {name} task failed")
        if server is not None:
            server.should_exit = True

    config = uvicorn.Config(
        lambda: build(on_failure),
        factory=True,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    server.run()
    if failures or not server.started:
        sys.exit(1)
