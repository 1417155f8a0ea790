"""Who calls the scorer's API (SPEC §12): every route but health and metrics needs a bearer
token configured as a hash (TIERSTREAM_SCORER_TOKENS): a `service` token (a downstream
system) may read, an `admin` token may also change rulesets. Missing or unknown: 401;
known but not allowed: 403. (People's own credentials come with the console.)"""

from collections.abc import Callable, Sequence
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.web.problems import Problem
from services.web.tokens import Token, bearer

_scheme = HTTPBearer(
    auto_error=False, description="A token from TIERSTREAM_SCORER_TOKENS (`tierstream tokens new`)"
)
Check = Callable[..., Token]


def reader(tokens: Sequence[Token]) -> Check:
    """Any configured token (a service's or an admin's)."""
    return _check(tokens, admin=False)


def admin(tokens: Sequence[Token]) -> Check:
    """An admin's token only."""
    return _check(tokens, admin=True)


def _check(tokens: Sequence[Token], *, admin: bool) -> Check:
    def check(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_scheme)],
    ) -> Token:
        header = None if credentials is None else f"Bearer {credentials.credentials}"
        found = bearer(tokens, header)
        if found is None:
            raise Problem(
                401,
                "unauthenticated",
                "Unauthenticated",
                "a token is needed: Authorization: Bearer <token>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if admin and found.role != "admin":
            raise Problem(
                403, "forbidden", "Forbidden", f"the token {found.name!r} is not an admin's"
            )
        return found

    return check
