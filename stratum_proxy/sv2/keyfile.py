"""The proxy's own SV2 authority key, read from a file.

    stratum-proxy keys generate > authority.key && chmod 600 authority.key

The file is what ``keys generate`` prints: a ``secret: <base58check>`` line
(the ``public:`` line and ``#`` comments are allowed and checked), or the
secret alone on its first line.  With it the proxy signs the certificate of
its Noise static key for SV2 miners, so whoever reads the file can
impersonate the proxy to every miner that pins its public key: a file that
its group or others may read is refused, not warned about.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

from stratum_proxy.errors import ConfigError
from stratum_proxy.sv2.crypto import xonly_pubkey
from stratum_proxy.sv2.keys import decode_public_key, decode_secret_key, encode_public_key


@dataclass(frozen=True, slots=True)
class AuthorityKey:
    secret: bytes  # 32 bytes
    public: str  # the base58check text miners pin

    @property
    def xonly(self) -> bytes:
        return xonly_pubkey(self.secret)


def load_authority_key(path: Path) -> AuthorityKey:
    """The key in ``path``; ConfigError saying what to do for anything else."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise ConfigError(
            f"authority key file {path} does not exist; make one with "
            f"'stratum-proxy keys generate > {path} && chmod 600 {path}'"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"authority key file {path}: cannot read it ({exc})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"authority key file {path} can be read by others (mode {stat.S_IMODE(mode):03o}): "
            f"whoever reads it can pose as this proxy to its miners; chmod 600 {path}"
        )
    secret_text, public_text = _fields(text, path)
    try:
        secret = decode_secret_key(secret_text)
    except ConfigError as exc:
        raise ConfigError(f"authority key file {path}: {exc}") from None
    public = encode_public_key(xonly_pubkey(secret))
    if public_text is not None:
        try:
            listed = decode_public_key(public_text)
        except ConfigError as exc:
            raise ConfigError(f"authority key file {path}: public line: {exc}") from None
        if listed != xonly_pubkey(secret):
            raise ConfigError(
                f"authority key file {path}: its public line is not the secret's public key "
                f"({public}); was the file edited by hand?"
            )
    return AuthorityKey(secret=secret, public=public)


def _fields(text: str, path: Path) -> tuple[str, str | None]:
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    named = dict(line.split(":", 1) for line in lines if ":" in line)
    named = {k.strip().lower(): v.strip() for k, v in named.items()}
    if "secret" in named:
        return named["secret"], named.get("public")
    if len(lines) == 1 and ":" not in lines[0]:
        return lines[0], None
    raise ConfigError(
        f"authority key file {path}: expected a 'secret: ...' line as 'stratum-proxy keys "
        "generate' prints"
    )
