"""A mining job as the miner sees it, and the per-share computation on it.

The fast path: for each submit the only work is the coinbase hash and merkle
fold (cached per extranonce2, since miners resubmit on the same extranonce2
with new nonces) plus one 80-byte header hash.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from hashlib import sha256
from typing import NamedTuple

from stratum_proxy.shares.math import (
    DIFF1_TARGET,
    difficulty_from_target,
    nbits_to_target,
)

# Merkle roots kept per job.  A miner rolls extranonce2 slowly (one value covers
# 2**32 nonces times the version/ntime space), so a handful of entries per job
# already catches every repeat; the bound keeps a hostile miner from growing it.
_ROOT_CACHE_SIZE = 64
_MAX_HASH = (1 << 256) - 1
# version, prevhash, merkle root, ntime, nbits, nonce: the 80-byte header in one call.
_pack_header = struct.Struct("<I32s32sIII").pack
_new_result = tuple.__new__  # ShareResult's own __new__ adds a Python call per share


class ShareResult(NamedTuple):
    """What one share's header hashes to (a tuple: built once per share, so kept cheap)."""

    hash_int: int  # sha256d(header) read as a little-endian integer
    hash_hex: str  # block-explorer order (reversed digest) hex
    difficulty: float
    is_block: bool
    version: int  # the header's version (after BIP310 rolling)

    def meets(self, target: int) -> bool:
        """Exact (integer) comparison against a target: doubles can round."""
        return self.hash_int <= target


@dataclass(slots=True, eq=False)
class Job:
    """One mining.notify (or an SV2 extended job rendered the same way).

    ``prevhash`` is in header byte order (already word-swapped from stratum's
    form); ``merkle_branch`` entries are raw 32-byte nodes; ``version``,
    ``nbits`` and ``ntime`` are the integers of their big-endian hex.
    ``extranonce1`` and ``pool_difficulty`` are captured from the connection when
    the job arrived: both apply to jobs sent after they changed.
    """

    job_id: str
    prevhash: bytes
    coinb1: bytes
    coinb2: bytes
    merkle_branch: tuple[bytes, ...]
    version: int
    nbits: int
    ntime: int
    clean_jobs: bool
    extranonce1: bytes
    pool_difficulty: float
    network_target: int = field(init=False)
    network_difficulty: float = field(init=False)
    extranonce1_hex: str = field(init=False)
    _roots: dict[bytes, bytes] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.network_target = nbits_to_target(self.nbits)
        self.network_difficulty = difficulty_from_target(self.network_target)
        self.extranonce1_hex = self.extranonce1.hex()
        self._roots = {}

    def merkle_root(self, extranonce2: bytes) -> bytes:
        """Merkle root for this job and extranonce2 (cached)."""
        root = self._roots.get(extranonce2)
        if root is None:
            coinbase = self.coinb1 + self.extranonce1 + extranonce2 + self.coinb2
            root = sha256(sha256(coinbase).digest()).digest()
            for node in self.merkle_branch:
                root = sha256(sha256(root + node).digest()).digest()
            if len(self._roots) >= _ROOT_CACHE_SIZE:
                self._roots.pop(next(iter(self._roots)))
            self._roots[extranonce2] = root
        return root

    def header(self, extranonce2: bytes, ntime: int, nonce: int, version: int) -> bytes:
        """The 80-byte block header for a share on this job."""
        root = self._roots.get(extranonce2) or self.merkle_root(extranonce2)
        return _pack_header(version, self.prevhash, root, ntime, self.nbits, nonce)


def rolled_version(job_version: int, mask: int, version_bits: int | None) -> int:
    """BIP310: nVersion = (job & ~mask) | (bits & mask); no bits means no rolling."""
    if version_bits is None:
        return job_version
    return (job_version & ~mask & 0xFFFFFFFF) | (version_bits & mask)


def compute_share(
    job: Job, extranonce2: bytes, ntime: int, nonce: int, version: int
) -> ShareResult:
    """Rebuild the header of a share and judge it.

    ``version`` is the final header version (see ``rolled_version``).
    """
    return judge_header(job.header(extranonce2, ntime, nonce, version), job.network_target, version)


def judge_header(header: bytes, network_target: int, version: int) -> ShareResult:
    """Hash an 80-byte header and judge it: the one place a share's difficulty is computed.

    ``version`` is the header's own (its first four bytes), passed to save the unpacking.
    """
    digest = sha256(sha256(header).digest()).digest()
    hash_int = int.from_bytes(digest, "little")
    return _new_result(
        ShareResult,
        (
            hash_int,
            digest[::-1].hex(),
            DIFF1_TARGET / (hash_int or _MAX_HASH),
            hash_int <= network_target,
            version,
        ),
    )


def hex_u32(text: str) -> int:
    """Exactly 8 hex digits (a submit's ntime, nonce or version bits) -> int."""
    raw = bytes.fromhex(text)
    # fromhex skips spaces: "1f 2e 3d" is 8 chars but 3 bytes, hence both checks.
    if len(text) != 8 or len(raw) != 4:
        raise ValueError(f"expected 8 hex digits, got {text[:80]!r}")
    return int.from_bytes(raw, "big")


def submitted_share(
    job: Job, extranonce2: bytes, ntime: str, nonce: str, version_bits: str | None, mask: int
) -> ShareResult:
    """A share as an SV1 submit gives it: ntime, nonce and version bits as hex text.

    The one path from a submit to its hash and difficulty, for every mode
    (passthrough, translate, ...).  ``extranonce2`` is what follows the job's
    extranonce1 in the coinbase; ``mask`` is the BIP310 mask in force (0 when
    none was negotiated: the bits then change nothing; no bits, no rolling).
    ValueError naming the field that is not 8 hex digits.
    """
    # The hex fields are decoded in one call; fromhex skips spaces ("1f 2e 3d"
    # is 8 characters but 3 bytes), hence the check of both lengths.
    if version_bits is None:
        raw = _fromhex(ntime + nonce) if len(ntime) == 8 and len(nonce) == 8 else b""
        if len(raw) != 8:
            raise _bad_fields(ntime, nonce, version_bits)
        time_, nonce_ = _unpack_2(raw)
        version = job.version
    else:
        raw = (
            _fromhex(ntime + nonce + version_bits)
            if len(ntime) == 8 and len(nonce) == 8 and len(version_bits) == 8
            else b""
        )
        if len(raw) != 12:
            raise _bad_fields(ntime, nonce, version_bits)
        time_, nonce_, bits = _unpack_3(raw)
        version = (job.version & ~mask & 0xFFFFFFFF) | (bits & mask)
    return compute_share(job, extranonce2, time_, nonce_, version)


_fromhex = bytes.fromhex
_unpack_2 = struct.Struct(">II").unpack
_unpack_3 = struct.Struct(">III").unpack


def _bad_fields(ntime: str, nonce: str, version_bits: str | None) -> ValueError:
    """Which field of a submit is not 8 hex digits (the error path only)."""
    for name, text in (("ntime", ntime), ("nonce", nonce), ("version bits", version_bits)):
        if text is None:
            continue
        try:
            hex_u32(text)
        except ValueError:
            return ValueError(f"{name}: expected 8 hex digits, got {text[:80]!r}")
    return ValueError("ntime, nonce and version bits must be 8 hex digits each")
