"""Services run as real processes, as `make up` runs them; polled with a deadline."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from devstack.up import wait_healthy
from harness.stack import scratch_dir
from services.web.tokens import digest

# a service token every scorer the harness starts accepts (services/scorer/access.py), sent
# with every read of its API
READER = "tss_harness-reader"
AS_READER = {"authorization": f"Bearer {READER}"}
READER_TOKENS = json.dumps([{"name": "harness", "sha256": digest(READER), "role": "service"}])


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


@dataclass(frozen=True)
class CodeTree:
    """A checkout whose code a process runs (bench/ab.py: the two sides of an A/B), with this
    interpreter and its packages: the process starts in `root`, which leads its PYTHONPATH,
    after `site` when given (the tree's own compiled modules, built from its native/)."""

    root: Path
    site: Path | None = None

    def env(self) -> dict[str, str]:
        """What a process's environment gets to run this tree's code."""
        paths = [str(p) for p in (self.site, self.root) if p is not None]
        if os.environ.get("PYTHONPATH"):
            paths.append(os.environ["PYTHONPATH"])
        return {"PYTHONPATH": os.pathsep.join(paths)}

    def python(self, *args: str) -> str:
        """Runs this interpreter on `args` in the tree; its standard output. RuntimeError with
        the end of its standard error when it fails."""
        done = subprocess.run(
            [sys.executable, *args],
            cwd=self.root,
            env={**os.environ, **self.env()},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"python {' '.join(args)[:200]} in {self.root} exited {done.returncode}: "
                f"{done.stderr[-3000:]}"
            )
        return done.stdout


@contextmanager
def service(
    module: str, port: int, env: Mapping[str, str], tree: CodeTree | None = None
) -> Iterator[ServiceProcess]:
    """`python -m module`, healthy when yielded; from `tree` when given, else as this process
    runs (its working directory and path)."""
    log = scratch_dir(module.rsplit(".", 2)[-2]) / "service.log"
    if module == "services.scorer.main":
        env = {"TIERSTREAM_SCORER_TOKENS": READER_TOKENS, **env}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", module],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env, **(tree.env() if tree else {})},
            cwd=None if tree is None else tree.root,
        )
    running = ServiceProcess(process, f"http://127.0.0.1:{port}", log)
    try:
        wait_healthy(running.url, process, log)
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Polls `predicate` until it holds; TimeoutError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)


class Served(Protocol):
    @property
    def url(self) -> str: ...


def scorer_status(scorer: Served) -> dict[str, Any] | None:
    """The scorer's /v1/status, or None while it does not answer."""
    try:
        response = httpx.get(f"{scorer.url}/v1/status", headers=AS_READER, timeout=10)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def committed(scorer: Served) -> int:
    """Records committed by the scorer, over all partitions."""
    found = scorer_status(scorer)
    return sum(p["committed_offset"] or 0 for p in found["partitions"]) if found else 0


def caught_up(scorer: Served) -> bool:
    """Every partition processed to its end and every outgoing record published."""
    found = scorer_status(scorer)
    return bool(
        found
        and found["partitions"]
        and all(p["lag"] == 0 for p in found["partitions"])
        and found["outbox_pending"] == 0
    )
