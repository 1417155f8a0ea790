"""A local alert receiver for `make up`: the demo directory's webhook channels point here,
so alerts are really delivered (and the delivery panels move) without any outside service.
Every alert is appended to the state directory's logs/alerts.log as one JSON line."""

import sys
from pathlib import Path

import orjson
import uvicorn
from fastapi import FastAPI, Request, Response


def app(log: Path) -> FastAPI:
    sink = FastAPI(title="tierstream local alert sink")

    @sink.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @sink.post("/alerts/{person}")
    async def alert(person: str, request: Request) -> Response:
        body = orjson.loads(await request.body())
        line = {"to": person, "title": body.get("title"), "link": body.get("link")}
        with log.open("ab") as out:
            out.write(orjson.dumps(line) + b"\n")
        return Response(status_code=204)

    return sink


if __name__ == "__main__":
    uvicorn.run(
        app(Path(sys.argv[2])), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning"
    )
