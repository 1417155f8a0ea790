"""Prometheus metrics of ingest, on a registry the caller owns."""

from prometheus_client import CollectorRegistry, Counter, Histogram


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.accepted = Counter(
            "tierstream_ingest_events_accepted",
            "Events acknowledged by Kafka and answered 202",
            ["api_key"],
            registry=registry,
        )
        self.rejected = Counter(
            "tierstream_ingest_events_rejected",
            "Events rejected, by reason (one per request when the body was never parsed)",
            ["reason"],
            registry=registry,
        )
        self.publish_seconds = Histogram(
            "tierstream_ingest_publish_seconds",
            "From the first send to the last Kafka ack",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.batch_events = Histogram(
            "tierstream_ingest_request_events",
            "Events per accepted request",
            buckets=(1, 10, 100, 250, 500, 1000),
            registry=registry,
        )
