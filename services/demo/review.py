"""The demo's ruleset review (SPEC §11): a candidate ruleset stored and run in shadow on the
scorer, through its lifecycle API with the admin token `make up` wrote, so that what it
would move is there to look at (GET /v1/rulesets/{version}/shadow, the dashboard's shadow
panel) while the demo's events arrive."""

import httpx


def start_shadow(scorer: str, token: str, version: str, text: str) -> str:
    """Stores `text` as `version` (unless stored) and starts it in shadow (unless a shadow
    runs); returns what happened, for the terminal. Raises httpx.HTTPError when the scorer
    cannot be reached."""
    headers = {"authorization": f"Bearer {token}"}
    rulesets = f"{scorer}/v1/rulesets"
    stored = httpx.put(
        f"{rulesets}/{version}",
        content=text.encode(),
        headers={**headers, "content-type": "application/yaml"},
        timeout=10,
    )
    if stored.status_code not in (200, 201):
        return f"ruleset {version} not stored: {stored.status_code} {stored.text}"
    started = httpx.post(f"{rulesets}/{version}/shadow", json={}, headers=headers, timeout=10)
    if started.status_code == 201:
        return f"ruleset {version} runs in shadow: GET {rulesets}/{version}/shadow"
    detail = started.json().get("detail", started.text) if started.content else ""
    return f"ruleset {version} not started in shadow ({started.status_code}): {detail}"
