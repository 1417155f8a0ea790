"""Settings of the notifier service (environment, `TIERSTREAM_NOTIFIER_` prefix; the
infrastructure settings shared by every service under `TIERSTREAM_`), built once in main."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.shared_settings import DatabaseSettings

DEFAULT_POLICY = Path(__file__).parent / "policies" / "default.yaml"


class NotifierSettings(DatabaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIERSTREAM_NOTIFIER_")

    host: str = "127.0.0.1"
    port: int = 8083
    group_id: str = "tierstream-notifier"
    directory_file: Path = Field(description="people, managers, teams, channels, token hashes")
    policy_file: Path = Field(DEFAULT_POLICY, description="which changes make which tasks")
    default_team: str = Field(
        description="queue for customers whose owner and team the directory does not know"
    )
    public_url: str = Field("http://127.0.0.1:8083", description="base of the task links in alerts")
    dedupe_retention_days: int = Field(
        30, ge=1, description="tier changes seen are remembered (deduped) this long"
    )
    escalate_every_seconds: float = Field(1.0, gt=0, description="how often timers are checked")
    delivery_attempts: int = Field(8, ge=1, description="a delivery fails after this many")
    delivery_backoff_seconds: float = Field(5.0, gt=0, description="first retry delay")
    delivery_backoff_cap_seconds: float = Field(3600.0, gt=0)
    delivery_timeout_seconds: float = Field(10.0, gt=0, description="per attempt")
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_sender: str = "tierstream@localhost"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    max_poll_records: int = Field(500, ge=1)
    session_timeout_seconds: float = Field(30.0, ge=6)
    startup_timeout_seconds: float = Field(60.0, gt=0)
