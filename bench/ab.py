"""A/B of a design step (issue 16: each step's effect beside the previous code in the same
run, alternating runs of the old and the new code): the scorer of a base revision (old)
against this working tree's (new, uncommitted changes included), on the same data.

    python -m bench.ab [--base REF] [--new REF] [--rounds N] [--what throughput|retier|sweep]
                       [--scale S] [--instances K]

- --base: any git ref; by default the merge-base with the upstream branch when HEAD is
  ahead of it, else HEAD~1. It is checked out detached in a git worktree under /tmp,
  removed afterwards. --new: a ref for the new side too (default: this working tree);
  `--base HEAD --new HEAD` runs the same code on both sides (the runner's own noise).
- Each side's scorer processes run from its own tree (cwd and PYTHONPATH there,
  harness/processes.py's CodeTree) with this venv; a tree with native/Cargo.toml has its
  extension module built (`.venv/bin/maturin build --release`, or `pip wheel` when maturin
  is not in the venv) and installed with `pip install --no-deps --target` into a site
  directory of its own (under the run's /tmp directory, not in the tree), first on its
  PYTHONPATH, so each side imports its own compiled module. Each side's databases are
  migrated by its own code (`tierstream db migrate`).
- The runner itself (the fills of topics, the checks of progress) is this working tree's
  bench/ and harness/, and imports its services: they must import cleanly.
- N rounds (default 3), both sides in each, old first in odd rounds and new first in even
  ones; the table gives each side's median, new/old, and every run with half its range as
  a share of the median (the spread).
- throughput: one topic filled once with bench/declared.py's workload (100,000 events at
  scale 1); every run a new database and the instances from ready to caught up: events/s
  and the scorer's CPU per event over the records processed in that span (as
  bench/declared.py measures them).
- retier: the customers of bench/rescoring.py (1,000,000 at scale 1), filled once per side
  by that side's own `bench.rescoring._fill` (so that the stored state is in its format;
  both trees must have it, with this signature) and copied for every run; the instances
  start and the group settles, that side's `tierstream rules activate` activates the
  cheaper ruleset, and the clock runs from the command's exit (the activation committed)
  until every partition has applied it: seconds, and the instances' CPU seconds.
- sweep: the same customers, every one due today (bench/rescoring.py's sweep), filled once
  per side the same way; the day boundary passes (the partitions' last swept day moves back
  one day) and the clock runs until every partition has swept today.

TIERSTREAM_KAFKA_BOOTSTRAP_SERVERS and TIERSTREAM_DATABASE_URL name servers to use; else
they are started here. The table goes to stdout and bench/results/ab.md (with ab.json)."""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from bench import declared, machine, rescoring
from bench.cpu import postgres_pid, spent
from bench.cpu import seconds as seconds_of
from bench.scorers import clone, cpu_seconds, database, new_topics, scorers_from, settled
from harness.processes import CodeTree, ServiceProcess, caught_up, committed, wait_for
from harness.scorer_run import produce, records
from harness.stack import local_broker, postgres
from schemas.v1 import topics
from services.scorer.core.facts import local_day
from services.scorer.core.scoring import label_of

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
RULESET = Path("services/scorer/rulesets/default.yaml")  # in each tree
Measures = dict[str, float]
# what each kind of run gives: name, unit
MEASURES: dict[str, tuple[tuple[str, str], ...]] = {
    "throughput": (
        ("events/s", "events/s"),
        ("scorer CPU", "µs/event"),
        ("PostgreSQL CPU", "µs/event"),
    ),
    "retier": (("re-tier", "s"), ("scorers' CPU", "s")),
    "sweep": (("sweep", "s"), ("scorers' CPU", "s")),
}
# a worktree's crate is built here, so that its dependencies are built once, not per run
CARGO_TARGET = Path.home() / ".cache" / "tierstream" / "ab-cargo-target"


@dataclass(frozen=True)
class Plan:
    bootstrap: str
    server: str  # PostgreSQL: each run's database is made on it
    scale: float
    rounds: int
    instances: int


@dataclass(frozen=True)
class Side:
    name: str  # old, new
    about: str  # the revision, for the table
    tree: CodeTree


