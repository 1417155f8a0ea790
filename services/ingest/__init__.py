"""ingest: authenticates the source, validates, publishes to Kafka, answers after the acks."""
