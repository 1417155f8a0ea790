"""API keys per source system: stored as SHA-256 hashes, compared in constant time."""

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

KEY_PREFIX = "tsk_"


class ApiKey(BaseModel):
    """A key as configured: its name, the hash of its secret, the sources it may write.

    A source pattern is an exact source, or a prefix ending in `*` (`erp/*`, or `*` for all).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    sources: tuple[Annotated[str, StringConstraints(min_length=1)], ...] = Field(min_length=1)

    def may_write(self, source: str) -> bool:
        return any(
            source.startswith(pattern[:-1]) if pattern.endswith("*") else source == pattern
            for pattern in self.sources
        )


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key(name: str, sources: Sequence[str]) -> tuple[str, ApiKey]:
    """A fresh random secret (shown once) and the entry to configure for it."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    return secret, ApiKey(name=name, sha256=digest(secret), sources=tuple(sources))


def authenticate(keys: Sequence[ApiKey], authorization: str | None) -> ApiKey | None:
    """The key a `Bearer` header carries, or None. Every key is compared, match or not."""
    if authorization is None:
        return None
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    presented = digest(secret.strip())
    found = None
    for key in keys:
        if hmac.compare_digest(presented, key.sha256):
            found = key
    return found