def git(*args: str) -> str:
    command = shutil.which("git")
    if command is None:
        raise RuntimeError("git is not installed")
    done = subprocess.run([command, *args], cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def default_base() -> str:
    """The merge-base with the upstream branch when HEAD is ahead of it, else HEAD~1."""
    try:
        upstream = git("rev-parse", "--abbrev-ref", "@{upstream}")
    except RuntimeError:  # no upstream
        return "HEAD~1"
    base = git("merge-base", "HEAD", upstream)
    return "HEAD~1" if base == git("rev-parse", "HEAD") else base


@contextmanager
def worktree(ref: str, scratch: Path) -> Iterator[Path]:
    """`ref` checked out detached under `scratch`, removed on leaving."""
    path = scratch / "tree"
    git("worktree", "add", "--detach", str(path), ref)
    try:
        yield path
    finally:
        git("worktree", "remove", "--force", str(path))


def native_site(root: Path, scratch: Path) -> Path | None:
    """The tree's compiled module installed into a directory of its own (None: the tree has
    no native/)."""
    manifest = root / "native" / "Cargo.toml"
    if not manifest.exists():
        return None
    wheels, site = scratch / "wheels", scratch / "site"
    maturin = Path(sys.executable).parent / "maturin"
    if maturin.exists():
        build = [str(maturin), "build", "--release", "-m", str(manifest), "-o", str(wheels)]
        build += ["-i", sys.executable]
    else:  # maturin comes from PyPI into pip's isolated build environment
        build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(wheels)]
        build.append(str(manifest.parent))
    sys.stderr.write(f"building {manifest.parent}'s module: {' '.join(build[:3])} ...\n")
    env = dict(os.environ)
    if root != REPO:
        env["CARGO_TARGET_DIR"] = str(CARGO_TARGET)
    subprocess.run(build, check=True, stdout=sys.stderr, env=env)
    (wheel,) = wheels.glob("*.whl")
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
    subprocess.run([*install, str(wheel)], check=True, stdout=sys.stderr)
    return site


def throughput(sides: list[Side], plan: Plan) -> dict[str, list[Measures]]:
    batch = records(declared.workload(int(100_000 * plan.scale)).events)
    prefix = new_topics(plan.bootstrap)
    asyncio.run(produce(plan.bootstrap, prefix + topics.CUSTOMER_EVENTS, batch))

    server_pid = postgres_pid(plan.server)

    def one(side: Side) -> Measures:
        url = database(plan.server, side.tree)
        with scorers_from(side.tree, plan.bootstrap, url, prefix, plan.instances) as running:
            started = time.monotonic()
            cpu = cpu_seconds(running)
            pg = seconds_of(server_pid)
            early = sum(committed(s) for s in running)
            wait_for(lambda: all(_caught_up(s) for s in running), 1800, "no catching up")
            seconds = time.monotonic() - started
            cpu = cpu_seconds(running) - cpu
            pg_spent = spent(pg, seconds_of(server_pid))
        measured = len(batch) - early
        found = {"events/s": measured / seconds, "scorer CPU": cpu / measured * 1e6}
        if pg_spent is not None:
            found["PostgreSQL CPU"] = pg_spent / measured * 1e6
        return found

    return _alternate(sides, plan.rounds, one)


def retier(sides: list[Side], plan: Plan) -> dict[str, list[Measures]]:
    return _rescoring(sides, plan, "retier")


def sweep(sides: list[Side], plan: Plan) -> dict[str, list[Measures]]:
    return _rescoring(sides, plan, "sweep")


def _rescoring(sides: list[Side], plan: Plan, what: str) -> dict[str, list[Measures]]:
    """The re-tier after an activation, or the day-boundary sweep with every customer due
    (bench/rescoring.py's two paths)."""
    customers = int(1_000_000 * plan.scale)
    prefix = new_topics(plan.bootstrap)
    topic = prefix + topics.CUSTOMER_EVENTS
    today = local_day(datetime.now(UTC), ZoneInfo("UTC"))
    due_today = str(what == "sweep")
    filled: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="tierstream-ab-rulesets-") as scratch:
        rulesets = {side.name: Path(scratch) / f"{side.name}.yaml" for side in sides}
        for side in sides:
            rulesets[side.name].write_text(
                rescoring.cheaper((side.tree.root / RULESET).read_text())
            )
            filled[side.name] = url = database(plan.server, side.tree)
            sys.stderr.write(f"{side.name}: filling {customers:,} customers\n")
            side.tree.python("-c", _FILL, url, prefix, str(customers), str(today), due_today)

        def one(side: Side) -> Measures:
            url = clone(plan.server, filled[side.name])
            with scorers_from(
                side.tree, plan.bootstrap, url, prefix, plan.instances, maintain_every_seconds=0.5
            ) as running:
                settled(url, topic)
                cpu = cpu_seconds(running)
                if what == "retier":
                    activate = ("rules", "activate", str(rulesets[side.name]), "--url", url)
                    side.tree.python("-m", "services.cli", *activate)
                    done = rescoring.until(
                        url, topic, lambda p: label_of(p.applied or "") == rescoring.NEW_VERSION
                    )
                else:
                    asyncio.run(rescoring.day_boundary(url, topic))
                    done = rescoring.until(url, topic, lambda p: (p.swept_day or 0) >= today)
                started = time.monotonic()
                wait_for(lambda: _alive(running) and done(), 1800, f"the {what} did not finish")
                return {
                    MEASURES[what][0][0]: time.monotonic() - started,
                    "scorers' CPU": cpu_seconds(running) - cpu,
                }

        return _alternate(sides, plan.rounds, one)


