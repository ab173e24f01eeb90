"""Settings, built once at the edge (the CLI) and handed down.

Precedence, lowest to highest: defaults, the TOML file (``--config``),
environment variables ``STRATUM_PROXY_*`` (``__`` separates nested keys, e.g.
``STRATUM_PROXY_STORE__URL``), then command-line flags.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from stratum_proxy.errors import ConfigError
from stratum_proxy.store.settings import StoreSettings
from stratum_proxy.sv2.settings import Sv2Settings

if TYPE_CHECKING:
    from stratum_proxy.proxy.endpoints import PoolEndpoint


class LimitSettings(BaseModel):
    """Protection against bad or hostile peers; every limit has a sane default."""

    model_config = ConfigDict(extra="forbid")  # a typo must not silently use a default

    # The longest real SV1 line is a notify with a large coinbase and merkle
    # branch (a few KiB); 64 KiB leaves room while stopping a 1 MB junk line.
    max_line_bytes: int = Field(default=64 * 1024, ge=1024)
    max_connections: int = Field(default=10_000, ge=1, description="Concurrent miner connections")
    idle_timeout_s: float = Field(default=600.0, gt=0, description="Close a miner silent this long")
    submit_timeout_s: float = Field(
        default=30.0, gt=0, description="No pool answer by then: no_response"
    )
    connect_timeout_s: float = Field(default=10.0, gt=0, description="Pool TCP connect timeout")
    pool_retry_s: float = Field(default=30.0, gt=0, description="Skip a failed pool this long")
    max_jobs_per_connection: int = Field(
        default=64, ge=4, description="Jobs kept to judge late shares"
    )
    shutdown_grace_s: float = Field(default=5.0, ge=0, description="Wait for pool answers on stop")
    # New pool connections (one per passthrough miner, opened at its first line) are
    # paced so that a farm reconnecting at once does not get the proxy banned.
    pool_connects_per_s: float = Field(
        default=200.0, gt=0, description="New pool connections per second after a burst"
    )
    pool_connect_burst: int = Field(default=200, ge=1, description="Pool connections at once")


class AggregateSettings(BaseModel):
    """Aggregate mode: many miners on few pool connections, each miner with its own difficulty."""

    model_config = ConfigDict(extra="forbid")  # a typo must not silently use a default

    pool_user: str = Field(default="", description="the farm's account on the pools")
    pool_password: SecretStr = Field(default=SecretStr("x"), description="its password")
    identity_passthrough: bool = Field(
        default=True,
        description="authorize each miner's worker name on the pool and submit under it "
        "(an SV2 pool: a channel of its own per worker name)",
    )
    miners_per_upstream: int = Field(default=200, ge=1, le=65_536)
    prefix_bytes: int = Field(
        default=2, ge=1, le=4, description="the miners' extranonce1 width (2: 65,536 miners)"
    )
    failback: Literal["priority", "stay"] = Field(
        default="priority", description="back to the first pool when it is healthy again"
    )
    failback_check_s: float = Field(
        default=30.0, gt=0, description="how often a better pool is tried"
    )
    reconnects_per_s: float = Field(
        default=20.0, gt=0, description="client.reconnect rationing when a miner must move"
    )
    jobs_per_miner: int = Field(default=16, ge=2, description="past jobs kept to judge late shares")
    job_keepalive_s: float = Field(
        default=60.0, gt=0, description="a silent pool's job is resent with a later ntime"
    )
    work_timeout_s: float = Field(
        default=300.0, gt=0, description="a pool that sent no work this long is left"
    )
    shares_per_minute: float = Field(default=12.0, gt=0, description="vardiff target per miner")
    min_difficulty: float = Field(default=1.0, gt=0, description="vardiff floor (never below)")
    max_difficulty: float = Field(default=1e15, gt=0)
    start_difficulty: float = Field(default=1024.0, gt=0)
    retarget_s: float = Field(default=60.0, gt=0, description="vardiff window for slow miners")

    @model_validator(mode="after")
    def _difficulties_ordered(self) -> AggregateSettings:
        if not self.min_difficulty <= self.start_difficulty <= self.max_difficulty:
            raise ValueError("aggregate: need min_difficulty <= start_difficulty <= max_difficulty")
        return self


class LogSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo must not silently use a default
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"
    summary_interval_s: float = Field(default=60.0, gt=0)


class ApiSettings(BaseModel):
    """The HTTP API: /metrics, /healthz, /livez, /api/stats, /api/query, /api/cleanup.

    Bound to loopback it may stay open; bound anywhere else every endpoint but
    /healthz and /livez needs a bearer token (``token`` or ``token_file``), and
    the daemon refuses to start without one.
    """

    model_config = ConfigDict(extra="forbid")  # a typo must not silently use a default

    listen: str = Field(default="127.0.0.1:8081", description="host:port; empty to disable")
    token: SecretStr = Field(default=SecretStr(""), description="bearer token for the API")
    token_file: Path | None = Field(default=None, description="file holding the bearer token")
    metrics_token: SecretStr = Field(
        default=SecretStr(""), description="token for /metrics only (a Prometheus scraper)"
    )
    metrics_token_file: Path | None = None
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host header names accepted besides IP literals and localhost",
    )
    # Read-only queries (/api/query): every one runs under these engine limits.
    query_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    query_max_result_rows: int = Field(default=1_000_000, ge=1)
    query_max_result_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    query_max_memory_bytes: int = Field(default=1024 * 1024 * 1024, ge=16 * 1024 * 1024)
    query_max_threads: int = Field(default=1, ge=1, le=64)
    max_concurrent_queries: int = Field(default=2, ge=1, le=64)
    # The HTTP server itself.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_header_bytes: int = Field(default=8190, ge=1024)
    max_connections: int = Field(default=64, ge=1)
    header_timeout_s: float = Field(
        default=10.0, gt=0, description="a request head must arrive this soon"
    )
    # The dashboard.
    dashboard_refresh_s: float = Field(
        default=5.0, ge=0.5, le=3600, description="how often open dashboards get new figures"
    )
    worker_down_after_s: float = Field(
        default=600.0, gt=0, description="a worker with no share for this long is shown down"
    )
    max_worker_series: int = Field(
        default=1000, ge=0, description="workers with their own /metrics series; others: _other"
    )
    # /healthz: what makes the proxy "degraded".
    health_write_stale_s: float = Field(
        default=120.0, gt=0, description="rows waiting and no batch acknowledged for this long"
    )
    health_deadletter_window_s: float = Field(
        default=600.0, gt=0, description="a batch dead-lettered this recently"
    )
    health_spool_fraction: float = Field(
        default=0.9, gt=0, le=1, description="spool this full of spool_max_bytes"
    )

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


def _check_pool(text: str, default_authority_key: str) -> PoolEndpoint:
    """The pool URL parses and an SV2 pool's authority key decodes (ConfigError if not)."""
    from stratum_proxy.proxy.endpoints import parse_pool
    from stratum_proxy.sv2.keys import decode_public_key

    pool = parse_pool(text, default_authority_key=default_authority_key)
    if pool.protocol == "sv2":
        decode_public_key(pool.authority_key)
    return pool


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STRATUM_PROXY_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    proxy_id: str = Field(default_factory=socket.gethostname)
    listen: list[str] = Field(
        default_factory=lambda: ["0.0.0.0:3333"],
        description="[mode=]host:port for miners; a mode here overrides ``mode``",
    )
    mode: Literal["auto", "passthrough", "translate", "aggregate"] = Field(
        default="auto",
        description="auto: passthrough to an SV1 pool, translate to an SV2 pool",
    )
    pools: list[str] = Field(
        default_factory=list,
        description="Upstream URLs in failover order: stratum+tcp://host:port or name=URL",
    )
    store: StoreSettings = Field(default_factory=StoreSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    sv2: Sv2Settings = Field(default_factory=Sv2Settings)
    aggregate: AggregateSettings = Field(default_factory=AggregateSettings)

    @model_validator(mode="after")
    def _addresses_parse(self) -> Settings:
        # Refused at start, with the setting's name, rather than found at the first miner.
        from stratum_proxy.proxy.endpoints import parse_listen, parse_listener

        checks: list[tuple[str, Any]] = [
            ("listen", lambda: [parse_listener(a, default_mode=self.mode) for a in self.listen])
        ]
        key = self.sv2.authority_key
        checks.append(("pools", lambda: [_check_pool(p, key) for p in self.pools]))
        if self.api.listen:
            checks.append(("api.listen", lambda: parse_listen(self.api.listen)))
        for name, check in checks:
            try:
                check()
            except ConfigError as exc:
                raise ValueError(f"setting {name}: {exc}") from None
        modes = {parse_listener(a, default_mode=self.mode).mode for a in self.listen}
        if "sv2" in modes and self.sv2.authority_key_file is None:
            raise ValueError(
                "an sv2= listener (SV2 miners) needs the proxy's authority key: make one with "
                "'stratum-proxy keys generate > authority.key && chmod 600 authority.key' and "
                "set sv2.authority_key_file (--authority-key-file)"
            )
        if modes & {"aggregate", "sv2"} and not self.aggregate.pool_user:
            raise ValueError(
                "aggregate mode needs the farm's pool account: set aggregate.pool_user "
                "(--pool-user)"
            )
        return self

    @field_validator("listen", "pools", mode="before")
    @classmethod
    def _split_strings(cls, value: Any) -> Any:
        # Env vars carry lists as "a,b" (or JSON, which pydantic handles first).
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, _EnvSource(settings_cls)]
        if _toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=_toml_path))
        return tuple(sources)


