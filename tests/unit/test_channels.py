"""The pure parts of the alert channels: signatures, request shapes, answers classified."""

import hashlib
import hmac
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest

from services.notifier.channels import (
    Message,
    Outcome,
    classify,
    dingtalk_sign,
    request_for,
    webhook_signature,
)
from services.notifier.core.contacts import Channel, Kind

HMAC_KEY = "whsec_test"
NOW = datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)  # 1700000000.123
MESSAGE = Message(
    delivery_id="dlv-42",
    title="C-10023 left Gold",
    text="Call within 2 h <today> & note it",
    link="https://tierstream.example/tasks/7",
    data={"customer": "C-10023", "from": "gold", "to": "silver"},
)


def test_dingtalk_sign_matches_the_known_vector() -> None:
    sign = dingtalk_sign("SEC0123456789abcdef", 1700000000000)
    assert sign == "TSZbRFUuvaSQaRKUpF970OPCb2%2FLcQAP3wOvwZIzBZk%3D"


def test_webhook_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"id":"d-1"}'
    expected = hmac.new(b"whsec_test", b"1700000000." + body, hashlib.sha256).hexdigest()
    signature = webhook_signature("whsec_test", 1700000000, body)
    assert signature == "v1=" + expected
    assert signature == "v1=09e5c4ee4fd49d724cc82de1244a082e0a889a39f097caa3fb1f6f9a5f5fb027"


def _errcode(code: int, message: str = "x") -> bytes:
    return orjson.dumps({"errcode": code, "errmsg": message})


