"""The notifier's pure core: the notification policy (`policy`), escalation steps
(`escalation`), retry delays (`retries`), alert texts (`messages`), who gets what
(`routing`), and the directory of people and teams (`directory`, `contacts`).

Nothing here imports SQLAlchemy, aiokafka, asyncpg, FastAPI, settings or logging (an
import-linter contract in pyproject.toml holds it)."""
