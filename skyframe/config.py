"""Settings: the single place configuration is read from (environment, prefix ``SKYFRAME_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

GiB = 1024**3


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SKYFRAME_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("./skyframe-data"), description="Uploads, results, the SQLite database.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite file in data_dir.")
    max_upload_size: int = Field(20 * GiB, gt=0, description="Largest accepted upload, in bytes.")
    upload_chunk_size: int = Field(8 * 1024**2, gt=0, description="Chunk size suggested to clients.")
    min_free_disk: int = Field(1 * GiB, ge=0, description="Uploads are refused when they would leave less.")
    public_url: str | None = Field(
        None, description="Public base URL (enables Replicate webhooks, signed links)."
    )

    host: str = "127.0.0.1"
    port: int = 8000

    # Jobs
    redis_url: str | None = Field(
        None, description="Use Redis for the queue (scale-out with `skyframe worker`)."
    )
    embedded_worker: bool = Field(True, description="`skyframe serve` also runs a worker process.")
    workers: int = Field(1, ge=0, description="Local enhancement jobs run at once by each worker.")
    io_workers: int = Field(
        4, ge=1, description="Slots for remote (Replicate) jobs, which only wait on HTTP."
    )
    job_lease_seconds: float = Field(
        60.0, gt=0, description="A running job whose heartbeat is older is re-queued."
    )
    job_max_attempts: int = Field(3, ge=1)
    recovery_interval_seconds: float = Field(15.0, gt=0)

    # Local engine
    runtime: Literal["auto", "ncnn", "torch"] = "auto"
    threads: int = Field(0, ge=0, description="Inference threads; 0 = usable cores.")

    # Replicate
    replicate_api_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("REPLICATE_API_TOKEN", "SKYFRAME_REPLICATE_API_TOKEN")
    )
    replicate_webhook_secret: SecretStr | None = None
    replicate_poll_interval: float = Field(5.0, gt=0, description="Polling period without webhooks.")
    replicate_webhook_fallback_poll: float = Field(
        60.0, gt=0, description="With webhooks, a slow poll still catches deliveries that got lost."
    )
    replicate_price_per_second: float | None = Field(
        None, ge=0, description="USD per predict-time second, for cost estimates; never hard-coded."
    )
    replicate_webhook_tolerance: int = Field(300, gt=0, description="Max webhook clock skew (s).")
    signed_url_ttl_seconds: int = Field(6 * 3600, gt=0)
    secret_key: SecretStr | None = Field(
        None, description="Signs download links; generated in data_dir if unset."
    )

    # Accounts and access control (issue 7). Off is only accepted on a loopback address.
    auth: bool = Field(
        False,
        description="SKYFRAME_AUTH=on: accounts, sessions and tokens. Off (single user) only on 127.0.0.1.",
    )
    session_idle_hours: float = Field(24.0, gt=0, description="A session unused this long ends.")
    session_max_days: float = Field(14.0, gt=0, description="A session ends this long after login.")
    setup_token_hours: float = Field(24.0, gt=0, description="Lifetime of the first-run setup link.")
    login_max_failures: int = Field(
        5, ge=1, description="Wrong passwords per account per window before logins answer 429."
    )
    login_max_failures_per_ip: int = Field(20, ge=1, description="The same, per client address.")
    login_window_seconds: int = Field(60, gt=0)
    user_max_concurrent_jobs: int = Field(2, ge=0, description="Default per-user pending+running jobs.")
    user_max_storage_bytes: int = Field(50 * GiB, ge=0, description="Default per-user upload bytes.")
    user_allow_paid_models: bool = Field(False, description="Default: may users run Replicate models.")

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'skyframe.db').resolve()}"

    @property
    def storage_dir(self) -> Path:
        return self.data_dir / "files"


@lru_cache
def get_settings() -> Settings:
    return Settings()
