"""The alert channels against real local receivers: an HTTP server on 127.0.0.1 and aiosmtpd."""

import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import quote_plus

import httpx
import pytest
import pytest_asyncio

from services.notifier.channels import (
    Message,
    Outcome,
    Sender,
    SmtpSettings,
    dingtalk_sign,
)
from services.notifier.core.contacts import Channel
from tests.receivers import HttpReceiver, Reply, SmtpReceiver

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
HMAC_KEY = "whsec_integration"
DING_KEY = "SEC0123456789abcdef"
ROBOT_KEY = "robot-token-0123456789"
MESSAGE = Message(
    delivery_id="dlv-7f3a",
    title="C-10023 dropped out of Gold",
    text="Retention call within 2 h.",
    link="https://tierstream.example/tasks/7",
    data={"customer": "C-10023", "task": 7},
)


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[HttpReceiver]:
    async with HttpReceiver() as server:
        yield server


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


def sender(
    http: httpx.AsyncClient, smtp: SmtpSettings | None = None, timeout_s: float = 5.0
) -> Sender:
    return Sender(http, smtp, timeout_s=timeout_s, now=lambda: NOW)


async def test_webhook_is_delivered_signed(receiver: HttpReceiver, http: httpx.AsyncClient) -> None:
    channel = Channel("webhook", receiver.url("/hook"), HMAC_KEY)
    outcome = await sender(http).send(channel, MESSAGE)
    assert outcome.delivered, outcome
    [request] = receiver.to("/hook")
    timestamp = request.headers["x-tierstream-timestamp"]
    assert timestamp == str(int(NOW.timestamp()))
    signed = timestamp.encode() + b"." + request.body
    expected = hmac.new(HMAC_KEY.encode(), signed, hashlib.sha256).hexdigest()
    assert request.headers["x-tierstream-signature"] == f"v1={expected}"
    assert request.headers["x-tierstream-delivery"] == MESSAGE.delivery_id
    assert request.headers["content-type"] == "application/json"
    assert request.method == "POST"
    assert request.json()["data"] == {"customer": "C-10023", "task": 7}


async def test_webhook_answering_500_is_retryable(
    receiver: HttpReceiver, http: httpx.AsyncClient
) -> None:
    receiver.program("/hook", Reply(500, b"boom"))
    outcome = await sender(http).send(Channel("webhook", receiver.url("/hook")), MESSAGE)
    assert not outcome.delivered
    assert not outcome.permanent
    assert outcome.error == "HTTP 500: boom"


async def test_redirect_is_not_followed(receiver: HttpReceiver, http: httpx.AsyncClient) -> None:
    receiver.program("/hook", Reply(302, headers={"Location": receiver.url("/elsewhere")}))
    outcome = await sender(http).send(Channel("webhook", receiver.url("/hook")), MESSAGE)
    assert not outcome.delivered
    assert outcome.error == "redirect not followed (HTTP 302)"
    assert receiver.to("/elsewhere") == []
    assert len(receiver.requests) == 1


async def test_dingtalk_error_inside_200_is_not_delivered(
    receiver: HttpReceiver, http: httpx.AsyncClient
) -> None:
    receiver.program("/robot/send", Reply.json({"errcode": 310000, "errmsg": "sign not match"}))
    channel = Channel("dingtalk", receiver.url(f"/robot/send?access_token={ROBOT_KEY}"), DING_KEY)
    outcome = await sender(http).send(channel, MESSAGE)
    assert not outcome.delivered
    assert outcome.permanent
    assert outcome.error == "errcode 310000: sign not match"


