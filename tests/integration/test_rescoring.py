"""The sweep and the re-tier from stored rows (services/scorer/rescoring.py), against a real
PostgreSQL: whether a customer is read from its snapshot or its state is decoded, after the
sweep of day D every stored tier is the one the full state gives at D, and after a re-tier
every stored tier is the new ruleset's."""

import random
from collections import Counter
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from harness.scorer_run import RULESETS
from services.db.engine import sessions
from services.db.unit_of_work import unit_of_work
from services.scorer.core import codec, rules
from services.scorer.core.config import Scoring
from services.scorer.core.rules import Ruleset
from services.scorer.core.scoring import Standard, due_from
from services.scorer.core.snapshot import of_state
from services.scorer.core.state import CustomerState, Fact, Windows, apply_all, features
from services.scorer.numbering import Numbering
from services.scorer.store.control import PartitionState
from services.scorer.store.customers import ScorerRepository, StoredCustomer
from services.scorer.store.tiers import TierRepository
from services.scorer.workset import Workset

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]
WINDOWS = Windows()
DAY0 = 740_000
NOW = datetime(2027, 3, 1, tzinfo=UTC)
DEFAULT = rules.load((RULESETS / "default.yaml").read_text())
CHEAPER = rules.load(
    (RULESETS / "default.yaml")
    .read_text()
    .replace("rfm-segments-1", "rfm-segments-2")
    .replace('monetary: "10000.00"', 'monetary: "2000.00"')
)


def _histories(count: int) -> dict[str, CustomerState]:
    rng = random.Random(7)
    out = {}
    for n in range(count):
        facts = [
            Fact(
                DAY0 - rng.choice([0, 1, 29, 30, 89, 90, 91, 200, 364, 365, rng.randrange(500)]),
                rng.choice(["purchase", "purchase", "refund", "interaction"]),
                rng.randrange(1, 3_000_000),
            )
            for _ in range(rng.randrange(1, 6))
        ]
        state = apply_all(
            None, [f if f.kind != "interaction" else Fact(f.day, f.kind) for f in facts], WINDOWS
        )
        assert state is not None
        out[f"C-{n:04d}"] = state
    return out


def _tier(ruleset: Ruleset, state: CustomerState, day: int) -> str:
    match = rules.evaluate(
        ruleset, features(state, max(day, state.anchor), WINDOWS), ruleset.thresholds
    )
    assert match is not None
    return match.tier.id


def _row(customer: str, state: CustomerState, *, legacy: bool) -> StoredCustomer:
    snap = of_state(state, DAY0, WINDOWS)
    due = due_from(snap, DAY0, ruleset=DEFAULT, thresholds=DEFAULT.thresholds)
    return StoredCustomer(
        customer,
        codec.encode(state),
        _tier(DEFAULT, state, DAY0),
        NOW,
        DEFAULT.version,
        0,
        due,
        None,
        None if legacy else snap,  # a row from before snapshots: its state must be decoded
    )


def _workset(session: AsyncSession, ruleset: Ruleset, part: PartitionState) -> Workset:
    """`part`: partition 0's state, kept by the test across transactions (its changes'
    numbers go on from one to the next, as the handler's saved partition state does)."""
    return Workset(
        ScorerRepository(session),
        TierRepository(session),
        Numbering({0: part}),
        scoring=Scoring(ZoneInfo("UTC"), WINDOWS, "CNY", {}),
        standard=Standard(ruleset, ruleset.thresholds),
        tiers=lambda version, tier_id: (
            DEFAULT if version == DEFAULT.version else CHEAPER
        ).tier_index[tier_id],
    )


async def _stored_tiers(engine: AsyncEngine, customers: list[str]) -> dict[str, str | None]:
    async with unit_of_work(sessions(engine)) as session:
        repository = ScorerRepository(session)
        loaded = {c: await repository.find(c) for c in customers}
    return {c: s.tier for c, s in loaded.items() if s is not None}


async def test_sweeps_and_a_retier_from_stored_rows_match_the_full_state(
    engine: AsyncEngine,
) -> None:
    histories = _histories(400)
    customers = sorted(histories)
    make = sessions(engine)
    rows = [_row(c, s, legacy=i % 5 == 0) for i, (c, s) in enumerate(sorted(histories.items()))]
    async with unit_of_work(make) as session:
        await ScorerRepository(session).save(rows)
        await TierRepository(session).count_tiers(
            Counter((0, r.tier) for r in rows if r.tier is not None)
        )
    changed, part = 0, PartitionState(0)
    for day in (DAY0 + 1, DAY0 + 2, DAY0 + 31, DAY0 + 60):
        changed += await _sweep(engine, DEFAULT, day, part)
        stored = await _stored_tiers(engine, customers)
        assert stored == {c: _tier(DEFAULT, histories[c], day) for c in customers}, day
        assert await _counts(engine) == dict(Counter(stored.values())), day
    assert changed > 10  # time did move tiers

    day = DAY0 + 60
    async with unit_of_work(make) as session:
        work = _workset(session, CHEAPER, part)
        cursor, examined = await work.retier(
            0, day, NOW, "ruleset_activated", CHEAPER.version, after="", budget=10_000
        )
        await work.flush()
    assert (cursor, examined) == (None, len(customers))
    stored = await _stored_tiers(engine, customers)
    assert stored == {c: _tier(CHEAPER, histories[c], day) for c in customers}
    assert await _counts(engine) == dict(Counter(stored.values()))
    assert any(_tier(CHEAPER, s, day) != _tier(DEFAULT, s, day) for s in histories.values())

    for day in (DAY0 + 91, DAY0 + 200, DAY0 + 366):
        await _sweep(engine, CHEAPER, day, part)
        stored = await _stored_tiers(engine, customers)
        assert stored == {c: _tier(CHEAPER, histories[c], day) for c in customers}, day
        assert await _counts(engine) == dict(Counter(stored.values())), day


async def _counts(engine: AsyncEngine) -> dict[str, int]:
    async with unit_of_work(sessions(engine)) as session:
        return await TierRepository(session).tier_counts()


async def _sweep(engine: AsyncEngine, ruleset: Ruleset, day: int, part: PartitionState) -> int:
    async with unit_of_work(sessions(engine)) as session:
        work = _workset(session, ruleset, part)
        done, _ = await work.sweep(0, day, NOW, budget=10_000)
        await work.flush()
    assert done
    return len(work.emitted)
