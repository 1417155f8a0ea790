"""`tierstream_http_responses_total{service, code}`: every response a service sends, by
status code (the ingest 5xx/503 alert reads it)."""

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _Counting:
    def __init__(self, app: ASGIApp, counter: Counter, service: str) -> None:
        self._app = app
        self._counter = counter
        self._service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._counter.labels(self._service, str(message["status"])).inc()
            await send(message)

        await self._app(scope, receive, counted)


def count_responses(app: FastAPI, registry: CollectorRegistry, service: str) -> None:
    counter = Counter(
        "tierstream_http_responses",
        "HTTP responses sent, by service and status code",
        ["service", "code"],
        registry=registry,
    )
    app.add_middleware(_Counting, counter=counter, service=service)
