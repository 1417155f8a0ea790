"""Settings of the ingest service (environment, `TIERSTREAM_INGEST_` prefix; the
infrastructure settings shared by every service under `TIERSTREAM_`), built once in main."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.ingest.auth import ApiKey
from services.shared_settings import MoneySettings


class IngestSettings(MoneySettings):
    model_config = SettingsConfigDict(env_prefix="TIERSTREAM_INGEST_")

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
