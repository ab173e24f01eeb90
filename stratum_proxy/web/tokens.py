"""API bearer tokens: where they come from, when they are required, how they are compared.

No aiohttp here: the CLI client reads the same settings to send its token.

Rules:

* The API bound to loopback (127.0.0.0/8, ::1, ``localhost``) with no token
  configured is open, as a local tool expects.
* Bound anywhere else it needs ``api.token`` or ``api.token_file``; without
  one the daemon refuses to start (``ConfigError``).
* A configured token is required on loopback too.
* ``/metrics`` also accepts ``api.metrics_token`` (a scraper's token that
  reads nothing else).
"""

from __future__ import annotations

import hmac
import ipaddress
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from stratum_proxy.errors import ConfigError


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; False for wildcards and other names."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def read_secret(value: SecretStr, path: Path | None, setting: str, log: Any = None) -> str:
    """The token from ``api.<setting>`` or ``api.<setting>_file`` ('' if neither is set).

    The file's contents are stripped; a missing, unreadable or empty file is a
    ConfigError naming the setting.  A file others can read is only warned
    about (the operator may have reasons), never echoed.
    """
    direct = value.get_secret_value().strip()
    if path is None:
        return direct
    if direct:
        raise ConfigError(f"set api.{setting} or api.{setting}_file, not both")
    try:
        text = path.read_text(encoding="utf-8").strip()
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(
            f"api.{setting}_file {path}: cannot read it ({exc.strerror or exc})"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"api.{setting}_file {path}: not UTF-8 text") from None
    if not text:
        raise ConfigError(f"api.{setting}_file {path} is empty")
    if log is not None and mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "api_token_file_readable",
            setting=f"api.{setting}_file",
            path=str(path),
            mode=oct(stat.S_IMODE(mode)),
            fix=f"chmod 600 {path}",
        )
    return text


@dataclass(frozen=True, slots=True)
class ApiTokens:
    """The resolved tokens; ``required`` is False only for an open loopback API."""

    required: bool
    token: bytes = field(default=b"", repr=False)
    metrics_token: bytes = field(default=b"", repr=False)

    def allows(self, presented: str | None, *, metrics: bool = False) -> bool:
        """Whether ``presented`` (the bearer token, or None) opens this endpoint."""
        if not self.required:
            return True
        if presented is None:
            return False
        given = presented.encode("utf-8", "surrogateescape")
        # Both comparisons always run: the time taken says nothing about which matched.
        main = bool(self.token) and hmac.compare_digest(given, self.token)
        scraper = bool(self.metrics_token) and hmac.compare_digest(given, self.metrics_token)
        return main or (metrics and scraper)


def load_api_tokens(api: Any, host: str, log: Any = None) -> ApiTokens:
    """Resolve the tokens for an API listening on ``host``; ConfigError if it may not start."""
    token = read_secret(api.token, api.token_file, "token", log)
    metrics = read_secret(api.metrics_token, api.metrics_token_file, "metrics_token", log)
    if not token and not is_loopback_host(host):
        raise ConfigError(
            f"api.listen {api.listen!r} is not a loopback address, so the API needs a token: "
            "set api.token_file (or api.token, env STRATUM_PROXY_API__TOKEN), "
            "or bind it to 127.0.0.1 with --api-listen 127.0.0.1:8081"
        )
    if metrics and not token and is_loopback_host(host):
        # A scraper token alone would leave everything but /metrics open: close it all.
        raise ConfigError(
            "api.metrics_token is set but api.token is not: set api.token_file (or api.token) too"
        )
    return ApiTokens(required=bool(token), token=token.encode(), metrics_token=metrics.encode())


def client_token(api: Any) -> str | None:
    """The token a CLI command sends to a running daemon, if one is configured."""
    return read_secret(api.token, api.token_file, "token") or None
