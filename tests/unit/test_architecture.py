"""The import-linter contracts in pyproject.toml are live: on a copy of the tree with one
offending import per kind of contract, `lint-imports` fails and names every one."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("services", "schemas", "devstack", "harness", "tests", "bench")
OFFENCES = {
    # file in the copy: (line added, what the report must name)
    "services/scorer/core/state.py": (
        "import sqlalchemy",
        "services.scorer.core.state -> sqlalchemy",
    ),
    "services/notifier/core/retries.py": (
        "import logging",
        "services.notifier.core.retries -> logging",
    ),
    "services/scorer/core/facts.py": (
        "import services.scorer.store.customers",
        "services.scorer.core.facts -> services.scorer.store.customers",
    ),
    "services/scorer/publisher.py": (
        "import services.notifier.core.messages",
        "services.scorer.publisher -> services.notifier.core.messages",
    ),
    "services/effectively_once/record.py": (
        "import schemas.v1.topics",
        "services.effectively_once.record -> schemas.v1.topics",
    ),
    "services/ingest/publisher.py": (
        "import harness.stack",
        "services.ingest.publisher -> harness.stack",
    ),
    "services/ingest/validation.py": (
        "import structlog",
        "services.ingest.validation -> structlog",
    ),
}


def test_every_kind_of_broken_contract_fails_naming_the_import(tmp_path: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    lint = [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"]
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}

    kept = subprocess.run(lint, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert kept.returncode == 0, kept.stdout + kept.stderr

    for name, (line, _) in OFFENCES.items():
        path = tmp_path / name
        path.write_text(line + "  # noqa\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    broken = subprocess.run(
        lint, cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert broken.returncode == 1, broken.stdout + broken.stderr
    for _, named in OFFENCES.values():
        assert named in broken.stdout, f"{named} not reported:\n{broken.stdout}"
    assert "Contracts: 3 kept, 6 broken." in broken.stdout
