"""Real local receivers for the notifier's tests, on 127.0.0.1 in the test's own process.

`HttpReceiver`: a small HTTP/1.1 server (one request per connection, `Connection: close`,
Content-Length bodies) that records every request and answers as programmed per path.
`SmtpReceiver`: an aiosmtpd server (its own thread) that records every message it accepts.
Both are async context managers and close everything they opened.
"""

import asyncio
import email
import email.policy
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from email.message import EmailMessage
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

import orjson
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from harness.stack import free_port

HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str  # path and query, exactly as sent
    headers: Mapping[str, str]  # names lower-cased
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        """The query parameters, percent-decoded."""
        return dict(parse_qsl(urlsplit(self.target).query, keep_blank_values=True))

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # wait this long before answering (a slow receiver)

    @classmethod
    def json(cls, value: Any, status: int = 200) -> "Reply":
        return cls(status, orjson.dumps(value), {"Content-Type": "application/json"})


class HttpReceiver:
    """Answers each path with its programmed replies in turn (the last one repeats), any
    other path with `default` (200, empty body)."""

    def __init__(self, default: Reply | None = None) -> None:
        self.port = free_port()
        self.requests: list[Request] = []
        self._default = default or Reply()
        self._replies: dict[str, list[Reply]] = {}
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    def url(self, path: str = "/") -> str:
        return f"http://{HOST}:{self.port}{path}"

    def program(self, path: str, *replies: Reply) -> None:
        self._replies[path] = list(replies)

    def to(self, path: str) -> list[Request]:
        return [request for request in self.requests if request.path == path]

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, HOST, self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
        for handler in self._handlers:
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _reply_for(self, path: str) -> Reply:
        replies = self._replies.get(path)
        if not replies:
            return self._default
        return replies.pop(0) if len(replies) > 1 else replies[0]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            request = await _read_request(reader)
            if request is not None:
                self.requests.append(request)
                reply = self._reply_for(request.path)
                await asyncio.sleep(reply.delay_s)
                writer.write(_encode(reply))
                await writer.drain()
        except (ConnectionError, ValueError, asyncio.LimitOverrunError):
            pass  # the client went away, or sent what this small server does not parse
        finally:
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()
            if task is not None:
                self._handlers.discard(task)


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None  # closed before a whole request
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, target, _version = request_line.split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(method, target, headers, body)


def _encode(reply: Reply) -> bytes:
    try:
        reason = HTTPStatus(reply.status).phrase
    except ValueError:
        reason = "Unknown"
    headers = {**reply.headers, "Content-Length": str(len(reply.body)), "Connection": "close"}
    head = [f"HTTP/1.1 {reply.status} {reason}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + reply.body


@dataclass(frozen=True, slots=True)
class Mail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    raw: bytes


class SmtpReceiver:
    """Accepts every message with `reply` (set it to "550 5.1.1 no such user" to refuse)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[Mail] = []
        self.reply = "250 OK"
        self._controller: Controller | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, _class=EmailMessage, policy=email.policy.default)
        if self.reply.startswith("250"):
            mail = Mail(envelope.mail_from or "", tuple(envelope.rcpt_tos), message, raw)
            self.messages.append(mail)
        return self.reply

    async def __aenter__(self) -> Self:
        self._controller = Controller(
            self, hostname=HOST, port=self.port, server_hostname="receiver.test"
        )
        await asyncio.to_thread(self._controller.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._controller is not None:
            await asyncio.to_thread(self._controller.stop)
