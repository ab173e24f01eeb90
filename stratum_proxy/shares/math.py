"""Bitcoin header arithmetic used to judge shares (see DESIGN.md, "Share difficulty").

All hashes here are raw sha256d outputs (internal byte order); the block-explorer
form is the reverse.  Difficulty is pool "difficulty 1" (pdiff): 0xFFFF * 2**208
divided by the hash read as a little-endian 256-bit integer.
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import sha256

# Pool difficulty 1 target, "pdiff": 0x00000000FFFF0000...0000.
DIFF1_TARGET = 0xFFFF << 208
# Largest 256-bit hash; a zero hash (impossible in practice) is treated as this
# bound to keep the division defined.
_MAX_HASH = (1 << 256) - 1


def sha256d(data: bytes) -> bytes:
    """Double SHA-256, raw digest (internal byte order)."""
    return sha256(sha256(data).digest()).digest()


def merkle_root(coinbase_hash: bytes, branch: Iterable[bytes]) -> bytes:
    """Fold the stratum merkle branch onto the coinbase txid (all internal order)."""
    root = coinbase_hash
    for node in branch:
        root = sha256(sha256(root + node).digest()).digest()
    return root


def swap_prevhash_words(prevhash: bytes) -> bytes:
    """Stratum's prevhash to header bytes: byte-swap each of the eight 4-byte words.

    The operation is its own inverse, so it also turns header bytes back into the
    stratum form.
    """
    if len(prevhash) != 32:
        raise ValueError(f"prevhash must be 32 bytes, got {len(prevhash)}")
    return b"".join(prevhash[i : i + 4][::-1] for i in range(0, 32, 4))


def nbits_to_target(nbits: int) -> int:
    """Expand the compact nBits form into the 256-bit network target."""
    exponent = nbits >> 24
    mantissa = nbits & 0x007FFFFF
    if exponent <= 3:
        return mantissa >> (8 * (3 - exponent))
    return mantissa << (8 * (exponent - 3))


def difficulty_from_target(target: int) -> float:
    """Pool difficulty of a target (how many diff-1 shares one share is worth)."""
    return DIFF1_TARGET / target if target > 0 else float("inf")


def difficulty_from_hash_int(hash_int: int) -> float:
    """Difficulty of a share from its hash as a little-endian integer."""
    return DIFF1_TARGET / (hash_int or _MAX_HASH)
