"""`tierstream rules`: the ruleset lifecycle (SPEC §11) from the command line. Every command
but `check` works on the scorers' database (`--url`, default TIERSTREAM_DATABASE_URL)
through the same code as the scorer's `/v1/rulesets` API (services/scorer/lifecycle.py),
with `cli:<user>` as the actor in the audit log."""

import argparse
import asyncio
import getpass
import json
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from services.scorer.lifecycle import Lifecycle, Progress

Command = Callable[["Lifecycle", argparse.Namespace], Awaitable[int]]


def register(groups: Any) -> None:
    rules = groups.add_parser("rules", help="tiering rulesets").add_subparsers(required=True)
    check = rules.add_parser("check", help="validate a ruleset file; exit 1 naming problems")
    check.add_argument("file", type=Path)
    check.set_defaults(run=_check)

    def command(name: str, run: Command, helps: str) -> argparse.ArgumentParser:
        found: argparse.ArgumentParser = rules.add_parser(name, help=helps)
        found.add_argument("--url", help="database URL (default: TIERSTREAM_DATABASE_URL)")
        found.add_argument(
            "--topic-prefix", help="the scorers' topic prefix (default: TIERSTREAM_TOPIC_PREFIX)"
        )
        found.set_defaults(run=lambda args: _run(args, run))
        return found

    preview = command("preview", _preview, "tier distribution and from->to moves, live state")
    preview.add_argument("ruleset", help="a ruleset file, or a stored version")
    preview.add_argument("--samples", type=int, default=3, help="customers named per move")
    store = command("store", _store, "store a ruleset file as its version (immutable)")
    store.add_argument("file", type=Path)
    store.add_argument("--note", default="")
    activate = command(
        "activate", _activate, "make a ruleset active (now or --at): scorers re-tier, emit changes"
    )
    activate.add_argument("ruleset", help="a ruleset file (stored first), or a stored version")
    activate.add_argument("--at", type=datetime.fromisoformat, help="ISO 8601 with offset")
    activate.add_argument("--note", default="")
    _waiting(activate)
    cancel = command("cancel", _cancel, "cancel a version's scheduled activation")
    cancel.add_argument("version")
    cancel.add_argument("--note", default="")
    rollback = command("rollback", _rollback, "re-activate the previously active version")
    rollback.add_argument("--note", default="")
    _waiting(rollback)
    command("list", _list, "stored versions and their state")
    show = command("show", _show, "one stored version (YAML)")
    show.add_argument("version")
    diff = command("diff", _diff, "what changes from one stored version to another")
    diff.add_argument("before")
    diff.add_argument("after")
    audit = command("audit", _audit, "the audit log, newest first")
    audit.add_argument("--version")
    audit.add_argument("--limit", type=int, default=50)
    progress = command("progress", _progress, "the active ruleset's re-tier, per partition")
    _waiting(progress)


