"""The per-partition gauges follow the partitions an instance holds: a partition handed to
another instance loses its series (its last value would stay, and be summed or alerted on,
for ever)."""

from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry

from services.loop_metrics import LoopMetrics
from services.scorer.metrics import ScorerMetrics, Tally

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def _lags(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    return {
        (sample.labels["consumer"], sample.labels["partition"]): sample.value
        for metric in registry.collect()
        if metric.name == "tierstream_consumer_lag_records"
        for sample in metric.samples
    }


def _event_time_lags(registry: CollectorRegistry) -> dict[str, float]:
    return {
        sample.labels["partition"]: sample.value
        for metric in registry.collect()
        if metric.name == "tierstream_scorer_event_time_lag_seconds"
        for sample in metric.samples
    }


def test_a_partition_handed_to_another_instance_loses_its_lag_series() -> None:
    registry = CollectorRegistry()
    metrics = LoopMetrics(registry)
    metrics.set_lag("scorer", {0: 5, 1: 7000, 2: 3})
    metrics.set_lag("other", {1: 4})
    metrics.set_lag("scorer", {0: 2, 2: 0})  # a rebalance took partition 1
    assert _lags(registry) == {("scorer", "0"): 2, ("scorer", "2"): 0, ("other", "1"): 4}
    metrics.set_lag("scorer", {})  # every partition revoked
    assert _lags(registry) == {("other", "1"): 4}


def test_the_scorer_drops_the_event_time_lag_of_a_partition_it_no_longer_holds() -> None:
    registry = CollectorRegistry()
    metrics = ScorerMetrics(registry)
    tally = Tally()
    for partition, behind in ((0, 30), (1, 3600)):
        tally.add(
            partition,
            timestamps_ms=[],
            applied=0,
            reasons=[],
            changes=[],
            last_event_time=NOW - timedelta(seconds=behind),
            wall=NOW,
        )
    metrics.record(tally)
    metrics.set_lag("scorer", {0: 0, 1: 0})
    assert _event_time_lags(registry) == {"0": 30, "1": 3600}
    metrics.set_lag("scorer", {0: 0})  # a rebalance took partition 1, an hour behind
    assert _event_time_lags(registry) == {"0": 30}
