"""Pool URLs and listen addresses as the operator writes them."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from stratum_proxy.errors import ConfigError

_SV1_SCHEMES = {"stratum+tcp", "stratum", "tcp"}
_SV2_SCHEMES = {"stratum2+tcp"}


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolEndpoint:
    """One configured upstream.  ``name`` is what the share rows call it."""

    name: str
    host: str
    port: int
    protocol: str  # "sv1" or "sv2"
    authority_key: str = ""  # SV2 only: base58check authority public key

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def parse_pool(text: str, *, default_authority_key: str = "") -> PoolEndpoint:
    """Parse ``[name=]stratum+tcp://host:port`` or ``[name=]stratum2+tcp://host:port/KEY``.

    An SV2 URL without a key uses ``default_authority_key`` (``sv2.authority_key``).
    """
    raw = text.strip()
    name = ""
    if "=" in raw.split("://", 1)[0]:
        name, raw = raw.split("=", 1)
        name = name.strip()
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme not in _SV1_SCHEMES | _SV2_SCHEMES:
        raise ConfigError(
            f"pool {text!r}: unsupported scheme {parts.scheme!r}; use stratum+tcp://host:port "
            "or stratum2+tcp://host:port/AUTHORITY_PUBKEY"
        )
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise ConfigError(f"pool {text!r}: needs a host and a port, e.g. stratum+tcp://pool:3333")
    protocol = "sv2" if scheme in _SV2_SCHEMES else "sv1"
    key = (parts.path.strip("/") or default_authority_key) if protocol == "sv2" else ""
    if protocol == "sv2" and not key:
        raise ConfigError(
            f"pool {text!r}: a Stratum V2 pool needs its authority public key: "
            "stratum2+tcp://host:port/AUTHORITY_PUBKEY, or set sv2.authority_key"
        )
    host = parts.hostname
    return PoolEndpoint(
        name=name or f"{host}:{port}", host=host, port=port, protocol=protocol, authority_key=key
    )


# "sv2": SV2 miners (Noise, the proxy's authority key) on aggregated SV1 pool connections.
MODES = ("auto", "passthrough", "translate", "aggregate", "sv2")


@dataclass(frozen=True, slots=True, kw_only=True)
class Listener:
    """One address miners connect to, and how their connections are handled.

    ``auto``: passthrough toward an SV1 pool, translate toward an SV2 pool (the
    first pool decides); ``aggregate``: many miners on few SV1 pool connections.
    """

    host: str
    port: int
    mode: str


def parse_listener(text: str, *, default_mode: str = "auto") -> Listener:
    """``[mode=]host:port``, e.g. ``aggregate=0.0.0.0:3334``; ConfigError says what is wrong."""
    raw, mode = text.strip(), default_mode
    if "=" in raw:
        mode, raw = (part.strip() for part in raw.split("=", 1))
    if mode not in MODES:
        raise ConfigError(
            f"listen address {text!r}: unknown mode {mode!r}; use one of {', '.join(MODES)}"
        )
    host, port = parse_listen(raw)
    return Listener(host=host, port=port, mode=mode)


def parse_listen(text: str) -> tuple[str, int]:
    """Parse ``host:port`` (``[::1]:3333`` for IPv6, ``:3333`` for all interfaces)."""
    raw = text.strip()
    host, sep, port_text = raw.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"listen address {text!r}: expected host:port, e.g. 0.0.0.0:3333")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port_text)
