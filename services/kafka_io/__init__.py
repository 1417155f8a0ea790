"""Domain-free Kafka plumbing: a safely configured producer, topics."""
