"""Prometheus metrics of the notifier, on a registry the caller owns. Counters move after
the transaction that did the work committed; the task gauges are read from PostgreSQL (every
instance shows the same figure: aggregate with max)."""

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.loop_metrics import LoopMetrics


class NotifierMetrics(LoopMetrics):
    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.tasks = Gauge(
            "tierstream_tasks",
            "Tasks by priority and status",
            ["priority", "status"],
            registry=registry,
        )
        self.escalations = Counter(
            "tierstream_escalations",
            "Escalation steps taken, by level (1: the manager's manager, ...)",
            ["level"],
            registry=registry,
        )
        self.escalations_recorded = Gauge(
            "tierstream_escalations_recorded",
            "Escalation steps recorded on tasks, by level (from the database)",
            ["level"],
            registry=registry,
        )
        self.deliveries = Counter(
            "tierstream_alert_deliveries",
            "Alert delivery attempts, by channel and outcome (delivered, retrying, failed)",
            ["channel", "outcome"],
            registry=registry,
        )
        self.delivery_latency = Histogram(
            "tierstream_alert_delivery_seconds",
            "From the alert's creation to its delivery",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
            registry=registry,
        )
        self.oldest_urgent = Gauge(
            "tierstream_oldest_unacknowledged_urgent_task_seconds",
            "Age of the oldest open, unacknowledged urgent task (0: none)",
            registry=registry,
        )

        for level in range(1, 4):  # so the series exist (at 0) before the first step
            self.escalations.labels(str(level))
        for channel in ("webhook", "slack", "dingtalk", "wecom", "email"):
            for outcome in ("delivered", "retrying", "failed"):
                self.deliveries.labels(channel, outcome)
        self.dead_letters.labels("notifier", "invalid_event")

    def escalated(self, level: int) -> None:
        self.escalations.labels(str(level)).inc()

    def delivered(self, channel: str, outcome: str, latency_s: float | None) -> None:
        self.deliveries.labels(channel, outcome).inc()
        if latency_s is not None:
            self.delivery_latency.observe(latency_s)

    def set_tasks(
        self,
        counts: Mapping[tuple[str, str], int],
        escalations: Mapping[int, int],
        oldest_urgent_s: float,
    ) -> None:
        self.tasks.clear()
        for (priority, status), count in counts.items():
            self.tasks.labels(priority, status).set(count)
        self.escalations_recorded.clear()
        for level, count in escalations.items():
            self.escalations_recorded.labels(str(level)).set(count)
        self.oldest_urgent.set(oldest_urgent_s)

    def dead_lettered(self, count: int) -> None:
        self.dead_letters.labels("notifier", "invalid_event").inc(count)
