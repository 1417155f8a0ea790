"""Prometheus metrics of the scorer, on a registry the caller owns.

What a batch did is tallied while it runs and recorded only once its transaction committed
(a rolled-back batch moves no counter)."""

from collections import Counter as Counts
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from schemas.v1.deadletter import Reason
from services.loop_metrics import LoopMetrics


class _Changed(Protocol):
    @property
    def before(self) -> Any: ...
    @property
    def after(self) -> Any: ...


@dataclass(slots=True)
class Tally:
    applied: int = 0
    duplicates: int = 0
    letters: Counts[str] = field(default_factory=Counts)
    transitions: Counts[tuple[str, str]] = field(default_factory=Counts)
    latencies: list[float] = field(default_factory=list)  # record timestamp -> processed
    event_lag: dict[int, float] = field(default_factory=dict)  # partition -> seconds

    def add(
        self,
        partition: int,
        *,
        timestamps_ms: Sequence[int],
        applied: int,
        reasons: Iterable[str],
        changes: Iterable[_Changed],
        last_event_time: datetime | None,
        wall: datetime,
    ) -> None:
        self.applied += applied
        self.letters.update(reasons)
        self.duplicates += len(timestamps_ms) - applied - sum(1 for _ in reasons)
        now_ms = wall.timestamp() * 1000
        self.latencies += [max(now_ms - ts, 0) / 1000 for ts in timestamps_ms]
        self.add_changes(changes)
        if last_event_time is not None:
            self.event_lag[partition] = max((wall - last_event_time).total_seconds(), 0)

    def add_changes(self, changes: Iterable[_Changed]) -> None:
        self.add_transitions(
            (None if change.before is None else change.before.tier.id, change.after.tier.id)
            for change in changes
        )

    def add_transitions(self, moves: Iterable[tuple[str | None, str]]) -> None:
        """Tier changes as (from tier, None: initial; to tier)."""
        for before, after in moves:
            self.transitions[("none" if before is None else before, after)] += 1


class ScorerMetrics(LoopMetrics):
    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.events = Counter(
            "tierstream_scorer_events",
            "Records consumed, by outcome (applied, duplicate, dead_letter)",
            ["outcome"],
            registry=registry,
        )
        self.processing = Histogram(
            "tierstream_scorer_processing_seconds",
            "From the record's Kafka timestamp (ingest's publish) to its batch committed",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=registry,
        )
        self.event_time_lag = Gauge(
            "tierstream_scorer_event_time_lag_seconds",
            "Wall clock minus the latest event time processed, per partition",
            ["partition"],
            registry=registry,
        )
        self.transitions = Counter(
            "tierstream_tier_transitions",
            "Tier changes emitted, by from and to tier (from=none: initial)",
            ["from_tier", "to_tier"],
            registry=registry,
        )
        self.customers = Gauge(
            "tierstream_customers",
            "Customers per tier (all instances see the same figure: aggregate with max)",
            ["tier"],
            registry=registry,
        )

        self.ruleset = Gauge(
            "tierstream_scorer_ruleset_info",
            "The active ruleset: 1 for its version and activation number",
            ["version", "activation"],
            registry=registry,
        )
        self.schedules_pending = Gauge(
            "tierstream_scorer_ruleset_schedules_pending",
            "Scheduled ruleset activations not carried out yet",
            registry=registry,
        )
        self.schedule_overdue = Gauge(
            "tierstream_scorer_ruleset_schedule_overdue_seconds",
            "How long the most overdue pending scheduled activation is past its instant "
            "(0: none is due)",
            registry=registry,
        )
        self.shadow_agreement = Gauge(
            "tierstream_scorer_shadow_agreement_ratio",
            "The share of customers whose tier under the shadow ruleset is their tier now",
            ["version"],
            registry=registry,
        )
        self._timed: set[str] = set()  # partitions with an event-time lag series
        for outcome in ("applied", "duplicate", "dead_letter"):  # series exist from the start
            self.events.labels(outcome)
        for reason in get_args(Reason):
            self.dead_letters.labels("scorer", reason)

    def record(self, tally: Tally) -> None:
        self.events.labels("applied").inc(tally.applied)
        self.events.labels("duplicate").inc(tally.duplicates)
        for reason, count in tally.letters.items():
            self.events.labels("dead_letter").inc(count)
            self.dead_letters.labels("scorer", reason).inc(count)
        for latency in tally.latencies:
            self.processing.observe(latency)
        for (before, after), count in tally.transitions.items():
            self.transitions.labels(before, after).inc(count)
        for partition, lag in tally.event_lag.items():
            self.event_time_lag.labels(str(partition)).set(lag)
            self._timed.add(str(partition))

    def set_lag(self, consumer: str, lags: Mapping[int, int]) -> None:
        """Also drops the event-time lag of the partitions no longer held."""
        super().set_lag(consumer, lags)
        held = {str(partition) for partition in lags}
        for gone in self._timed - held:
            self.event_time_lag.remove(gone)
        self._timed &= held

    def set_customers(self, counts: Mapping[str, int]) -> None:
        self.customers.clear()
        for tier, count in counts.items():
            self.customers.labels(tier).set(count)

    def set_ruleset(self, version: str, activation: int) -> None:
        self.ruleset.clear()
        self.ruleset.labels(version, str(activation)).set(1)

    def set_schedules(self, pending: Sequence[datetime], now: datetime) -> None:
        """`pending`: the instants of the pending scheduled activations."""
        self.schedules_pending.set(len(pending))
        overdue = [(now - at).total_seconds() for at in pending if at <= now]
        self.schedule_overdue.set(max(overdue, default=0.0))

    def set_shadow(self, version: str | None, agreement: float | None) -> None:
        """The shadow's agreement (no series when no shadow runs or none is counted yet)."""
        self.shadow_agreement.clear()
        if version is not None and agreement is not None:
            self.shadow_agreement.labels(version).set(agreement)
