"""What the tests and the benchmarks both use: the local Kafka and PostgreSQL (`stack`),
databases made and migrated (`databases`), services run as processes (`processes`), a
scorer in-process (`scorer_run`), a generated workload (`workload`) and the batch oracle it
is checked against (`oracle`).

The product never imports it (an import-linter contract in pyproject.toml holds it)."""
