"""docker-compose.yml and the Dockerfile cannot run here (no Docker engine): check that they
parse, refer to things that exist, and configure the services with settings they accept."""

import importlib.util
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from services.ingest.settings import IngestSettings
from services.notifier.settings import NotifierSettings
from services.scorer.settings import ScorerSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SETTINGS: dict[str, type[BaseSettings]] = {
    "ingest": IngestSettings,
    "scorer": ScorerSettings,
    "notifier": NotifierSettings,
}
DOCKERFILE_INSTRUCTIONS = {
    "FROM",
    "ENV",
    "WORKDIR",
    "COPY",
    "RUN",
    "USER",
    "EXPOSE",
    "HEALTHCHECK",
    "CMD",
    "ARG",
    "LABEL",
    "ENTRYPOINT",
}


def _modules(command: list[str]) -> list[str]:
    return [command[i + 1] for i, part in enumerate(command) if part == "-m"]


def test_compose_runs_every_service_with_health_gates() -> None:
    services = COMPOSE["services"]
    assert set(services) == {
        "kafka", "postgres", "setup", "ingest", "scorer", "notifier", "prometheus", "grafana",
    }  # fmt: skip
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for name in ("kafka", "postgres"):
        assert services[name]["healthcheck"]["test"]
    for name, condition in services["setup"]["depends_on"].items():
        assert condition == {"condition": "service_healthy"}, name
    for name in SETTINGS:
        assert services[name]["depends_on"] == {
            "setup": {"condition": "service_completed_successfully"}
        }
        for module in _modules(services[name]["command"]):
            assert importlib.util.find_spec(module) is not None, module


def test_setup_runs_cli_commands_that_exist() -> None:
    from services.cli import parser  # noqa: PLC0415

    script = COMPOSE["services"]["setup"]["command"][-1]
    for command in script.split("&&"):
        words = shlex.split(command)
        assert words[0] == "tierstream"
        parser().parse_args(words[1:])  # exits non-zero on an unknown command


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_compose_environment_is_accepted_by_the_service_settings(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment: dict[str, Any] = COMPOSE["services"][name]["environment"]
    for variable, value in environment.items():
        default = re.fullmatch(r"\$\{\w+:-(.*)\}", str(value))
        monkeypatch.setenv(variable, default.group(1) if default else str(value))
    settings = SETTINGS[name]()
    assert settings.host == "0.0.0.0"  # type: ignore[attr-defined]  # noqa: S104
    assert str(settings.port) in " ".join(COMPOSE["services"][name]["ports"])  # type: ignore[attr-defined]


def test_dockerfile_parses_and_copies_what_exists() -> None:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    for line in lines:
        assert line.split()[0] in DOCKERFILE_INSTRUCTIONS, line
    assert re.match(r"FROM python:3\.1[1-9]", lines[0])
    for line in lines:
        if line.startswith("COPY") and "--from=" not in line:  # not from an earlier stage
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    cmd = next(line for line in lines if line.startswith("CMD"))
    command = yaml.safe_load(cmd.removeprefix("CMD"))
    assert all(importlib.util.find_spec(module) for module in _modules(command))
