"""Prometheus for `make up`: Debian's package binary, scraping the services' instances on
their local ports, with the alert rules of deploy/prometheus; data in the state directory."""

import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx
import yaml

RULES = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "rules"


def config(targets: Mapping[str, Sequence[int]], scrape_s: float = 2.0) -> str:
    """One job per service, one target per instance."""
    return yaml.safe_dump(
        {
            "global": {"scrape_interval": f"{scrape_s:g}s", "evaluation_interval": "5s"},
            "rule_files": [str(RULES / "*.yml")],
            "scrape_configs": [
                {
                    "job_name": name,
                    "static_configs": [{"targets": [f"127.0.0.1:{port}" for port in ports]}],
                }
                for name, ports in targets.items()
            ],
        },
        sort_keys=False,
    )


def start(state: Path, port: int, targets: Mapping[str, Sequence[int]]) -> subprocess.Popen[bytes]:
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("prometheus is missing: `make up` installs Debian's package")
    home = state / "prometheus"
    (home / "data").mkdir(parents=True, exist_ok=True)
    (home / "prometheus.yml").write_text(config(targets))
    log = (state / "logs" / "prometheus.log").open("ab")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {process.returncode}: see {log.name}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"prometheus not ready on {port}: see {log.name}")
