"""CPU time of the servers the benchmarks run against, from /proc: PostgreSQL (the postmaster
and every process under it: backends, WAL writer, checkpointer, autovacuum) and the Kafka
broker (one JVM), found by the port they listen on; and of a process with its children.

A process tree's CPU is the user and system time of every live process in it, plus what
each of them has of its reaped children (cutime, cstime): a backend that exits during a
span still counts, in its parent's, so the difference between two readings is the tree's
CPU over the span. Servers that are not on this machine (an endpoint given in the
environment on another host) have no figure: None.
"""

import functools
import os
from pathlib import Path

from sqlalchemy.engine import make_url

LOCAL = ("127.0.0.1", "localhost", "::1")
PROC = Path("/proc")
LISTEN = "0A"  # the TCP state in /proc/net/tcp


def tree_seconds(pid: int) -> float:
    """CPU time used so far by `pid` and every process under it, s (see above)."""
    parents: dict[int, int] = {}
    times: dict[int, int] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # gone meanwhile
        number = int(entry.name)
        parents[number] = int(fields[1])  # ppid (field 4)
        times[number] = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime (14-17)
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, up in parents.items() if up == parent]
        tree.update(children)
        frontier += children
    return sum(times.get(n, 0) for n in tree) / os.sysconf("SC_CLK_TCK")


def listening_pid(port: int) -> int | None:
    """The process that listens on TCP `port` on this machine (the lowest pid when several
    hold the socket: the parent, which they were forked from), or None when none is seen."""
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        path = PROC / "net" / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    owners = [
        int(entry.name)
        for entry in PROC.iterdir()
        if entry.name.isdigit() and not inodes.isdisjoint(_sockets(entry))
    ]
    return min(owners, default=None)


def _sockets(process: Path) -> set[str]:
    """What the process's descriptors point to (those still open while read)."""
    found: set[str] = set()
    try:
        descriptors = list((process / "fd").iterdir())
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return found
    for fd in descriptors:
        try:
            found.add(os.readlink(fd))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


@functools.cache
def postgres_pid(server_url: str) -> int | None:
    """The postmaster of the server at `server_url`, when it runs on this machine."""
    url = make_url(server_url)
    return listening_pid(url.port or 5432) if url.host in LOCAL else None


@functools.cache
def broker_pid(bootstrap: str) -> int | None:
    """The broker at (the first address of) `bootstrap`, when it runs on this machine."""
    host, _, port = bootstrap.split(",", maxsplit=1)[0].rpartition(":")
    return listening_pid(int(port)) if host.strip("[]") in LOCAL else None


def seconds(pid: int | None) -> float | None:
    """tree_seconds, or None for a server not found."""
    return None if pid is None else tree_seconds(pid)


def spent(before: float | None, after: float | None) -> float | None:
    """after - before, or None when either is unknown."""
    return None if before is None or after is None else after - before
