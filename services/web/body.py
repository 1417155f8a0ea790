"""Request bodies are bounded before they are parsed, whether or not Content-Length is set."""

from fastapi import Request

from services.web.problems import Problem


def too_large(limit: int) -> Problem:
    return Problem(
        413,
        "body-too-large",
        "Body too large",
        f"the body is larger than the limit of {limit} bytes",
    )


async def read_bounded(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(limit)
    return bytes(body)


def media_type(request: Request) -> tuple[str, dict[str, str]]:
    """The media type of the body, lower-cased, with its parameters."""
    raw = request.headers.get("content-type", "")
    kind, _, rest = raw.partition(";")
    params = {}
    for part in rest.split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            params[name.lower()] = value.strip('"').lower()
    return kind.strip().lower(), params
