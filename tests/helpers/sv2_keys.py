"""The proxy's authority key for tests of its SV2 listener."""

from __future__ import annotations

import os
from pathlib import Path

from stratum_proxy.sv2.keys import decode_public_key, generate_keypair


def authority_key_file(directory: Path) -> tuple[Path, bytes]:
    """A key file as `stratum-proxy keys generate` writes it (mode 600), and the public
    key (x-only, 32 bytes) a miner pins."""
    secret, public = generate_keypair(os.urandom)
    path = directory / "authority.key"
    path.write_text(f"secret: {secret}\npublic: {public}\n")
    path.chmod(0o600)
    return path, decode_public_key(public)
