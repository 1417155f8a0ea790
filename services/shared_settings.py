"""The infrastructure settings every service shares, as base classes of each service's own
settings: the same field, default and name everywhere (`TIERSTREAM_<NAME>`, or the field's
own name), while everything else a service reads has its service's prefix."""

from decimal import Decimal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def shared(name: str) -> AliasChoices:
    """Infrastructure settings have the same name in every service (`TIERSTREAM_<NAME>`)."""
    return AliasChoices(name.lower(), f"TIERSTREAM_{name}")


class SharedSettings(BaseSettings):
    """Kafka, the topics' prefix and the log level: what every service has."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias=shared("KAFKA_BOOTSTRAP_SERVERS")
    )
    topic_prefix: str = Field("", validation_alias=shared("TOPIC_PREFIX"))
    log_level: str = Field("INFO", validation_alias=shared("LOG_LEVEL"))


class DatabaseSettings(SharedSettings):
    """The services that keep state in PostgreSQL (scorer, notifier)."""

    database_url: str = Field(
        "postgresql+asyncpg://tierstream@127.0.0.1:5432/tierstream",
        validation_alias=shared("DATABASE_URL"),
    )


class MoneySettings(SharedSettings):
    """The services that read amounts (ingest validates them, the scorer converts them)."""

    base_currency: str = Field(
        "CNY", pattern=r"^[A-Z]{3}$", validation_alias=shared("BASE_CURRENCY")
    )
    exchange_rates: dict[str, Decimal] = Field(
        default_factory=dict,
        validation_alias=shared("EXCHANGE_RATES"),
        description='JSON: {"USD": "7.10"} units of base currency per unit',
    )
