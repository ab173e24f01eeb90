"""Block-template pieces for the simulated pool and miners.

Written apart from ``stratum_proxy.sv1`` and ``stratum_proxy.shares.job`` on
purpose: the test peers are the oracle the proxy is checked against, so they
rebuild coinbases and headers with their own code and only borrow the hash
primitives (sha256d, nbits_to_target, DIFF1_TARGET).
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from fractions import Fraction

from stratum_proxy.shares.math import DIFF1_TARGET, nbits_to_target, sha256d

# Regtest's proof-of-work limit: about half of all hashes meet it.
REGTEST_NBITS = 0x207FFFFF
# BIP9 top bits: "version bits" signalling, what every current pool sends.
BASE_VERSION = 0x20000000
# The BIP310 mask pools offer in practice (bits 13..28).
DEFAULT_VERSION_MASK = 0x1FFFE000
_COINBASE_TAG = b"/stratum-proxy-sim/"
# A P2WPKH output paying 50 BTC to a fixed key hash.
_OUTPUT = struct.pack("<Q", 50 * 100_000_000) + b"\x16\x00\x14" + bytes(range(20))


def share_target(difficulty: float) -> int:
    """Exact share target for a pool difficulty (no float rounding of the 256-bit value)."""
    ratio = Fraction(difficulty)
    if ratio <= 0:
        raise ValueError(f"difficulty must be positive, got {difficulty}")
    return DIFF1_TARGET * ratio.denominator // ratio.numerator


def hash_difficulty(hash_int: int) -> float:
    """Pool difficulty of a header hash read as a little-endian integer."""
    return DIFF1_TARGET / (hash_int or 1)


def swap_words(data: bytes) -> bytes:
    """Byte-swap every 4-byte word: stratum prevhash form <-> header byte order."""
    return b"".join(data[i : i + 4][::-1] for i in range(0, len(data), 4))


def bip34_height_push(height: int) -> bytes:
    """The scriptSig push of the block height required by BIP34 (minimal LE encoding)."""
    body = height.to_bytes(max(1, (height.bit_length() + 8) // 8), "little")
    return bytes([len(body)]) + body


def split_coinbase(height: int, extranonce_size: int) -> tuple[bytes, bytes]:
    """coinb1/coinb2 of a one-output coinbase; extranonce1+2 end the scriptSig."""
    script_head = bip34_height_push(height) + bytes([len(_COINBASE_TAG)]) + _COINBASE_TAG
    script_len = len(script_head) + extranonce_size
    coinb1 = (
        struct.pack("<I", 1)  # tx version
        + b"\x01"  # one input: the coinbase
        + b"\x00" * 32
        + b"\xff\xff\xff\xff"  # null prevout
        + bytes([script_len])
        + script_head
    )
    coinb2 = b"\xff\xff\xff\xff" + b"\x01" + _OUTPUT + b"\x00\x00\x00\x00"
    return coinb1, coinb2


@dataclass(frozen=True, slots=True, kw_only=True)
class Template:
    """One job as the pool hands it out (the same for every connection)."""

    job_id: str
    height: int
    prevhash: bytes  # header byte order
    coinb1: bytes
    coinb2: bytes
    branch: tuple[bytes, ...]
    version: int
    nbits: int
    ntime: int
    clean: bool

    def notify_params(self) -> list[object]:
        """The nine mining.notify params (stratum encodings)."""
        return [
            self.job_id,
            swap_words(self.prevhash).hex(),
            self.coinb1.hex(),
            self.coinb2.hex(),
            [node.hex() for node in self.branch],
            f"{self.version:08x}",
            f"{self.nbits:08x}",
            f"{self.ntime:08x}",
            self.clean,
        ]

    def header_prefix(self, extranonce1: bytes, extranonce2: bytes) -> bytes:
        """prevhash ‖ merkle root: header bytes 4..68, fixed for one extranonce2."""
        root = sha256d(self.coinb1 + extranonce1 + extranonce2 + self.coinb2)
        for node in self.branch:
            root = sha256d(root + node)
        return self.prevhash + root


def header_hash_int(prefix: bytes, version: int, ntime: int, nbits: int, nonce: int) -> int:
    """sha256d of the 80-byte header, as the little-endian integer compared to targets."""
    header = struct.pack("<I", version) + prefix + struct.pack("<III", ntime, nbits, nonce)
    return int.from_bytes(sha256d(header), "little")


def network_target(nbits: int) -> int:
    return nbits_to_target(nbits)


def fake_branch(rng: random.Random, count: int) -> tuple[bytes, ...]:
    """Merkle branch of ``count`` made-up transaction hashes."""
    return tuple(rng.randbytes(32) for _ in range(count))
