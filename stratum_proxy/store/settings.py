"""Settings of the share pipeline (the ``[store]`` section)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stratum_proxy.errors import ConfigError


class StoreSettings(BaseModel):
    """Where share rows go and how they get there."""

    model_config = ConfigDict(extra="forbid")  # a typo must not silently use a default

    url: str = Field(
        default="chdb://./data/db",
        description="chdb:///path (embedded engine) or clickhouse://user:pass@host:9000/mining",
    )
    spool_dir: Path | None = Field(
        default=None,
        description="Durable backup spool; default: <data dir of the store>/spool or ./data/spool",
    )
    queue_size: int = Field(
        default=100_000, ge=1, description="Rows held in memory before spilling to the spool"
    )
    batch_rows: int = Field(default=10_000, ge=1, description="Flush a batch at this many rows")
    linger_s: float = Field(
        default=1.0, gt=0, description="...or when the oldest row waited this long"
    )
    fsync_interval_s: float = Field(default=0.2, gt=0, description="Grouped fsync of the spool")
    spool_max_bytes: int = Field(
        default=10 * 1024**3, ge=1024 * 1024, description="Disk cap of the spool"
    )
    retention_days: int = Field(default=30, ge=1, description="TTL of mining.shares")
    aggregate_retention_days: int = Field(
        default=400, ge=1, description="TTL of the per-minute stats"
    )
    cluster: str = Field(
        default="", description="ClickHouse cluster name: ON CLUSTER DDL, replicated tables"
    )

    @field_validator("url")
    @classmethod
    def _known_store(cls, value: str) -> str:
        from stratum_proxy.store.url import parse_store_url

        try:
            parse_store_url(value)
        except ConfigError as exc:  # pydantic reports ValueErrors with the setting's name
            raise ValueError(str(exc)) from None
        return value

    shutdown_timeout_s: float = Field(
        default=10.0, gt=0, description="Time to flush on a clean stop"
    )
    spool_buffer_rows: int = Field(
        default=100_000, ge=1, description="Rows waiting for the spool's next grouped write"
    )
    spool_segment_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=64 * 1024,
        description="Size at which a spool segment is sealed",
    )
    retry_initial_s: float = Field(
        default=0.1, gt=0, description="First backoff after a store error"
    )
    retry_max_s: float = Field(default=30.0, gt=0, description="Longest backoff between retries")
    stall_warning_s: float = Field(
        default=30.0, gt=0, description="Warn when one insert has not returned after this long"
    )
    stats_log_interval_s: float = Field(
        default=60.0, gt=0, description="Pipeline counters are logged this often (when they move)"
    )


def resolve_spool_dir(settings: StoreSettings) -> Path:
    """``spool_dir``, or a ``spool`` directory next to the embedded store's data.

    The spool never goes inside a chdb data directory: the engine owns that one.
    """
    if settings.spool_dir is not None:
        return settings.spool_dir
    from stratum_proxy.store.url import ChdbUrl, parse_store_url

    try:
        url = parse_store_url(settings.url)
    except ConfigError:
        return Path("data/spool")
    if isinstance(url, ChdbUrl):
        return url.path.parent / "spool"
    return Path("data/spool")