def _waiting(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait", action="store_true", help="show a progress bar until every partition is done"
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds --wait waits")


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _check(args: argparse.Namespace) -> int:
    from services.scorer.core import rules  # noqa: PLC0415 - cel-cpp only for this command

    try:
        ruleset = rules.load(args.file.read_text(encoding="utf-8"), str(args.file))
    except rules.RulesetError as error:
        return _refused(str(args.file), error.problems)
    print(f"{args.file}: ruleset {ruleset.version} ({ruleset.mode} thresholds) is valid")
    for tier in ruleset.tiers:
        flag = " [high value]" if tier.high_value else ""
        print(f"  {tier.rank:>3}  {tier.id} {tier.label_zh} / {tier.label_en}{flag}")
    if ruleset.plan.features:
        names = ", ".join(f.name for f in ruleset.plan.features)
        print(f"  declared features: {names} ({len(ruleset.plan.streams)} streams)")
    for score in ruleset.scores:
        print(f"  score {score.name}: {', '.join(c.name for c in score.components)}")
    if ruleset.stability:
        print(f"  stability: min_days_in_tier {ruleset.min_days_in_tier}")
    return 0


def _run(args: argparse.Namespace, command: Command) -> int:
    """Runs a command with a Lifecycle on the scorers' database; a refusal exits 1 naming
    what was wrong."""
    from services.scorer.core.rules import RulesetError  # noqa: PLC0415
    from services.scorer.lifecycle import Refusal  # noqa: PLC0415
    from services.scorer.store.control import VersionConflict  # noqa: PLC0415

    args.text = None  # a ruleset file's text, read here (the commands run in an event loop)
    ruleset = getattr(args, "ruleset", None)
    if ruleset is not None and Path(ruleset).is_file():
        args.text = Path(ruleset).read_text(encoding="utf-8")
    if getattr(args, "file", None) is not None:
        args.text = args.file.read_text(encoding="utf-8")
    try:
        return asyncio.run(_with_lifecycle(args, command))
    except RulesetError as error:
        return _refused(
            getattr(args, "ruleset", None) or str(getattr(args, "file", "")), error.problems
        )
    except (Refusal, VersionConflict) as error:
        print(f"refused: {error}", file=sys.stderr)
        return 1


async def _with_lifecycle(args: argparse.Namespace, command: Command) -> int:
    from schemas.v1 import topics  # noqa: PLC0415
    from services.clock import wall_clock  # noqa: PLC0415
    from services.db.engine import create_engine, sessions  # noqa: PLC0415
    from services.scorer.lifecycle import Lifecycle  # noqa: PLC0415
    from services.scorer.main import scoring_of  # noqa: PLC0415
    from services.scorer.settings import ScorerSettings  # noqa: PLC0415

    given = {"database_url": args.url, "topic_prefix": args.topic_prefix}
    settings = ScorerSettings(**{k: v for k, v in given.items() if v is not None})
    engine = create_engine(settings.database_url, "cli")
    try:
        lifecycle = Lifecycle(
            sessions(engine),
            scoring=scoring_of(settings),
            topic=settings.topic_prefix + topics.CUSTOMER_EVENTS,
            clock=settings.clock,
            now=wall_clock,
        )
        return await command(lifecycle, args)
    finally:
        await engine.dispose()


async def _stored(lifecycle: "Lifecycle", args: argparse.Namespace) -> str:
    """The version the `ruleset` argument names: a file is stored first (unless stored
    with this text), anything else is a stored version."""
    if args.text is None:
        return str(args.ruleset)
    version = lifecycle.check(args.text).version
    if await lifecycle.store(version, args.text, _actor(), args.note):
        print(f"ruleset {version} stored from {args.ruleset}")
    return version


async def _preview(lifecycle: "Lifecycle", args: argparse.Namespace) -> int:
    if args.text is not None:
        found = await lifecycle.preview_text(args.text, args.ruleset, _actor(), args.samples)
    else:
        found = await lifecycle.preview(args.ruleset, _actor(), args.samples)
    print(found.render())
    return 0


async def _store(lifecycle: "Lifecycle", args: argparse.Namespace) -> int:
    version = lifecycle.check(args.text).version
    created = await lifecycle.store(version, args.text, _actor(), args.note)
    print(f"ruleset {version} {'stored' if created else 'is stored already, with this text'}")
    return 0


async def _activate(lifecycle: "Lifecycle", args: argparse.Namespace) -> int:
    version = await _stored(lifecycle, args)
    if args.at is not None:
        if args.at.tzinfo is None:
            print("--at needs an offset (e.g. 2027-01-01T00:00:00+08:00)", file=sys.stderr)
            return 2
        found = await lifecycle.schedule(version, args.at, _actor(), args.note)
        print(f"ruleset {version} is scheduled for {found.at.isoformat()} (schedule {found.id})")
        return 0
    activated = await lifecycle.activate(version, _actor(), args.note)
    print(
        f"ruleset {version} is active since {activated.at:%Y-%m-%d %H:%M:%S %Z} "
        f"(activation {activated.activation})"
    )
    print("running scorers re-tier every customer and emit the changes")
    return await _wait(lifecycle, args, activated.activation)


async def _cancel(lifecycle: "Lifecycle", args: argparse.Namespace) -> int:
    for row in await lifecycle.cancel(args.version, _actor(), args.note):
        print(f"schedule {row.id} of ruleset {row.version} for {row.at.isoformat()} cancelled")
    return 0


async def _rollback(lifecycle: "Lifecycle", args: argparse.Namespace) -> int:
    activated = await lifecycle.rollback(_actor(), args.note)
    print(f"ruleset {activated.version} is active again (activation {activated.activation})")
    return await _wait(lifecycle, args, activated.activation)


async def _list(lifecycle: "Lifecycle", _: argparse.Namespace) -> int:
    for info in await lifecycle.rulesets():
        row = info.row
        stored = f"stored {row.stored_at:%Y-%m-%d %H:%M} by {row.stored_by}"
        activated = ""
        if row.activated_at is not None:
            activated = f", activated {row.activated_at:%Y-%m-%d %H:%M} by {row.activated_by}"
        scheduled = "" if row.scheduled_at is None else f", scheduled for {row.scheduled_at:%c %Z}"
        print(f"{row.version:<32} {info.state:<10} {stored}{activated}{scheduled}")
    return 0


async def _show(lifecycle: "Lifecycle", args: argparse.Namespace) -> int:
    print((await lifecycle.ruleset(args.version)).body, end="")
    return 0


async def _diff(lifecycle: "Lifecycle", args: argparse.Namespace) -> int:
    found = await lifecycle.diff(args.before, args.after)
    print("\n".join(found.text) if found.text else "the texts are the same")
    if found.same_rules:
        print("(the rules are the same: only the version, comments or layout differ)")
    return 0


async def _audit(lifecycle: "Lifecycle", args: argparse.Namespace) -> int:
    for row in await lifecycle.audit(version=args.version, limit=args.limit):
        detail = json.dumps(row.detail, ensure_ascii=False) if row.detail else ""
        print(f"{row.at:%Y-%m-%d %H:%M:%S %Z}  {row.actor:<20} {row.action:<18} "
              f"{row.version or '':<24} {row.note} {detail}".rstrip())  # fmt: skip
    return 0


async def _progress(lifecycle: "Lifecycle", args: argparse.Namespace) -> int:
    found = await lifecycle.progress()
    if found is None:
        print("no ruleset was ever activated")
        return 0
    if args.wait:
        return await _wait(lifecycle, args, found.activation)
    print(bar(found))
    for partition, state, done, customers in found.partitions:
        print(f"  partition {partition:>3}  {state:<8} {done:>10,} / {customers:,}")
    return 0


async def _wait(lifecycle: "Lifecycle", args: argparse.Namespace, activation: int) -> int:
    """With --wait: a progress bar until every partition has re-tiered for `activation`."""
    if not args.wait:
        return 0
    out: TextIO = sys.stderr
    deadline = time.monotonic() + args.timeout
    last = 0.0
    while True:
        found = await lifecycle.progress()
        if found is None or found.activation != activation:
            print("\nanother activation followed: stopped waiting", file=out)
            return 1
        if not found.partitions:
            print(
                "no scorer ever ran on this topic: nothing to wait for (is --topic-prefix, "
                "or TIERSTREAM_TOPIC_PREFIX, the scorers'?)",
                file=out,
            )
            return 1
        now = time.monotonic()
        if out.isatty():
            print("\r" + bar(found), end="", file=out, flush=True)
        elif now - last >= 2.0 or found.complete:
            print(bar(found), file=out, flush=True)
            last = now
        if found.complete:
            print("" if not out.isatty() else "\n", end="", file=out)
            print(f"every partition is re-tiered under {found.version} (activation {activation})")
            return 0
        if now > deadline:
            print(f"\nnot complete after {args.timeout:g} s: are the scorers running?", file=out)
            return 1
        await asyncio.sleep(0.5)


def bar(progress: "Progress", width: int = 30) -> str:
    share = progress.done / progress.customers if progress.customers else 1.0
    if progress.complete:
        share = 1.0
    filled = "#" * round(share * width)
    done = sum(1 for _, state, _, _ in progress.partitions if state == "done")
    return (
        f"[{filled:<{width}}] {share:6.1%}  {progress.done:,} / {progress.customers:,} customers, "
        f"{done} / {len(progress.partitions)} partitions"
    )


def _refused(source: str, problems: list[str]) -> int:
    print(f"{source}: refused", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    return 1
