"""The local stack without Docker: Kafka from its Maven jars, PostgreSQL from its wheel.

Used by `make up` and by the test fixtures; not part of any service.
"""
