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
        self._held: dict[str, set[str]] = {}  # partitions with a lag series, per consumer

    def set_lag(self, consumer: str, lags: Mapping[int, int]) -> None:
        """The lag of the partitions held now; a partition handed to another instance loses
        its series here (its last value would otherwise stay, and be summed, forever)."""
        held = {str(partition) for partition in lags}
        for gone in self._held.get(consumer, set()) - held:
            self.consumer_lag.remove(consumer, gone)
        for partition, lag in lags.items():
            self.consumer_lag.labels(consumer, str(partition)).set(lag)
        self._held[consumer] = held
