"""Settings of the scorer service (environment, `TIERSTREAM_` prefix), built once in main."""

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ScorerSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TIERSTREAM_SCORER_", frozen=True, extra="forbid", populate_by_name=True
    )

    log_level: str = Field(
        "INFO", validation_alias=AliasChoices("log_level", "TIERSTREAM_LOG_LEVEL")
    )
    host: str = "127.0.0.1"
    port: int = 8082
