"""Parsing of ``--store`` URLs.

Two forms are accepted:

* ``chdb:///abs/path`` or ``chdb://./relative/path`` — the embedded ClickHouse
  engine (package chdb-core) keeping its data in that directory;
* ``clickhouse://user:pass@host:9000/db?secure=0&http_port=8123`` — a ClickHouse
  server over the native protocol (clickhouse-driver); ``http_port`` is the HTTP
  interface that ``query`` uses to return ClickHouse's own formatted output.

The password never appears in ``display_url``, which is what logs and errors show.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from stratum_proxy.errors import ConfigError

ACCEPTED_FORMS = (
    "chdb:///absolute/path, chdb://./relative/path, "
    "or clickhouse://user:password@host:9000/database?secure=0&http_port=8123"
)
DEFAULT_NATIVE_PORT = 9000
DEFAULT_SECURE_NATIVE_PORT = 9440
DEFAULT_HTTP_PORT = 8123
DEFAULT_DATABASE = "mining"
_SERVER_PARAMS = frozenset({"secure", "http_port", "verify"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ChdbUrl:
    """An embedded store: the engine's data directory."""

    path: Path

    @property
    def display_url(self) -> str:
        return f"chdb://{self.path}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClickHouseUrl:
    """A ClickHouse server reached over the native protocol (and HTTP for ``query``)."""

    host: str
    port: int
    user: str
    password: str
    database: str
    secure: bool
    verify: bool
    http_port: int

    @property
    def display_url(self) -> str:
        auth = quote(self.user, safe="") + (":***" if self.password else "")
        query = f"?secure={int(self.secure)}&http_port={self.http_port}"
        return f"clickhouse://{auth}@{_host_for_url(self.host)}:{self.port}/{self.database}{query}"


StoreUrl = ChdbUrl | ClickHouseUrl


def parse_store_url(url: str) -> StoreUrl:
    """Parse a ``--store`` value; ConfigError names the accepted forms when it is wrong."""
    scheme, sep, _rest = url.partition("://")
    if not sep:
        raise ConfigError(f"store URL {redact_url(url)!r} has no scheme; use {ACCEPTED_FORMS}")
    scheme = scheme.lower()
    if scheme == "chdb":
        return _parse_chdb(url)
    if scheme == "clickhouse":
        return _parse_clickhouse(url)
    raise ConfigError(f"store URL scheme {scheme!r} is not supported; use {ACCEPTED_FORMS}")


def _parse_chdb(url: str) -> ChdbUrl:
    rest = url.split("://", 1)[1]
    if "?" in rest or "#" in rest:
        raise ConfigError(f"store URL {url!r}: chdb URLs take no parameters; use {ACCEPTED_FORMS}")
    # chdb:///abs → '/abs'; chdb://./rel → './rel'.  A bare host such as
    # chdb://data would be ambiguous (host or directory?), so it is refused.
    if rest.startswith("/"):
        path = Path(unquote(rest))
    elif rest.startswith("./") or rest.startswith("../") or rest in (".", ".."):
        path = Path(unquote(rest)).resolve()
    else:
        raise ConfigError(
            f"store URL {url!r}: the path must start with / or ./; use {ACCEPTED_FORMS}"
        )
    if path == Path("/"):
        raise ConfigError(f"store URL {url!r}: refusing to use / as the data directory")
    return ChdbUrl(path=path)


def _parse_clickhouse(url: str) -> ClickHouseUrl:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(
            f"store URL {redact_url(url)!r}: invalid port; use {ACCEPTED_FORMS}"
        ) from None
    if not parts.hostname:
        raise ConfigError(f"store URL {redact_url(url)!r} has no host; use {ACCEPTED_FORMS}")
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = set(params) - _SERVER_PARAMS
    if unknown:
        raise ConfigError(
            f"store URL {redact_url(url)!r}: unknown parameter(s) {sorted(unknown)}; "
            f"accepted: {sorted(_SERVER_PARAMS)}"
        )
    secure = _flag(params, "secure", default=False, url=url)
    database = unquote(parts.path.strip("/")) or DEFAULT_DATABASE
    if "/" in database:
        raise ConfigError(f"store URL {redact_url(url)!r}: the path must be a single database name")
    return ClickHouseUrl(
        host=parts.hostname,
        port=port or (DEFAULT_SECURE_NATIVE_PORT if secure else DEFAULT_NATIVE_PORT),
        user=unquote(parts.username or "default"),
        password=unquote(parts.password or ""),
        database=database,
        secure=secure,
        verify=_flag(params, "verify", default=True, url=url),
        http_port=_port_param(params, url),
    )


def _flag(params: dict[str, str], name: str, *, default: bool, url: str) -> bool:
    value = params.get(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ConfigError(f"store URL {redact_url(url)!r}: {name}={value!r} must be 0 or 1")


def _port_param(params: dict[str, str], url: str) -> int:
    value = params.get("http_port", str(DEFAULT_HTTP_PORT))
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ConfigError(f"store URL {redact_url(url)!r}: http_port={value!r} is not a TCP port")
    return int(value)


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def redact_url(url: str) -> str:
    """``url`` with its password masked; safe for logs even when the URL is invalid."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostport}"
    return f"{scheme}://{netloc}{slash}{tail}"
