"""Wiring of the scorer: settings, engine, consumer, producer, loop, relay and API are built,
started and closed here and nowhere else.

Five tasks run beside the HTTP API: the consumer loop (services/effectively_once/loop.py with
the scorer's handler), the history relay (tier changes, services/scorer/history_relay.py),
the outbox relay (dead letters), the scheduled activations (services/scorer/lifecycle.py),
and a small task that refreshes the consumer-lag, customers-per-tier and ruleset gauges. If
the loop, a relay or the schedules fail (PostgreSQL or Kafka gone), the process exits
non-zero and is restarted: everything it did is either committed with its offsets or not at
all. SIGTERM finishes the batch in hand, commits it and stops.
"""

import asyncio
import contextlib
import functools
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import structlog
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from schemas.v1 import topics
from services.clock import wall_clock
from services.db.engine import create_engine, sessions
from services.db.unit_of_work import unit_of_work
from services.effectively_once.loop import Lane, PartitionedLoop, safe_consumer
from services.effectively_once.producer import safe_producer, start_producer
from services.effectively_once.relay import Relay
from services.effectively_once.rounds import Background
from services.logs import configure_logging
from services.scorer.api import create_app
from services.scorer.compiled import Compiled
from services.scorer.core.config import Scoring
from services.scorer.core.facts import local_day
from services.scorer.core.state import Windows
from services.scorer.handler import ScorerHandler
from services.scorer.history_relay import HistoryRelay
from services.scorer.lifecycle import Lifecycle
from services.scorer.metrics import ScorerMetrics
from services.scorer.read_side import Queries
from services.scorer.settings import ScorerSettings
from services.scorer.shadow import Shadows
from services.scorer.standards import Standards
from services.scorer.workset import OutTopics
from services.web.serve import serve, settle_heap

log = structlog.get_logger()
CONSUMER = "scorer"


def scoring_of(settings: ScorerSettings) -> Scoring:
    return Scoring(
        zone=ZoneInfo(settings.timezone),
        windows=Windows(
            settings.window_main_days,
            settings.window_short_days,
            settings.window_interactions_days,
            settings.as_of_history_days,
        ),
        base_currency=settings.base_currency,
        rates=settings.exchange_rates,
    )


