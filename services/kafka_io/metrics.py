"""Metrics every consumer loop has: consumer lag and dead letters, by consumer."""

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge


class LoopMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.dead_letters = Counter(
            "tierstream_dead_letters",
            "Records sent to the dead-letter topic, by service and reason",
            ["service", "reason"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "tierstream_consumer_lag_records",
            "Records on the partition not yet processed, per consumer and partition",
            ["consumer", "partition"],
            registry=registry,
        )

    def set_lag(self, consumer: str, lags: Mapping[int, int]) -> None:
        for partition, lag in lags.items():
            self.consumer_lag.labels(consumer, str(partition)).set(lag)