@pytest.mark.parametrize(
    ("kind", "status", "headers", "body", "expected"),
    [
        ("dingtalk", 200, {}, _errcode(0, "ok"), Outcome(True)),
        ("wecom", 200, {}, _errcode(0, "ok"), Outcome(True)),
        ("webhook", 204, {}, b"", Outcome(True)),
        ("slack", 200, {}, b"ok", Outcome(True)),
        (
            "dingtalk",
            200,
            {},
            _errcode(310000, "sign not match"),
            Outcome(False, "errcode 310000: sign not match", permanent=True),
        ),
        ("wecom", 200, {}, _errcode(93000), Outcome(False, "errcode 93000: x", permanent=True)),
        ("wecom", 200, {}, _errcode(45009), Outcome(False, "errcode 45009: x", retry_after=60.0)),
        ("dingtalk", 200, {}, _errcode(130101), Outcome(False, "errcode 130101: x", 600.0)),
        ("dingtalk", 200, {}, _errcode(12345), Outcome(False, "errcode 12345: x")),
        ("dingtalk", 200, {}, b"<html>", Outcome(False, "unparsable response: <html>")),
        (
            "wecom",
            200,
            {},
            b'{"errcode":"0"}',
            Outcome(False, 'unparsable response: {"errcode":"0"}'),
        ),
        ("wecom", 204, {}, b"", Outcome(False, "unexpected HTTP 204")),
        ("webhook", 500, {}, b"", Outcome(False, "HTTP 500")),
        ("slack", 408, {}, b"", Outcome(False, "HTTP 408")),
        ("webhook", 404, {}, b"", Outcome(False, "HTTP 404", permanent=True)),
        ("slack", 403, {}, b"invalid_token", Outcome(False, "HTTP 403: invalid_token", None, True)),
        ("webhook", 410, {}, b"", Outcome(False, "HTTP 410", permanent=True)),
        (
            "webhook",
            302,
            {"Location": "/x"},
            b"",
            Outcome(False, "redirect not followed (HTTP 302)"),
        ),
        ("slack", 429, {"Retry-After": "7"}, b"", Outcome(False, "HTTP 429", retry_after=7.0)),
        ("webhook", 503, {"retry-after": "2.5"}, b"", Outcome(False, "HTTP 503", retry_after=2.5)),
        (
            "webhook",
            429,
            {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
            b"",
            Outcome(False, "HTTP 429"),
        ),
        ("webhook", 429, {"Retry-After": "-3"}, b"", Outcome(False, "HTTP 429", retry_after=0.0)),
        ("webhook", 500, {"Retry-After": "9"}, b"", Outcome(False, "HTTP 500")),
    ],
)
def test_classify(
    kind: Kind, status: int, headers: dict[str, str], body: bytes, expected: Outcome
) -> None:
    assert classify(kind, status, headers, body) == expected


def test_classify_leaves_out_long_or_multiline_bodies() -> None:
    assert classify("webhook", 500, {}, b"x" * 101).error == "HTTP 500"
    assert classify("webhook", 500, {}, b"line one\nline two").error == "HTTP 500"


def test_generic_webhook_request_is_signed_json() -> None:
    channel = Channel("webhook", "https://hooks.example/in", HMAC_KEY)
    url, headers, body = request_for(channel, MESSAGE, NOW)
    assert url == "https://hooks.example/in"
    assert orjson.loads(body) == {
        "id": "dlv-42",
        "type": "tierstream.alert",
        "title": MESSAGE.title,
        "text": MESSAGE.text,
        "link": MESSAGE.link,
        "data": dict(MESSAGE.data),
    }
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Tierstream-Delivery"] == "dlv-42"
    assert headers["X-Tierstream-Timestamp"] == "1700000000"
    assert headers["X-Tierstream-Signature"] == webhook_signature(HMAC_KEY, 1700000000, body)


def test_generic_webhook_without_secret_is_unsigned() -> None:
    _, headers, _ = request_for(Channel("webhook", "https://hooks.example/in"), MESSAGE, NOW)
    assert "X-Tierstream-Signature" not in headers


def test_slack_request_is_escaped_mrkdwn_text() -> None:
    url, headers, body = request_for(
        Channel("slack", "https://hooks.slack.com/services/T1/B2/abc"), MESSAGE, NOW
    )
    assert url == "https://hooks.slack.com/services/T1/B2/abc"
    assert headers == {"Content-Type": "application/json"}
    text = "*C-10023 left Gold*\nCall within 2 h &lt;today&gt; &amp; note it\n" + str(MESSAGE.link)
    assert orjson.loads(body) == {"text": text}


def test_dingtalk_request_is_signed_in_the_url_and_markdown() -> None:
    channel = Channel("dingtalk", "https://oapi.dingtalk.com/robot/send?access_token=t0k", "SECx")
    url, _, body = request_for(channel, MESSAGE, NOW)
    query = dict(parse_qsl(urlsplit(url).query))
    assert (query["access_token"], query["timestamp"]) == ("t0k", "1700000000123")
    assert url.endswith("&sign=" + dingtalk_sign("SECx", 1700000000123))
    payload = orjson.loads(body)
    assert payload["msgtype"] == "markdown"
    assert payload["markdown"]["title"] == MESSAGE.title
    assert payload["markdown"]["text"].startswith(f"### {MESSAGE.title}\n\n{MESSAGE.text}")
    assert f"({MESSAGE.link})" in payload["markdown"]["text"]


def test_dingtalk_without_secret_leaves_the_url_alone() -> None:
    channel = Channel("dingtalk", "https://oapi.dingtalk.com/robot/send?access_token=t0k")
    assert request_for(channel, MESSAGE, NOW)[0] == channel.target


def test_dingtalk_timestamp_is_the_instant_whatever_the_zone() -> None:
    shanghai = NOW.astimezone(timezone(timedelta(hours=8)))
    channel = Channel("dingtalk", "https://oapi.dingtalk.com/robot/send", "SECx")
    assert "?timestamp=1700000000123&sign=" in request_for(channel, MESSAGE, shanghai)[0]


def test_wecom_request_is_markdown_content_within_its_limit() -> None:
    channel = Channel("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k")
    url, _, body = request_for(channel, MESSAGE, NOW)
    assert url == channel.target
    content = orjson.loads(body)["markdown"]["content"]
    assert orjson.loads(body)["msgtype"] == "markdown"
    assert content.startswith(f"**{MESSAGE.title}**\n\n{MESSAGE.text}")
    long = Message("d", "t", "告警" * 3000, None, {})
    content = orjson.loads(request_for(channel, long, NOW)[2])["markdown"]["content"]
    assert len(content.encode()) <= 4096
    assert content.endswith("告")


def test_request_for_refuses_email_and_naive_times() -> None:
    with pytest.raises(ValueError, match="not an HTTP channel"):
        request_for(Channel("email", "ops@example.com"), MESSAGE, NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        request_for(Channel("slack", "https://x"), MESSAGE, NOW.replace(tzinfo=None))
