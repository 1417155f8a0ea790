"""Settings conventions shared by every service's own settings class."""

from pydantic import AliasChoices


def shared(name: str) -> AliasChoices:
    """Infrastructure settings have the same name in every service (`TIERSTREAM_<NAME>`)."""
    return AliasChoices(name.lower(), f"TIERSTREAM_{name}")
