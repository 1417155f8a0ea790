"""Wiring of the notifier: settings, directory, policy, engine, two consumers and their
loops, the dead-letter relay, the escalation and delivery workers and the API are built,
started and closed here and nowhere else.

Tasks running beside the API: the tier-change loop, the profile loop, the relay (dead
letters), the escalator, the delivery worker and the gauges. If one fails (PostgreSQL or
Kafka gone) the process exits non-zero and is restarted: what was done is committed with its
offsets, or not at all; timers and deliveries are rows. SIGTERM drains and stops.
"""

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

import httpx
import structlog
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from schemas.v1 import topics
from services.clock import wall_clock
from services.db.engine import create_engine, sessions
from services.db.unit_of_work import unit_of_work
from services.effectively_once.loop import Handler, PartitionedLoop, safe_consumer
from services.effectively_once.producer import safe_producer, start_producer
from services.effectively_once.relay import Relay
from services.effectively_once.rounds import Background
from services.logs import configure_logging
from services.notifier.api import Backend, create_app
from services.notifier.channels import Sender, SmtpSettings
from services.notifier.core import directory as directories
from services.notifier.core import policy as policies
from services.notifier.core.retries import Backoff
from services.notifier.delivery import DeliveryWorker
from services.notifier.escalator import Escalator
from services.notifier.handlers import ChangeHandler, ProfileHandler
from services.notifier.metrics import NotifierMetrics
from services.notifier.settings import NotifierSettings
from services.notifier.store.tasks import task_gauges
from services.web.serve import serve, settle_heap

log = structlog.get_logger()
CHANGES, PROFILES = "notifier", "notifier-profiles"


