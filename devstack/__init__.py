"""The local stack without Docker: Kafka from its Maven jars, PostgreSQL from its wheel.

Used by `make up` and by the harness (tests, benchmarks); development tooling, not shipped.
"""