class _EnvSource(EnvSettingsSource):
    """The environment, where a list may also be written ``a,b`` rather than JSON.

    pydantic-settings decodes list and section values as JSON and, when that fails,
    stops with an error that names neither the variable nor the setting.  Handing the
    raw text on lets the split validators take ``a,b`` and lets validation refuse
    anything else with the setting's name.
    """

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError:
            return value


_toml_path: Path | None = None


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from the file, the environment and flag overrides.

    ``overrides`` are flag values; ``None`` means "flag not given".  Nested keys
    use dotted names, e.g. ``{"store.url": "chdb:///x"}``.
    """
    global _toml_path
    if config is not None and not config.is_file():
        raise ConfigError(f"config file {config} does not exist")
    init: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        target = init
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    _toml_path = config
    try:
        return _merge_init(init)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except ValueError as exc:  # TOML syntax errors, or an env var no source can read
        source = config if config is not None else "the STRATUM_PROXY_* environment"
        raise ConfigError(f"cannot read {source}: {exc}") from None
    finally:
        _toml_path = None


def _merge_init(init: dict[str, Any]) -> Settings:
    # Init kwargs replace nested models wholesale; merge them over what the
    # other sources give so "--store URL" keeps the file's [store] batch sizes.
    if not any(isinstance(v, dict) for v in init.values()):
        return Settings(**init)
    base = Settings().model_dump()
    for key, value in init.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key].update(value)
        else:
            base[key] = value
    return Settings(**base)


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(settings)"
        if not err["loc"]:  # a check across settings: its message names them
            lines.append(str(err["msg"]).removeprefix("Value error, "))
            continue
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "value_error":
            # Our own validators already quote the value, with any password masked.
            lines.append(f"setting {where}: {message}")
        else:
            lines.append(f"setting {where}: {message} (got {_shown_input(where, err)})")
    return "invalid settings:\n  " + "\n  ".join(lines)


def _shown_input(where: str, err: Any) -> str:
    # A secret given in the wrong shape is still a secret: never echo it.
    if "token" in where:
        return "not shown"
    value = err.get("input")
    if isinstance(value, str) and "url" in where:
        from stratum_proxy.store.url import redact_url

        return repr(redact_url(value))
    return repr(value)
