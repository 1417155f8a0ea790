"""`tierstream`: the operator's command line."""

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

from services import cli_rules
from services.effectively_once.topics import ensure_topics
from services.ingest.auth import new_key
from services.topology import tierstream_topics


def _keys_new(args: argparse.Namespace) -> int:
    secret, entry = new_key(args.name, args.source)
    print(f"API key (shown once, give it to {args.name}): {secret}")
    print("Add this entry to the JSON list in TIERSTREAM_INGEST_API_KEYS:")
    print(json.dumps(entry.model_dump(mode="json")))
    return 0


def _tokens_new(args: argparse.Namespace) -> int:
    from services.web.tokens import new_token  # noqa: PLC0415

    secret, entry = new_token(args.name, args.role)
    print(f"{args.role} token (shown once, give it to {args.name}): {secret}")
    print("Add this entry to the JSON list in TIERSTREAM_SCORER_TOKENS:")
    print(json.dumps(entry.model_dump(mode="json")))
    return 0


def _topics_create(args: argparse.Namespace) -> int:
    specs = tierstream_topics(args.prefix, args.partitions, args.partitions)
    created = asyncio.run(ensure_topics(args.bootstrap, specs, args.replication_factor))
    for spec in specs:
        print(f"{spec.name}: {'created' if spec.name in created else 'exists'}")
    return 0


