"""Settings of the scorer service (environment, `TIERSTREAM_SCORER_` prefix; infrastructure
settings shared by every service under `TIERSTREAM_`), built once in main."""

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.shared_settings import DatabaseSettings, MoneySettings, shared
from services.web.tokens import Token

DEFAULT_RULESET = Path(__file__).parent / "rulesets" / "default.yaml"


class ScorerSettings(DatabaseSettings, MoneySettings):
    model_config = SettingsConfigDict(env_prefix="TIERSTREAM_SCORER_")

    timezone: str = Field("UTC", validation_alias=shared("TIMEZONE"))

    host: str = "127.0.0.1"
    port: int = 8082
    group_id: str = "tierstream-scorer"
    clock: Literal["wall", "event"] = Field(
        "wall", description="wall: now is the wall clock; event: the latest event time (replay)"
    )
    core: Literal["compiled", "python"] = Field(
        "compiled",
        description="the per-event work in the compiled core (native/), or in the Python "
        "core it is held equal to (rulesets with declared features use Python either way)",
    )
    ruleset_file: Path = Field(
        DEFAULT_RULESET, description="activated at start when no ruleset was ever activated"
    )
    window_main_days: int = Field(365, ge=1)
    window_short_days: int = Field(90, ge=1)
    window_interactions_days: int = Field(30, ge=1)
    as_of_history_days: int = Field(365, ge=0, description="how far back as_of can look")
    max_poll_records: int = Field(5000, ge=1)
    session_timeout_seconds: float = Field(
        30.0,
        ge=6,
        description="a member silent this long leaves the group (its partitions move on)",
    )
    maintain_every_seconds: float = Field(
        5.0, gt=0, description="day-boundary sweep and ruleset checks between batches"
    )
    population_refresh_seconds: int = Field(300, ge=1)
    dedupe_retention_days: int = Field(
        400,
        ge=1,
        description="events seen are remembered (deduped) this long; a later duplicate counts",
    )
    maintenance_lanes: int = Field(
        4,
        ge=1,
        le=8,
        description="maintenance transactions (re-tier, sweep) at once, each on its share of "
        "the partitions held and its own connection",
    )
    transaction_budget: int = Field(
        20_000, ge=1, description="customers re-tiered or swept per transaction (in each lane)"
    )
    startup_timeout_seconds: float = Field(60.0, gt=0)
    tokens: tuple[Token, ...] = Field(
        (),
        description="API tokens, as a JSON list of {name, sha256, role} (`tierstream tokens "
        "new`): service tokens may read the API, admin tokens may also use the ruleset "
        "lifecycle (/v1/rulesets); without any, every API but health and metrics answers 401",
    )
    schedule_check_seconds: float = Field(
        5.0, gt=0, le=30, description="how often each instance looks for a scheduled activation due"
    )
