"""`tierstream rules` on the lifecycle (SPEC §11), on a running scorer's database: the same
code as the HTTP API, the actor `cli:<user>` in the audit log, `--wait` drawing the
re-tier's progress until every partition is done."""

import asyncio
import getpass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harness.scorer_run import (
    CUSTOMER_EVENTS,
    RULESETS,
    Clock,
    caught_up,
    produce,
    records,
    running_scorer,
    settings,
)
from services import migrations
from services.cli import main
from tests import events

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
V1 = (RULESETS / "default.yaml").read_text(encoding="utf-8")


async def run(*argv: str) -> int:
    """The command line, in a thread (it runs an event loop of its own)."""
    return await asyncio.to_thread(main, list(argv))


async def test_rules_commands_store_diff_activate_wait_roll_back_and_audit(
    kafka_bootstrap: str,
    database_url: str,
    topic_prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await asyncio.to_thread(migrations.upgrade, database_url)
    posted = [
        events.transaction(
            customer=f"K-{n}", amount=f"{4000 + 1000 * (n % 9)}.00", time=NOW.isoformat()
        )
        for n in range(30)
    ]
    await produce(kafka_bootstrap, topic_prefix + CUSTOMER_EVENTS, records(posted))
    v2 = tmp_path / "v2.yaml"
    v2.write_text(
        V1.replace("version: rfm-segments-1", "version: rfm-segments-2").replace(
            'monetary: "10000.00"', 'monetary: "6000.00"'
        )
    )
    v3 = tmp_path / "v3.yaml"
    v3.write_text(V1.replace("version: rfm-segments-1", "version: rfm-segments-3"))
    url = ("--url", database_url, "--topic-prefix", topic_prefix)
    config = settings(kafka_bootstrap, database_url, topic_prefix, transaction_budget=4)
    async with running_scorer(config, Clock(NOW)) as scorer:
        await caught_up(scorer)
        capsys.readouterr()
        assert await run("rules", "store", str(v2), *url) == 0
        assert "ruleset rfm-segments-2 stored" in capsys.readouterr().out
        assert await run("rules", "list", *url) == 0
        listed = capsys.readouterr().out
        assert "rfm-segments-1" in listed
        assert "active" in listed
        assert "stored" in listed
        assert await run("rules", "diff", "rfm-segments-1", "rfm-segments-2", *url) == 0
        assert '+  monetary: "6000.00"' in capsys.readouterr().out
        assert await run("rules", "show", "rfm-segments-2", *url) == 0
        assert capsys.readouterr().out == v2.read_text()

        assert (
            await run("rules", "activate", "rfm-segments-2", "--wait", "--timeout", "60", *url) == 0
        )
        shown = capsys.readouterr()
        assert "every partition is re-tiered under rfm-segments-2" in shown.out
        assert "100.0%  30 / 30 customers" in shown.err  # the bar, drawn to the end
        assert await run("rules", "progress", *url) == 0
        assert "30 / 30 customers" in capsys.readouterr().out
        assert await run("rules", "rollback", "--note", "too early", "--wait", *url) == 0
        assert "rfm-segments-1 is active again" in capsys.readouterr().out

        later = (NOW + timedelta(days=30)).isoformat()
        assert await run("rules", "activate", str(v3), "--at", later, *url) == 0
        assert "ruleset rfm-segments-3 is scheduled for" in capsys.readouterr().out
        assert await run("rules", "cancel", "rfm-segments-3", *url) == 0
        assert await run("rules", "cancel", "rfm-segments-3", *url) == 1
        assert "has no pending schedule" in capsys.readouterr().err
        assert await run("rules", "activate", "nope", *url) == 1
        assert "no ruleset version 'nope' is stored" in capsys.readouterr().err
        assert await run("rules", "audit", *url) == 0
        audit = capsys.readouterr().out.splitlines()
    actor = f"cli:{getpass.getuser()}"
    actions = [line.split()[4] for line in reversed(audit) if actor in line]
    assert actions == [
        "stored",
        "activated",
        "rolled_back",
        "stored",
        "scheduled",
        "schedule_cancelled",
    ]
