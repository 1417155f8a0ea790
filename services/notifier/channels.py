"""Alert delivery channels (SPEC §6): generic webhook, Slack, DingTalk, WeCom and email.

One attempt per `Sender.send` (the caller retries, backs off and rate-limits); every failure is
an `Outcome`, whose error never holds the target URL (it carries the token) or a secret.
"""

import asyncio
import base64
import hashlib
import hmac
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlsplit

import aiosmtplib
import httpx
import orjson

from services.notifier.core.contacts import Channel, Kind

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WECOM_MARKDOWN_MAX_BYTES = 4096
# The in-band errcodes understood: (kind, errcode) -> (permanent, retry_after in seconds).
ERRCODES: Mapping[tuple[str, int], tuple[bool, float | None]] = {
    ("dingtalk", 310000): (True, None),  # keyword or sign mismatch
    ("dingtalk", 300001): (True, None),  # "token is not exist"
    ("dingtalk", 300005): (True, None),  # "token is not exist"
    ("dingtalk", 130101): (False, 600.0),  # over 20 a minute: muted for 10 minutes
    ("wecom", 93000): (True, None),  # invalid webhook key
    ("wecom", 45009): (False, 60.0),  # over 20 a minute: wait at least 60 s
}
_SLACK_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_MSG_ID_UNSAFE = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]")


@dataclass(frozen=True, slots=True)
class Message:
    delivery_id: str  # stable id of this delivery: the receivers' idempotency key
    title: str
    text: str  # markdown-ish plain text, already in the recipient's language
    link: str | None
    data: Mapping[str, Any]  # JSON-able structured payload (generic webhook only)


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    error: str | None = None  # short; never the target URL, a token or a secret
    retry_after: float | None = None  # seconds, when the receiver asked for it
    permanent: bool = False  # retrying cannot help


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    starttls: bool = False


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk robot signing: base64(HmacSHA256(secret, "{ts}\\n{secret}")), URL-encoded."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256)
    return quote_plus(base64.b64encode(digest.digest()).decode())


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """`X-Tierstream-Signature`: "v1=" + hex HMAC-SHA256 over "{timestamp}." + raw body."""
    signed = f"{timestamp}.".encode() + body
    return "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def request_for(
    channel: Channel, message: Message, now: datetime
) -> tuple[str, dict[str, str], bytes]:
    """The (url, headers, body) of one attempt on an HTTP channel."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    headers = {"Content-Type": "application/json"}
    match channel.kind:
        case "webhook":
            return _webhook_request(channel, message, now)
        case "slack":
            return channel.target, headers, orjson.dumps({"text": _slack_text(message)})
        case "dingtalk":
            text = _markdown(message, f"### {message.title}")
            markdown = {"title": message.title, "text": text}
            body = orjson.dumps({"msgtype": "markdown", "markdown": markdown})
            return _dingtalk_url(channel, now), headers, body
        case "wecom":
            content = _markdown(message, f"**{message.title}**")
            content = content.encode()[:WECOM_MARKDOWN_MAX_BYTES].decode(errors="ignore")
            body = orjson.dumps({"msgtype": "markdown", "markdown": {"content": content}})
            return channel.target, headers, body
        case "email":
            raise ValueError("email is not an HTTP channel")


def _webhook_request(
    channel: Channel, message: Message, now: datetime
) -> tuple[str, dict[str, str], bytes]:
    payload: dict[str, Any] = {"id": message.delivery_id, "type": "tierstream.alert"}
    payload |= {"title": message.title, "text": message.text, "link": message.link}
    payload["data"] = dict(message.data)
    body = orjson.dumps(payload, option=orjson.OPT_UTC_Z)
    timestamp = (now - EPOCH) // timedelta(seconds=1)
    headers = {
        "Content-Type": "application/json",
        "X-Tierstream-Delivery": message.delivery_id,
        "X-Tierstream-Timestamp": str(timestamp),
    }
    if channel.secret:
        headers["X-Tierstream-Signature"] = webhook_signature(channel.secret, timestamp, body)
    return channel.target, headers, body


def _slack_text(message: Message) -> str:
    lines = [f"*{message.title.translate(_SLACK_ESCAPES)}*", message.text.translate(_SLACK_ESCAPES)]
    return "\n".join([*lines, message.link] if message.link else lines)


def _markdown(message: Message, title: str) -> str:
    parts = [title, message.text]
    if message.link:
        parts.append(f"[{message.link}]({message.link})")
    return "\n\n".join(parts)


def _dingtalk_url(channel: Channel, now: datetime) -> str:
    if not channel.secret:
        return channel.target
    timestamp_ms = (now - EPOCH) // timedelta(milliseconds=1)
    separator = "&" if "?" in channel.target else "?"
    sign = dingtalk_sign(channel.secret, timestamp_ms)
    return f"{channel.target}{separator}timestamp={timestamp_ms}&sign={sign}"


def classify(kind: Kind, status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
    """What one HTTP answer means; DingTalk and WeCom also report failures inside a 200."""
    if 200 <= status < 300:
        if kind in {"dingtalk", "wecom"}:
            return _in_band(kind, status, body)
        return Outcome(delivered=True)
    error = f"HTTP {status}{_snippet(body)}"
    if 300 <= status < 400:
        return Outcome(False, f"redirect not followed (HTTP {status})")
    retry_after = _retry_after(headers) if status in {429, 503} else None
    if status >= 500 or status in {408, 429}:
        return Outcome(False, error, retry_after=retry_after)
    return Outcome(False, error, permanent=400 <= status < 500)


def _in_band(kind: str, status: int, body: bytes) -> Outcome:
    if status != 200:
        return Outcome(False, f"unexpected HTTP {status}")
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        answer = None
    errcode = answer.get("errcode") if isinstance(answer, dict) else None
    if not isinstance(errcode, int) or isinstance(errcode, bool):
        return Outcome(False, f"unparsable response{_snippet(body)}")
    if errcode == 0:
        return Outcome(delivered=True)
    permanent, retry_after = ERRCODES.get((kind, errcode), (False, None))
    error = f"errcode {errcode}: {str(answer.get('errmsg', ''))[:120]}"
    return Outcome(False, error, retry_after=retry_after, permanent=permanent)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        seconds = float(value or "")
    except ValueError:
        return None  # absent, or an HTTP-date: the caller's own backoff applies
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def _snippet(body: bytes) -> str:
    """A receiver's short one-line answer (Slack's "invalid_payload", say), else nothing."""
    text = body.decode(errors="replace").strip()
    return f": {text}" if text and len(text) <= 100 and text.isprintable() else ""


class Sender:
    """Delivers one message over one channel, once; the caller owns retries and pacing."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        smtp: SmtpSettings | None,
        *,
        timeout_s: float,
        now: Callable[[], datetime],
    ) -> None:
        self._http = http
        self._smtp = smtp
        self._timeout_s = timeout_s
        self._now = now

    async def send(self, channel: Channel, message: Message) -> Outcome:
        if channel.kind == "email":
            outcome = await self._mail(channel.target, message)
        else:
            outcome = await self._post(channel, message)
        if outcome.error is None:
            return outcome
        hidden = [channel.target, channel.secret, self._smtp.password if self._smtp else None]
        return _redacted(outcome, hidden)

    async def _post(self, channel: Channel, message: Message) -> Outcome:
        url, headers, body = request_for(channel, message, self._now())
        try:
            async with asyncio.timeout(self._timeout_s):
                response = await self._http.post(
                    url,
                    content=body,
                    headers=headers,
                    timeout=self._timeout_s,
                    follow_redirects=False,
                )
        except (TimeoutError, httpx.TimeoutException):
            return Outcome(False, f"timeout after {self._timeout_s}s")
        except httpx.UnsupportedProtocol:
            return Outcome(False, "unsupported URL scheme", permanent=True)
        except httpx.InvalidURL:
            return Outcome(False, "invalid URL", permanent=True)
        except httpx.TransportError as error:
            return Outcome(False, _transport_error(error))
        return classify(channel.kind, response.status_code, response.headers, response.content)

    async def _mail(self, to: str, message: Message) -> Outcome:
        smtp = self._smtp
        if smtp is None:
            return Outcome(False, "no SMTP server configured", permanent=True)
        try:
            await aiosmtplib.send(
                _email(smtp.sender, to, message, self._now()),
                sender=smtp.sender,
                recipients=[to],
                hostname=smtp.host,
                port=smtp.port,
                username=smtp.username,
                password=smtp.password,
                start_tls=smtp.starttls,
                timeout=self._timeout_s,
            )
        except ValueError:  # a line break in the address, say: no server will take it
            return Outcome(False, "invalid email address or header", permanent=True)
        except (aiosmtplib.SMTPException, OSError) as error:
            return _smtp_failure(error, self._timeout_s)
        return Outcome(delivered=True)


