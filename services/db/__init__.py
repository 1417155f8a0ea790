"""Domain-free database kit: engine, unit of work, consumer offsets stored with the state."""
