"""What `make up` runs where: ports, state directory, scorer instances; read from the
environment once, when the configuration is built."""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

SERVICES = ("ingest", "scorer", "notifier")


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass(frozen=True)
class StackConfig:
    state: Path = field(
        default_factory=lambda: Path(
            os.environ.get("TIERSTREAM_STATE_DIR", ".tierstream")
        ).resolve()
    )
    kafka_port: int = field(default_factory=lambda: _env_int("TIERSTREAM_KAFKA_PORT", 9092))
    controller_port: int = field(
        default_factory=lambda: _env_int("TIERSTREAM_KAFKA_CONTROLLER_PORT", 9093)
    )
    postgres_port: int = field(default_factory=lambda: _env_int("TIERSTREAM_PG_PORT", 5432))
    ports: dict[str, int] = field(
        default_factory=lambda: {
            name: _env_int(f"TIERSTREAM_{name.upper()}_PORT", 8081 + i)
            for i, name in enumerate(SERVICES)
        }
    )
    # scorer instances in one consumer group; the first on the scorer's port, instance n
    # (from 2) on TIERSTREAM_SCORER_<n>_PORT, by default 8085, 8086, ...
    scorers: int = field(default_factory=lambda: _env_int("TIERSTREAM_SCORERS", 2))
    scorer_ports: dict[int, int] = field(default_factory=lambda: given_scorer_ports(os.environ))
    kafka_given: str | None = field(
        default_factory=lambda: os.environ.get("TIERSTREAM_KAFKA_BOOTSTRAP_SERVERS")
    )
    database_given: str | None = field(
        default_factory=lambda: os.environ.get("TIERSTREAM_DATABASE_URL")
    )
    prometheus_port: int = field(
        default_factory=lambda: _env_int("TIERSTREAM_PROMETHEUS_PORT", 9090)
    )
    sink_port: int = field(default_factory=lambda: _env_int("TIERSTREAM_ALERT_SINK_PORT", 8084))
    partitions: int = field(
        default_factory=lambda: _env_int("TIERSTREAM_CUSTOMER_EVENTS_PARTITIONS", 12)
    )
    topic_prefix: str = field(default_factory=lambda: os.environ.get("TIERSTREAM_TOPIC_PREFIX", ""))

    def __post_init__(self) -> None:
        if self.scorers < 1:
            raise SystemExit(f"TIERSTREAM_SCORERS is {self.scorers}: at least one scorer runs")

    def instances(self) -> dict[str, tuple[str, int]]:
        """Every service process `make up` runs on a port: name -> (service, port)."""
        out = {name: (name, port) for name, port in self.ports.items()}
        for n in range(2, self.scorers + 1):
            out[f"scorer-{n}"] = ("scorer", self.scorer_ports.get(n, 8083 + n))
        return out

    def targets(self) -> dict[str, list[int]]:
        """Prometheus's scrape targets: per service, the ports of its instances."""
        out: dict[str, list[int]] = {}
        for service, port in self.instances().values():
            out.setdefault(service, []).append(port)
        return out


def given_scorer_ports(environ: Mapping[str, str]) -> dict[int, int]:
    """The ports given for scorer instances 2, 3, ... (TIERSTREAM_SCORER_<n>_PORT)."""
    ports = {}
    for name, value in environ.items():
        if match := _SCORER_PORT.fullmatch(name):
            ports[int(match.group(1))] = int(value)
    return ports


_SCORER_PORT = re.compile(r"TIERSTREAM_SCORER_(\d+)_PORT")