class Notifier:
    def __init__(
        self,
        settings: NotifierSettings,
        *,
        registry: CollectorRegistry,
        now: Callable[[], datetime] = wall_clock,
    ) -> None:
        self.settings = settings
        self.now = now
        self.directory = directories.parse(settings.directory_file.read_text(encoding="utf-8"))
        if settings.default_team not in self.directory.teams:
            raise directories.DirectoryError(
                f"default team {settings.default_team!r} is not a team of the directory"
            )
        self.policy = policies.parse(settings.policy_file.read_text(encoding="utf-8"))
        self.metrics = NotifierMetrics(registry)
        self.registry = registry
        self.engine = create_engine(settings.database_url, "notifier", pool_size=4)
        self.sessions = sessions(self.engine)
        self.producer = safe_producer(
            settings.kafka_bootstrap_servers, "tierstream-notifier", request_timeout_s=10.0
        )
        self.http = httpx.AsyncClient(follow_redirects=False)
        self.delivery = DeliveryWorker(
            self.sessions, self.directory, self._sender(), backoff=self._backoff(),
            metrics=self.metrics, now=now,
        )  # fmt: skip
        link = settings.public_url.rstrip("/") + "/v1/tasks/{id}"
        self.escalator = Escalator(
            self.sessions, self.directory, task_link=link, metrics=self.metrics, now=now,
            every_s=settings.escalate_every_seconds, escalated=self.delivery.wake,
            retention_days=settings.dedupe_retention_days,
        )  # fmt: skip
        prefix = settings.topic_prefix
        handler = ChangeHandler(
            policy=self.policy, directory=self.directory, default_team=settings.default_team,
            task_link=link, dead_letters=prefix + topics.DEAD_LETTERS, now=now,
            metrics=self.metrics,
        )  # fmt: skip
        self.handler = handler
        self.topics = {
            CHANGES: prefix + topics.TIER_CHANGES,
            PROFILES: prefix + topics.CUSTOMER_EVENTS,
        }
        self.changes, self.change_loop = self._loop(CHANGES, handler, self._changes_committed)
        self.profiles, self.profile_loop = self._loop(
            PROFILES, ProfileHandler(self.directory, settings.default_team), lambda: None
        )
        self.relay = Relay(self.producer, self.sessions)
        self.background = Background("notifier")
        self.failed = self.background.failed

    def _sender(self) -> Sender:
        s = self.settings
        smtp = None
        if s.smtp_host is not None:
            smtp = SmtpSettings(
                s.smtp_host, s.smtp_port, s.smtp_sender, s.smtp_username, s.smtp_password,
                s.smtp_starttls,
            )  # fmt: skip
        return Sender(self.http, smtp, timeout_s=s.delivery_timeout_seconds, now=self.now)

    def _backoff(self) -> Backoff:
        s = self.settings
        return Backoff(
            s.delivery_backoff_seconds, s.delivery_backoff_cap_seconds, s.delivery_attempts
        )

    def _loop(
        self, name: str, handler: Handler, committed: Callable[[], None]
    ) -> tuple[AIOKafkaConsumer, PartitionedLoop]:
        s = self.settings
        group = s.group_id if name == CHANGES else f"{s.group_id}-profiles"
        consumer = safe_consumer(
            s.kafka_bootstrap_servers,
            group,
            f"{name}-{socket.gethostname()}-{os.getpid()}",
            s.max_poll_records,
            s.session_timeout_seconds,
        )
        loop = PartitionedLoop(
            consumer, topic=self.topics[name], name=name, make_session=self.sessions,
            handler=handler,
            committed=committed,
        )  # fmt: skip
        return consumer, loop

    def _changes_committed(self) -> None:
        self.handler.committed()
        self.delivery.wake()
        self.relay.wake()

    async def start(self) -> None:
        timeout = self.settings.startup_timeout_seconds
        await start_producer(self.producer, timeout)
        async with asyncio.timeout(timeout):
            await self.changes.start()
            await self.profiles.start()
        self.change_loop.subscribe()
        self.profile_loop.subscribe()
        for name, work in (
            ("changes", self.change_loop.run),
            ("profiles", self.profile_loop.run),
            ("relay", self.relay.run),
            ("escalator", self.escalator.run),
            ("delivery", self.delivery.run),
        ):
            self.background.start(name, work)
        self.background.start("gauges", self._gauges, cancel_on_stop=True)
        log.info("notifier_started", policy=self.policy.version, people=len(self.directory.people))

    async def stop(self) -> None:
        """Drain: loops finish and commit their batch, workers their round; then close."""
        for part in (
            self.change_loop,
            self.profile_loop,
            self.relay,
            self.escalator,
            self.delivery,
        ):
            part.stop()
        await self.background.join()
        for close in (self.changes.stop, self.profiles.stop, self.producer.stop, self.http.aclose):
            with contextlib.suppress(Exception):
                await close()
        await self.engine.dispose()
        log.info("notifier_stopped")

    async def _gauges(self) -> None:
        while True:
            await self.refresh_gauges()
            await asyncio.sleep(5.0)

    async def refresh_gauges(self) -> None:
        async with unit_of_work(self.sessions) as session:
            counts, levels, oldest = await task_gauges(session, self.now())
        self.metrics.set_tasks(counts, levels, oldest)
        self.metrics.set_lag(CHANGES, self.change_loop.lags())


def build(
    settings: NotifierSettings, *, registry: CollectorRegistry, on_failure: Callable[[], None]
) -> FastAPI:
    """Must run inside the event loop that will serve (aiokafka binds to it)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        notifier = Notifier(settings, registry=registry)
        app.state.backend = Backend(notifier.sessions, notifier.directory, notifier.now)
        app.state.consumer = notifier.changes
        await notifier.start()
        settle_heap()
        notifier.failed.add_done_callback(lambda _: on_failure())
        try:
            yield
        finally:
            await notifier.stop()

    async def assigned() -> str | None:
        consumer: AIOKafkaConsumer | None = getattr(app.state, "consumer", None)
        if consumer is None:
            return "not started"
        return None if consumer.assignment() else "no partitions assigned yet"

    app = create_app(registry=registry, checks={"consumer": assigned}, lifespan=lifespan)
    return app


def main() -> None:
    settings = NotifierSettings()
    configure_logging(settings.log_level, "notifier")
    serve(
        lambda on_failure: build(settings, registry=CollectorRegistry(), on_failure=on_failure),
        host=settings.host,
        port=settings.port,
        name="notifier",
    )


if __name__ == "__main__":
    main()
