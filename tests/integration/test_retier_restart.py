"""An activation that lands while a re-tier is under way: the re-tier starts again under
the new standard (its cursor belongs to the one it started with), so no customer keeps the
tier of the ruleset in between. The handler's maintenance run transaction by transaction,
against a real PostgreSQL (no broker: maintenance reads no records)."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from harness.scorer_run import RULESETS
from services.db.engine import sessions
from services.db.unit_of_work import unit_of_work
from services.scorer import lifecycle
from services.scorer.compiled import Compiled
from services.scorer.core import codec, rules
from services.scorer.core.config import Scoring
from services.scorer.core.facts import local_day
from services.scorer.core.scoring import due_from
from services.scorer.core.snapshot import of_state
from services.scorer.core.state import Fact, Windows, apply_all
from services.scorer.handler import ScorerHandler
from services.scorer.metrics import ScorerMetrics
from services.scorer.standards import Standards
from services.scorer.store.customers import ScorerRepository, StoredCustomer
from services.scorer.workset import OutTopics

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TODAY = local_day(NOW, ZoneInfo("UTC"))
WINDOWS = Windows()
SCORING = Scoring(ZoneInfo("UTC"), WINDOWS, "CNY", {})
V1 = (RULESETS / "default.yaml").read_text()
# monetary 7,500.00: low under v1's 10,000 and v3's (v1's rules), high under v2's 5,000
V2 = V1.replace("version: rfm-segments-1", "version: rfm-segments-2").replace(
    'monetary: "10000.00"', 'monetary: "5000.00"'
)
V3 = V1.replace("version: rfm-segments-1", "version: rfm-segments-3")
CUSTOMERS = [f"R-{n:03d}" for n in range(30)]


def _row(customer: str) -> StoredCustomer:
    ruleset = rules.load(V1)
    state = apply_all(None, [Fact(TODAY - 10, "purchase", 750_000)], WINDOWS)
    assert state is not None
    snap = of_state(state, TODAY, WINDOWS)
    match = rules.evaluate(ruleset, snap.features(TODAY), ruleset.thresholds)
    assert match is not None
    due = due_from(snap, TODAY, ruleset=ruleset, thresholds=ruleset.thresholds)
    return StoredCustomer(
        customer, codec.encode(state), match.tier.id, NOW, ruleset.version, 0, due, None, snap
    )


@pytest.mark.parametrize("core", ["compiled", "python"])
async def test_an_activation_during_a_retier_starts_it_again(
    engine: AsyncEngine, core: str
) -> None:
    make = sessions(engine)
    topic = f"retier-restart-{core}"
    async with unit_of_work(make) as session:
        await ScorerRepository(session).save([_row(c) for c in CUSTOMERS])
    handler = ScorerHandler(
        topic=topic,
        scoring=SCORING,
        standards=Standards(topic, V1, refresh=timedelta(minutes=5), windows=WINDOWS),
        topics=OutTopics("changes", "tiers", "letters"),
        clock="wall",
        now=lambda: NOW,
        metrics=ScorerMetrics(CollectorRegistry()),
        budget=7,  # customers per transaction: the re-tier of 30 takes 5
        compiled=Compiled(SCORING) if core == "compiled" else None,
    )

    async def maintain() -> bool:
        async with unit_of_work(make) as session:
            more = await handler.maintain(session, [0])
        handler.committed()
        return more

    await maintain()  # v1 (configured) applied: nothing to re-tier
    await lifecycle.activate_text(make, V2, "test", WINDOWS, actor="test")
    assert await maintain()  # v2's re-tier under way: 7 customers moved up
    assert await _tiers(engine) != {_row(c).tier for c in CUSTOMERS}
    await lifecycle.activate_text(make, V3, "test", WINDOWS, actor="test")
    for _ in range(20):
        if not await maintain():
            break
    assert await _tiers(engine) == {_row(c).tier for c in CUSTOMERS}  # all back under v3


async def _tiers(engine: AsyncEngine) -> set[str | None]:
    async with unit_of_work(sessions(engine)) as session:
        repository = ScorerRepository(session)
        loaded = [await repository.find(c) for c in CUSTOMERS]
    return {state.tier for state in loaded if state is not None}