def _email(sender: str, to: str, message: Message, now: datetime) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = " ".join(message.title.split())
    mail["From"] = sender
    mail["To"] = to
    mail["Date"] = format_datetime(now)
    mail["Message-ID"] = f"<{_MSG_ID_UNSAFE.sub('-', message.delivery_id)}@tierstream>"
    mail.set_content(f"{message.text}\n\n{message.link}\n" if message.link else message.text)
    return mail


def _smtp_failure(error: Exception, timeout_s: float) -> Outcome:
    """5xx replies are permanent; timeouts, 4xx and lost connections may pass next time."""
    if isinstance(error, aiosmtplib.SMTPTimeoutError):
        return Outcome(False, f"SMTP timeout after {timeout_s}s")
    if isinstance(error, aiosmtplib.SMTPResponseException):
        text = f"SMTP {error.code}: {error.message}"
        return Outcome(False, text, permanent=500 <= error.code < 600)
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        codes = [refused.code for refused in error.recipients]
        text = f"SMTP recipients refused ({', '.join(map(str, codes))})"
        return Outcome(False, text, permanent=all(500 <= code < 600 for code in codes))
    return Outcome(False, f"SMTP error: {type(error).__name__}: {error}")


def _transport_error(error: httpx.TransportError) -> str:
    label = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", type(error).__name__).lower()  # connect error
    return f"{label}: {error}" if str(error) else label


def _redacted(outcome: Outcome, hidden: list[str | None]) -> Outcome:
    """The error without the target, its query values and long path parts, or any secret."""
    target, *others = hidden
    words = [word for word in others if word]
    if target:
        parts = urlsplit(target)
        words += [target, *(value for _, value in parse_qsl(parts.query))]
        words += [part for part in parts.path.split("/") if len(part) >= 8]
    error = outcome.error or ""
    for word in sorted(set(words), key=len, reverse=True):
        if len(word) >= 4:
            error = error.replace(word, "[redacted]")
    return Outcome(False, error[:200], outcome.retry_after, outcome.permanent)
