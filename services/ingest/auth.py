"""API keys per source system: stored as SHA-256 hashes, compared in constant time
(services/web/tokens.py)."""

from collections.abc import Sequence
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.web.tokens import bearer, digest, new_secret

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


def new_key(name: str, sources: Sequence[str]) -> tuple[str, ApiKey]:
    """A fresh random secret (shown once) and the entry to configure for it."""
    secret = new_secret(KEY_PREFIX)
    return secret, ApiKey(name=name, sha256=digest(secret), sources=tuple(sources))


def authenticate(keys: Sequence[ApiKey], authorization: str | None) -> ApiKey | None:
    """The key a `Bearer` header carries, or None. Every key is compared, match or not."""
    return bearer(keys, authorization)
