"""Services run as real processes, as `make up` runs them; polled with a deadline."""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devstack.up import wait_healthy
from tests.stack import scratch_dir


@dataclass
class ServiceProcess:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM, as `make down` does; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


@contextmanager
def service(module: str, port: int, env: Mapping[str, str]) -> Iterator[ServiceProcess]:
    log = scratch_dir(module.rsplit(".", 2)[-2]) / "service.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", module],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
    running = ServiceProcess(process, f"http://127.0.0.1:{port}", log)
    try:
        wait_healthy(running.url, process, log)
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