async def test_dingtalk_errcode_0_is_delivered_with_a_valid_sign(
    receiver: HttpReceiver, http: httpx.AsyncClient
) -> None:
    receiver.program("/robot/send", Reply.json({"errcode": 0, "errmsg": "ok"}))
    channel = Channel("dingtalk", receiver.url(f"/robot/send?access_token={ROBOT_KEY}"), DING_KEY)
    outcome = await sender(http).send(channel, MESSAGE)
    assert outcome.delivered, outcome
    [request] = receiver.to("/robot/send")
    query = request.query
    assert query["access_token"] == ROBOT_KEY
    timestamp_ms = int(query["timestamp"])
    assert timestamp_ms == int(NOW.timestamp() * 1000)
    assert quote_plus(query["sign"]) == dingtalk_sign(DING_KEY, timestamp_ms)
    assert request.json()["msgtype"] == "markdown"


async def test_wecom_error_never_shows_the_key(
    receiver: HttpReceiver, http: httpx.AsyncClient
) -> None:
    answer = {"errcode": 93000, "errmsg": f"invalid webhook url, key: {ROBOT_KEY}"}
    receiver.program("/cgi-bin/webhook/send", Reply.json(answer))
    channel = Channel("wecom", receiver.url(f"/cgi-bin/webhook/send?key={ROBOT_KEY}"))
    outcome = await sender(http).send(channel, MESSAGE)
    assert not outcome.delivered
    assert outcome.permanent
    assert outcome.error == "errcode 93000: invalid webhook url, key: [redacted]"


async def test_slow_receiver_times_out(receiver: HttpReceiver, http: httpx.AsyncClient) -> None:
    receiver.program("/slow", Reply(200, delay_s=3.0))
    outcome = await sender(http, timeout_s=0.3).send(
        Channel("slack", receiver.url("/slow")), MESSAGE
    )
    assert not outcome.delivered
    assert not outcome.permanent
    assert outcome.error == "timeout after 0.3s"


async def test_refused_connection_is_retryable_and_hides_the_url(http: httpx.AsyncClient) -> None:
    closed = HttpReceiver()  # never started: nothing listens on its port
    channel = Channel("slack", closed.url(f"/services/T0/B0/{ROBOT_KEY}"))
    outcome = await sender(http).send(channel, MESSAGE)
    assert not outcome.delivered
    assert not outcome.permanent
    assert outcome.error is not None
    assert outcome.error.startswith("connect error")
    assert ROBOT_KEY not in outcome.error


async def test_email_is_delivered_with_message_id_and_subject(http: httpx.AsyncClient) -> None:
    async with SmtpReceiver() as smtp:
        settings = SmtpSettings("127.0.0.1", smtp.port, "tierstream@example.com")
        channel = Channel("email", "owner@example.com")
        outcome = await sender(http, settings).send(channel, MESSAGE)
    assert outcome.delivered, outcome
    [mail] = smtp.messages
    assert mail.mail_from == "tierstream@example.com"
    assert mail.rcpt_tos == ("owner@example.com",)
    assert mail.message["Message-ID"] == "<dlv-7f3a@tierstream>"
    assert mail.message["Subject"] == MESSAGE.title
    assert mail.message["To"] == "owner@example.com"
    body = mail.message.get_content()
    assert MESSAGE.text in body
    assert str(MESSAGE.link) in body


async def test_email_refused_with_5xx_is_permanent(http: httpx.AsyncClient) -> None:
    async with SmtpReceiver() as smtp:
        smtp.reply = "550 5.1.1 mailbox unavailable"
        settings = SmtpSettings("127.0.0.1", smtp.port, "tierstream@example.com")
        outcome = await sender(http, settings).send(Channel("email", "gone@example.com"), MESSAGE)
    assert not outcome.delivered
    assert outcome.permanent
    assert outcome.error == "SMTP 550: 5.1.1 mailbox unavailable"
    assert smtp.messages == []


async def test_email_without_smtp_settings_is_permanent(http: httpx.AsyncClient) -> None:
    outcome = await sender(http).send(Channel("email", "owner@example.com"), MESSAGE)
    assert outcome == Outcome(False, "no SMTP server configured", permanent=True)
