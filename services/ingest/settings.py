"""Settings of the ingest service (environment, `TIERSTREAM_` prefix), built once in main."""

from decimal import Decimal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.config import shared as _shared
from services.ingest.auth import ApiKey


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TIERSTREAM_INGEST_", frozen=True, extra="forbid", populate_by_name=True
    )

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias=_shared("KAFKA_BOOTSTRAP_SERVERS")
    )
    topic_prefix: str = Field("", validation_alias=_shared("TOPIC_PREFIX"))
    base_currency: str = Field(
        "CNY", pattern=r"^[A-Z]{3}$", validation_alias=_shared("BASE_CURRENCY")
    )
    exchange_rates: dict[str, Decimal] = Field(
        default_factory=dict,
        validation_alias=_shared("EXCHANGE_RATES"),
        description='JSON: {"USD": "7.10"} units of base currency per unit',
    )
    log_level: str = Field("INFO", validation_alias=_shared("LOG_LEVEL"))

    host: str = "127.0.0.1"
    port: int = 8081
    api_keys: tuple[ApiKey, ...] = Field(
        default=(), description="JSON list of {name, sha256, sources}; see `tierstream keys new`"
    )
    max_batch_events: int = Field(1000, ge=1)
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    publish_timeout_seconds: float = Field(5.0, gt=0)
    retry_after_seconds: int = Field(5, ge=1)
    max_future_skew_seconds: int = Field(300, ge=0)
    startup_timeout_seconds: float = Field(60.0, gt=0)
    workers: int = Field(1, ge=1, le=64, description="processes serving the port")
