"""The operator's command line."""

import json

import pytest

from services.cli import main
from services.ingest.auth import ApiKey, authenticate


def test_keys_new_prints_a_key_and_the_entry_that_accepts_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["keys", "new", "--name", "erp", "--source", "erp/*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    secret = lines[0].rsplit(" ", 1)[-1]
    entry = ApiKey.model_validate(json.loads(lines[-1]))
    assert entry.sources == ("erp/*",)
    assert authenticate([entry], f"Bearer {secret}") == entry
    assert secret not in lines[-1]


def test_unknown_commands_are_refused() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["keys", "rotate"])
    assert exit_info.value.code == 2
