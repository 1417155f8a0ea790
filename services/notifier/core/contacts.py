"""A person's contact channels as the directory names them (SPEC §6): the kind, the target
and its secret; the channels module sends through them."""

from dataclasses import dataclass
from typing import Literal

Kind = Literal["webhook", "slack", "dingtalk", "wecom", "email"]


@dataclass(frozen=True, slots=True)
class Channel:
    kind: Kind
    target: str  # https URL for webhook/slack/dingtalk/wecom; an email address for email
    secret: str | None = None  # webhook: HMAC key; dingtalk: the "SEC..." signing secret
    rate_per_minute: int = 60  # enforced by the caller
