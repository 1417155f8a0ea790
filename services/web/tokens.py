"""Bearer tokens configured as hashes (like ingest's API keys): a token's secret is shown once
when it is made, and only its SHA-256 is configured; every configured hash is compared in
constant time, match or not."""

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from typing import Annotated, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, StringConstraints

Role = Literal["admin", "service"]


class Hashed(Protocol):
    @property
    def sha256(self) -> str: ...


H = TypeVar("H", bound=Hashed)


class Token(BaseModel):
    """A token as configured: who it is for (the actor in audit logs), the hash of its
    secret, and its role: `admin` may change rulesets; `service` (a downstream system) may
    read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    role: Role


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def new_token(name: str, role: Role) -> tuple[str, Token]:
    """A fresh random secret (shown once) and the entry to configure for it."""
    secret = new_secret(f"ts{role[0]}_")
    return secret, Token(name=name, sha256=digest(secret), role=role)


def bearer(entries: Iterable[H], authorization: str | None) -> H | None:
    """The entry whose secret an `Authorization: Bearer` header carries, or None."""
    if authorization is None:
        return None
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    presented = digest(secret.strip())
    found = None
    for entry in entries:
        if hmac.compare_digest(presented, entry.sha256):
            found = entry
    return found