_FILL = """import asyncio, sys
from bench.rescoring import _fill
url, prefix, count, today, due_today = sys.argv[1:]
asyncio.run(_fill(url, prefix, int(count), int(today), due_today=due_today == "True"))
"""


def _alternate(
    sides: list[Side], rounds: int, one: Callable[[Side], Measures]
) -> dict[str, list[Measures]]:
    """`rounds` rounds of every side, in alternating order; each side's runs."""
    runs: dict[str, list[Measures]] = {side.name: [] for side in sides}
    for n in range(rounds):
        for side in sides if n % 2 == 0 else sides[::-1]:
            found = one(side)
            runs[side.name].append(found)
            shown = ", ".join(f"{k} {_number(v)}" for k, v in found.items())
            sys.stderr.write(f"round {n + 1}, {side.name}: {shown}\n")
    return runs


def _alive(running: list[ServiceProcess]) -> bool:
    """True while every instance runs; RuntimeError with the end of the log of one that
    exited (not the wait's timeout)."""
    for scorer in running:
        if scorer.process.poll() is not None:
            raise RuntimeError(
                f"a scorer exited ({scorer.process.returncode}): {scorer.output()[-2000:]}"
            )
    return True


def _caught_up(scorer: ServiceProcess) -> bool:
    return _alive([scorer]) and caught_up(scorer)


def table(what: str, sides: list[Side], runs: dict[str, list[Measures]]) -> str:
    """Per measure: each side's median, new/old, and each side's runs."""
    old, new = sides
    rows = [
        "| measure | old median | new median | new/old | old runs | new runs |",
        "|---|---:|---:|---:|---|---|",
    ]
    for name, unit in MEASURES[what]:
        a, b = ([r[name] for r in runs[s.name]] for s in sides)
        rows.append(
            f"| {name} ({unit}) | {_number(statistics.median(a))} | "
            f"{_number(statistics.median(b))} | "
            f"{statistics.median(b) / statistics.median(a):.3f} | {_spread(a)} | {_spread(b)} |"
        )
    return f"old: {old.about}\nnew: {new.about}\n\n" + "\n".join(rows)


def _spread(values: list[float]) -> str:
    """The runs, and half their range as a share of their median."""
    half = (max(values) - min(values)) / 2 / statistics.median(values)
    return f"{', '.join(_number(v) for v in values)} (±{half:.1%})"


def _number(value: float) -> str:
    """Three significant digits, thousands whole."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def side(name: str, ref: str | None, scratch: Path, stack: ExitStack) -> Side:
    """The side running `ref`'s code from a worktree, or this working tree's (None)."""
    (scratch / name).mkdir()
    if ref is None:
        head = git("log", "-1", "--format=%h", "HEAD")
        changed = " with uncommitted changes" if git("status", "--porcelain") else ""
        tree = CodeTree(REPO, native_site(REPO, scratch / name))
        return Side(name, f"working tree at {head}{changed}", tree)
    commit = git("rev-parse", "--verify", f"{ref}^{{commit}}")
    about = f"{ref} = {git('log', '-1', '--format=%h %s', commit)[:100]}"
    root = stack.enter_context(worktree(commit, scratch / name))
    return Side(name, about, CodeTree(root, native_site(root, scratch / name)))


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ab",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--base", help="the old side's git ref (default: see above)")
    parser.add_argument("--new", help="the new side's git ref (default: this working tree)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--what", choices=tuple(MEASURES), default="throughput")
    parser.add_argument(
        "--scale", type=float, default=float(os.environ.get("TIERSTREAM_BENCH_SCALE", "1"))
    )
    parser.add_argument("--instances", type=int, default=1)
    args = parser.parse_args()
    measure = {"throughput": throughput, "retier": retier, "sweep": sweep}[args.what]
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tierstream-ab-")))
        sides = [
            side("old", args.base or default_base(), scratch, stack),
            side("new", args.new, scratch, stack),
        ]
        given = os.environ.get("TIERSTREAM_KAFKA_BOOTSTRAP_SERVERS")
        bootstrap = given or stack.enter_context(local_broker()).bootstrap
        server = os.environ.get("TIERSTREAM_DATABASE_URL") or stack.enter_context(postgres())
        plan = Plan(bootstrap, server, args.scale, args.rounds, args.instances)
        runs = measure(sides, plan)
    about_machine = machine.describe()
    markdown = (
        f"# A/B: {args.what}, scale {args.scale:g}, {args.instances} instance(s), "
        f"{args.rounds} rounds\n\nMachine: {about_machine['cpus']} CPUs "
        f"({about_machine['cpu']}).\n\n{table(args.what, sides, runs)}\n"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ab.md").write_text(markdown)
    (RESULTS / "ab.json").write_text(
        json.dumps(
            {"what": args.what, "scale": args.scale, "sides": [vars(s) for s in sides]}
            | {"runs": runs, "machine": about_machine},
            indent=2,
            default=str,
        )
    )
    sys.stdout.write(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
