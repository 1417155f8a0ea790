"""API keys: hashed at rest, matched in constant time, scoped to sources."""

import inspect

import pytest

from services.ingest import auth
from services.ingest.auth import ApiKey, authenticate, new_key
from services.web import tokens
from services.web.tokens import digest


@pytest.fixture
def keys() -> tuple[tuple[str, ApiKey], tuple[str, ApiKey]]:
    return new_key("erp", ["erp/*"]), new_key("shop", ["shop/web", "shop/app"])


def test_a_key_is_stored_only_as_its_hash() -> None:
    secret, entry = new_key("erp", ["erp/*"])
    assert secret.startswith("tsk_")
    assert secret not in entry.model_dump_json()
    assert entry.sha256 == digest(secret)


def test_bearer_header_finds_its_key(keys: tuple[tuple[str, ApiKey], ...]) -> None:
    (erp_secret, erp), (shop_secret, shop) = keys
    configured = [erp, shop]
    assert authenticate(configured, f"Bearer {erp_secret}") == erp
    assert authenticate(configured, f"bearer {shop_secret}") == shop


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwdw==", "Bearer tsk_wrong", "tsk_x"]
)
def test_anything_else_is_no_key(keys: tuple[tuple[str, ApiKey], ...], header: str | None) -> None:
    assert authenticate([entry for _, entry in keys], header) is None


def test_comparison_is_constant_time() -> None:
    """Ingest's keys and the scorer's tokens are found by the same comparison: every
    configured hash compared in constant time, none skipped once one matched."""
    assert "bearer(keys, authorization)" in inspect.getsource(auth.authenticate)
    source = inspect.getsource(tokens.bearer)
    assert "hmac.compare_digest" in source
    assert "break" not in source
    assert "return entry" not in source


@pytest.mark.parametrize(
    ("source", "allowed"),
    [
        ("shop/web", True),
        ("shop/app", True),
        ("shop/web2", False),
        ("shop", False),
    ],
)
def test_exact_sources(source: str, allowed: bool) -> None:
    _, key = new_key("shop", ["shop/web", "shop/app"])
    assert key.may_write(source) is allowed


@pytest.mark.parametrize(
    ("source", "allowed"),
    [
        ("erp/sap-prod", True),
        ("erp/", True),
        ("erp", False),
        ("crm/erp/x", False),
    ],
)
def test_prefix_sources(source: str, allowed: bool) -> None:
    _, key = new_key("erp", ["erp/*"])
    assert key.may_write(source) is allowed


def test_configured_hash_must_look_like_one() -> None:
    with pytest.raises(ValueError, match="sha256"):
        ApiKey(name="erp", sha256="plaintext-key", sources=("erp/*",))