class Scorer:
    """The running parts of one scorer instance; `now` is the wall clock unless a test
    controls it."""

    def __init__(
        self,
        settings: ScorerSettings,
        *,
        registry: CollectorRegistry,
        now: Callable[[], datetime] = wall_clock,
    ) -> None:
        prefix = settings.topic_prefix
        self.settings = settings
        self.topic = prefix + topics.CUSTOMER_EVENTS
        self.scoring = scoring_of(settings)
        self.now = now
        self.engine = create_engine(
            settings.database_url, "scorer", pool_size=3 + settings.maintenance_lanes
        )
        self.sessions = sessions(self.engine)
        self.consumer = safe_consumer(
            settings.kafka_bootstrap_servers,
            settings.group_id,
            f"scorer-{socket.gethostname()}-{os.getpid()}",
            settings.max_poll_records,
            settings.session_timeout_seconds,
        )
        self.producer = safe_producer(
            settings.kafka_bootstrap_servers, "tierstream-scorer", request_timeout_s=10.0
        )
        self.metrics = ScorerMetrics(registry)
        self.metrics_registry = registry
        self.standards = Standards(
            self.topic,
            settings.ruleset_file.read_text(encoding="utf-8"),
            refresh=timedelta(seconds=settings.population_refresh_seconds),
            windows=self.scoring.windows,
        )
        self.shadows = Shadows(self.scoring)
        self.handlers = [
            ScorerHandler(
                topic=self.topic,
                scoring=self.scoring,
                standards=self.standards,
                topics=OutTopics(
                    prefix + topics.TIER_CHANGES,
                    prefix + topics.CUSTOMER_TIERS,
                    prefix + topics.DEAD_LETTERS,
                ),
                clock=settings.clock,
                now=now,
                metrics=self.metrics,
                budget=settings.transaction_budget,
                # one lane forgets the events seen and refreshes the standard for all
                retention_days=settings.dedupe_retention_days if lane == 0 else None,
                compiled=Compiled(self.scoring) if settings.core == "compiled" else None,
                refreshes=lane == 0,
                shadows=self.shadows,
            )
            for lane in range(settings.maintenance_lanes)
        ]
        self.handler = self.handlers[0]  # batches run in the first lane's, between rounds
        self.history = HistoryRelay(
            self.producer,
            self.sessions,
            topic=self.topic,
            tier_changes=prefix + topics.TIER_CHANGES,
            customer_tiers=prefix + topics.CUSTOMER_TIERS,
            held=lambda: [tp.partition for tp in list(self.loop.claims)],
        )
        self.loop = PartitionedLoop(
            self.consumer,
            topic=self.topic,
            name=CONSUMER,
            make_session=self.sessions,
            handler=self.handler,
            maintain=[
                Lane(handler.maintain, functools.partial(self._committed, handler))
                for handler in self.handlers
            ],
            maintain_every_s=settings.maintain_every_seconds,
            committed=functools.partial(self._committed, self.handler),
            maintain_ready=self.history.has_room,
            fixed_partitions=True,  # customers are stored by partition (migration 0017)
        )
        self.relay = Relay(self.producer, self.sessions)  # dead letters, through the outbox
        self.queries = Queries(
            self.sessions,
            self.standards,
            self.scoring,
            topic=self.topic,
            consumer=CONSUMER,
            clock=settings.clock,
            now=now,
        )
        self.lifecycle = Lifecycle(
            self.sessions, scoring=self.scoring, topic=self.topic, clock=settings.clock, now=now
        )
        self.background = Background("scorer")
        self.failed = self.background.failed

    async def start(self) -> None:
        timeout = self.settings.startup_timeout_seconds
        await start_producer(self.producer, timeout)
        async with asyncio.timeout(timeout):
            await self.consumer.start()
        wall = self.now()
        async with unit_of_work(self.sessions) as session:
            today = local_day(wall, self.scoring.zone)
            standard = await self.standards.refresh(session, today, wall)
            await self.shadows.refresh(session, standard, today)
        self.loop.subscribe()
        self.background.start("loop", self.loop.run)
        self.background.start("relay", self.relay.run)
        self.background.start("history", self.history.run)
        self.background.start("gauges", self._gauges, cancel_on_stop=True)
        self.background.start("schedules", self._schedules, cancel_on_stop=True)
        log.info(
            "scorer_started",
            topic=self.topic,
            ruleset=self.standards.standard.label,
            clock=self.settings.clock,
        )

    async def stop(self) -> None:
        """Drain: the loop finishes and commits its batch, the relay its round; then close."""
        self.loop.stop()
        self.relay.stop()
        self.history.stop()
        await self.background.join()
        with contextlib.suppress(Exception):
            await self.consumer.stop()
        with contextlib.suppress(Exception):
            await self.producer.stop()
        await self.engine.dispose()
        log.info("scorer_stopped")

    def _committed(self, handler: ScorerHandler) -> None:
        done = handler.committed()
        self.history.committed(done.runs)
        if done.letters:
            self.relay.wake()

    async def _gauges(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            await self.refresh_gauges()

    async def _schedules(self) -> None:
        """Carries out the scheduled activations due (whichever instance looks first)."""
        while True:
            await asyncio.sleep(self.settings.schedule_check_seconds)
            for done in await self.lifecycle.run_due():
                log.info(
                    "ruleset_activated",
                    version=done.version,
                    activation=done.activation,
                    by=done.actor,
                    cause=done.cause,
                )

    async def refresh_gauges(self) -> None:
        """Consumer lag of the partitions held, customers per tier, the active ruleset and
        the scheduled activations."""
        self.metrics.set_lag(CONSUMER, self.loop.lags())
        self.metrics.set_customers(await self.queries.tier_counts())
        standard = self.standards.standard
        self.metrics.set_ruleset(standard.ruleset.version, standard.activation)
        pending = await self.lifecycle.schedules()
        self.metrics.set_schedules([row.at for row in pending], self.now())
        shadow = await self.lifecycle.shadow_agreement()
        self.metrics.set_shadow(*(shadow or (None, None)))


def build(
    settings: ScorerSettings, *, registry: CollectorRegistry, on_failure: Callable[[], None]
) -> FastAPI:
    """Must run inside the event loop that will serve (aiokafka binds to it)."""
    holder: dict[str, Scorer] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scorer = holder["scorer"] = Scorer(settings, registry=registry)
        app.state.queries = scorer.queries
        app.state.consumer = scorer.consumer
        app.state.lifecycle = scorer.lifecycle
        await scorer.start()
        settle_heap()
        scorer.failed.add_done_callback(lambda _: on_failure())
        try:
            yield
        finally:
            await scorer.stop()

    return create_app(registry=registry, tokens=settings.tokens, lifespan=lifespan)


def main() -> None:
    settings = ScorerSettings()
    configure_logging(settings.log_level, "scorer")
    serve(
        lambda on_failure: build(settings, registry=CollectorRegistry(), on_failure=on_failure),
        host=settings.host,
        port=settings.port,
        name="scorer",
    )


if __name__ == "__main__":
    main()