def _db_migrate(args: argparse.Namespace) -> int:
    from services import migrations  # noqa: PLC0415 - alembic only for this command

    migrations.upgrade(args.url, args.revision)
    print(f"database at revision {args.revision}")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="tierstream", description=__doc__)
    groups = root.add_subparsers(required=True, metavar="COMMAND")

    keys = groups.add_parser("keys", help="ingest API keys").add_subparsers(required=True)
    new = keys.add_parser("new", help="make a key for a source system")
    new.add_argument("--name", required=True, help="who the key is for, e.g. erp")
    new.add_argument(
        "--source",
        action="append",
        required=True,
        help="a CloudEvents source it may write; a trailing * is a prefix",
    )
    new.set_defaults(run=_keys_new)

    tokens = groups.add_parser("tokens", help="scorer API tokens").add_subparsers(required=True)
    token = tokens.add_parser("new", help="make a token (admin: the ruleset lifecycle)")
    token.add_argument("--name", required=True, help="who it is for (the audit log's actor)")
    token.add_argument("--role", choices=("admin", "service"), default="admin")
    token.set_defaults(run=_tokens_new)

    topic = groups.add_parser("topics", help="Kafka topics").add_subparsers(required=True)
    create = topic.add_parser("create", help="create the four topics if missing")
    create.add_argument(
        "--bootstrap",
        default=os.environ.get("TIERSTREAM_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
    )
    create.add_argument("--prefix", default=os.environ.get("TIERSTREAM_TOPIC_PREFIX", ""))
    create.add_argument("--partitions", type=int, default=12)
    create.add_argument("--replication-factor", type=int, default=1)
    create.set_defaults(run=_topics_create)

    database = groups.add_parser("db", help="the database").add_subparsers(required=True)
    migrate = database.add_parser("migrate", help="apply the migrations (idempotent)")
    migrate.add_argument(
        "--url",
        default=os.environ.get(
            "TIERSTREAM_DATABASE_URL", "postgresql+asyncpg://tierstream@127.0.0.1:5432/tierstream"
        ),
    )
    migrate.add_argument("--revision", default="head")
    migrate.set_defaults(run=_db_migrate)

    cli_rules.register(groups)

    demo = groups.add_parser("demo", help="post a realistic stream through ingest (make up)")
    demo.add_argument("--url", default="http://127.0.0.1:8081", help="ingest")
    demo.add_argument("--key", help="ingest API key (default: .tierstream/ingest-api-key)")
    demo.add_argument("--customers", type=int, default=300)
    demo.add_argument("--seconds", type=float, default=60.0, help="live traffic after history")
    demo.add_argument("--rate", type=float, default=50.0, help="live events per second")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument(
        "--shadow",
        choices=("rfm-review", "none"),
        default="rfm-review",
        help="rfm-review: run services/scorer/rulesets/rfm-review.yaml in shadow on the scorer "
        "(SPEC §11; with .tierstream/admin-token) while the demo posts; none: no shadow",
    )
    demo.add_argument("--scorer-url", default="http://127.0.0.1:8082", help="the scorer")
    demo.add_argument(
        "--ruleset",
        choices=("default", "abc-value"),
        default="default",
        help="default: leave the scorers' ruleset as it is; abc-value: activate SPEC §10's "
        "example (services/scorer/rulesets/abc-value.yaml) before posting",
    )
    demo.add_argument(
        "--database-url",
        default=os.environ.get("TIERSTREAM_DATABASE_URL")
        or "postgresql+asyncpg://tierstream@127.0.0.1:"
        + os.environ.get("TIERSTREAM_PG_PORT", "5432")
        + "/tierstream",
        help="the scorers' database, for --ruleset (default: TIERSTREAM_DATABASE_URL, else "
        "the one `make up` starts, on TIERSTREAM_PG_PORT)",
    )
    demo.set_defaults(run=_demo)
    return root


def _demo(args: argparse.Namespace) -> int:
    from services.demo import traffic  # noqa: PLC0415 - only for this command

    key = args.key or os.environ.get("TIERSTREAM_DEMO_API_KEY")
    if key is None:
        state = Path(os.environ.get("TIERSTREAM_STATE_DIR", ".tierstream"))
        key_file = state / "ingest-api-key"
        if not key_file.exists():
            print(f"no API key: pass --key, or run `make up` first ({key_file})", file=sys.stderr)
            return 2
        key = key_file.read_text().strip()
    if args.ruleset != "default":
        code = _demo_ruleset(args.ruleset, args.database_url)
        if code:
            return code
    if args.shadow != "none":
        _demo_shadow(args.scorer_url, args.shadow)
    return traffic.run(
        args.url, key, customers_count=args.customers, seconds=args.seconds, rate=args.rate,
        seed=args.seed,
    )  # fmt: skip


def _demo_shadow(scorer: str, name: str) -> None:
    """Runs a shipped review candidate in shadow on the scorer (SPEC §11), with the admin
    token `make up` wrote; the demo goes on without it when it cannot."""
    import httpx  # noqa: PLC0415 - only for this command

    from services.demo.review import start_shadow  # noqa: PLC0415
    from services.scorer.settings import DEFAULT_RULESET  # noqa: PLC0415

    state = Path(os.environ.get("TIERSTREAM_STATE_DIR", ".tierstream"))
    token_file = state / "admin-token"
    if not token_file.exists():
        print(f"no shadow ruleset: no admin token in {token_file} (run `make up` first)")
        return
    file = DEFAULT_RULESET.parent / f"{name}.yaml"
    version = file.read_text(encoding="utf-8").split("version:", 1)[1].split()[0]
    try:
        said = start_shadow(
            scorer, token_file.read_text().strip(), version, file.read_text(encoding="utf-8")
        )
    except httpx.HTTPError as error:
        said = f"no shadow ruleset: the scorer at {scorer} did not answer ({error})"
    print(said, flush=True)


def _demo_ruleset(name: str, url: str) -> int:
    """Activates a shipped ruleset for the demo, as `tierstream rules activate` does (unless
    it is the active one already), then waits for the running scorers to load it (each looks
    between batches, every maintain_every_seconds), so that its declared features count the
    demo's events from the first."""
    from sqlalchemy import make_url  # noqa: PLC0415 - only for this command
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415

    from services.scorer.settings import DEFAULT_RULESET  # noqa: PLC0415

    file = DEFAULT_RULESET.parent / f"{name}.yaml"
    hint = f"tierstream rules activate {file} --url URL"
    try:
        found = asyncio.run(_demo_activate(file.read_text(encoding="utf-8"), str(file), url))
    except (OSError, ValueError, SQLAlchemyError) as error:
        # unreachable, not migrated, a refused ruleset, the version stored with another body
        shown = make_url(url).render_as_string(hide_password=True)
        print(
            f"could not activate {name} in {shown}: {error}\n"
            f"pass --database-url, or activate it yourself: {hint}",
            file=sys.stderr,
        )
        return 2
    version, activated, wait = found
    if not activated:
        print(f"ruleset {version} is active already", flush=True)
        return 0
    print(f"ruleset {version} activated; waiting {wait:g} s for the scorers to load it", flush=True)
    time.sleep(wait)
    return 0


async def _demo_activate(text: str, source: str, url: str) -> tuple[str, bool, float]:
    """(version, whether it was activated now, how long the scorers may take to load it)."""
    from services.db.engine import create_engine, sessions  # noqa: PLC0415
    from services.db.unit_of_work import unit_of_work  # noqa: PLC0415
    from services.scorer.lifecycle import activate_text  # noqa: PLC0415
    from services.scorer.main import scoring_of  # noqa: PLC0415
    from services.scorer.settings import ScorerSettings  # noqa: PLC0415
    from services.scorer.store.control import ControlRepository  # noqa: PLC0415

    settings = ScorerSettings(database_url=url)
    engine = create_engine(url, "cli")
    try:
        async with unit_of_work(sessions(engine)) as session:
            active = await ControlRepository(session, "").active_ruleset()
        if active is not None and active.body == text:
            return active.version, False, 0.0
        windows = scoring_of(settings).windows
        stored = await activate_text(sessions(engine), text, source, windows, actor="cli:demo")
    finally:
        await engine.dispose()
    return stored.version, True, settings.maintain_every_seconds + 1.0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
