"""Pure helpers that turn SV2 jobs into share math (spec §5.3.16; notes §4.3, §5).

* BIP141 stripping of an extended job's coinbase parts (the txid, not the wtxid,
  goes into the merkle root).
* Merkle root of an extended job for a channel's full extranonce, and the
  :class:`stratum_proxy.shares.Job` view of it, so SV2 shares go through the same
  ``compute_share`` fast path as SV1 ones.
* Standard-channel shares (the job carries the merkle root itself).
* Targets: U256 fields are 32 raw bytes = a little-endian integer; difficulty is
  pool difficulty 1 ("pdiff"): ``DIFF1_TARGET / target``.
"""

from __future__ import annotations

import struct

from stratum_proxy.shares import DIFF1_TARGET, Job, ShareResult, merkle_root, sha256d
from stratum_proxy.shares.job import judge_header
from stratum_proxy.shares.math import nbits_to_target
from stratum_proxy.sv2.errors import Sv2ProtocolError
from stratum_proxy.sv2.messages import NewExtendedMiningJob, SetNewPrevHash

MAX_TARGET = (1 << 256) - 1
U256_SIZE = 32

# BIP141/BIP144 serialization: version(4) | marker 0x00 | flag (0x01) | inputs …
# outputs | witness | locktime(4).  A coinbase witness is exactly one 32-byte
# item (the witness reserved value), i.e. 01 20 <32 bytes> before the locktime.
_MARKER_OFFSET = 4
_FLAG_OFFSET = 5
_LOCKTIME_SIZE = 4
_COINBASE_WITNESS_HEAD = b"\x01\x20"
_COINBASE_WITNESS_SIZE = 2 + 32


class InvalidJobError(Sv2ProtocolError):
    """A job whose coinbase cannot be made into a txid.

    Not fatal: the frame was read whole, only this job is unusable (shares on it
    are recorded without a hash).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, fatal=False)


def strip_bip141(prefix: bytes, suffix: bytes) -> tuple[bytes, bytes]:
    """Coinbase prefix/suffix without segwit marker, flag and witness.

    The spec (§5.3.11) says pools MUST send stripped parts, but older SRI pools
    did not (notes §4.3, §9.7).  Rule as in SRI ``try_strip_bip141``: marker
    ``prefix[4] == 0`` with a non-zero flag means unstripped (a stripped
    coinbase has its input count, 1, there); then drop the two bytes and the
    34-byte witness before the locktime.  Unlike SRI we also check that the
    witness really is ``01 20``: cutting anything else would yield a wrong txid
    silently.  Already-stripped parts are returned unchanged.
    """
    if len(prefix) <= _FLAG_OFFSET:
        raise InvalidJobError(f"coinbase prefix of {len(prefix)} bytes ends before its inputs")
    if prefix[_MARKER_OFFSET] != 0 or prefix[_FLAG_OFFSET] == 0:
        return prefix, suffix
    witness_end = len(suffix) - _LOCKTIME_SIZE
    witness_start = witness_end - _COINBASE_WITNESS_SIZE
    if witness_start < 0:
        raise InvalidJobError(
            f"segwit coinbase suffix of {len(suffix)} bytes cannot hold witness and locktime"
        )
    if suffix[witness_start : witness_start + 2] != _COINBASE_WITNESS_HEAD:
        raise InvalidJobError(
            "segwit coinbase suffix does not end with a single 32-byte witness item"
            f" (found {suffix[witness_start : witness_start + 2].hex()})"
        )
    stripped_prefix = prefix[:_MARKER_OFFSET] + prefix[_FLAG_OFFSET + 1 :]
    return stripped_prefix, suffix[:witness_start] + suffix[witness_end:]


def coinbase_tx(prefix: bytes, extranonce_prefix: bytes, extranonce: bytes, suffix: bytes) -> bytes:
    """Spec §5.3.16: prefix ‖ extranonce_prefix ‖ extranonce ‖ suffix (stripped parts)."""
    return prefix + extranonce_prefix + extranonce + suffix


def extended_merkle_root(
    job: NewExtendedMiningJob, extranonce_prefix: bytes, extranonce: bytes
) -> bytes:
    """Merkle root (raw, header order) of ``job`` for one full extranonce.

    For a standard channel behind the proxy pass the channel's full
    ``extranonce_prefix`` and ``extranonce=b""``: that is the root its
    NewMiningJob carries.
    """
    prefix, suffix = strip_bip141(job.coinbase_tx_prefix, job.coinbase_tx_suffix)
    txid = sha256d(coinbase_tx(prefix, extranonce_prefix, extranonce, suffix))
    return merkle_root(txid, job.merkle_path)


def share_job(
    job: NewExtendedMiningJob,
    prev_hash: SetNewPrevHash,
    extranonce_prefix: bytes,
    pool_difficulty: float,
) -> Job:
    """The shares-package view of an active extended job.

    ``coinb1/coinb2`` are the stripped parts and ``extranonce1`` the channel's
    extranonce_prefix, so ``compute_share(job, extranonce, ntime, nonce, version)``
    hashes exactly the header an SV2 share commits to.  ``ntime`` is the job's
    min_ntime, or the SetNewPrevHash one for a future job.
    """
    prefix, suffix = strip_bip141(job.coinbase_tx_prefix, job.coinbase_tx_suffix)
    return Job(
        job_id=str(job.job_id),
        prevhash=prev_hash.prev_hash,  # SV2 prev_hash is already in header order
        coinb1=prefix,
        coinb2=suffix,
        merkle_branch=job.merkle_path,
        version=job.version,
        nbits=prev_hash.nbits,
        ntime=job.min_ntime if job.min_ntime is not None else prev_hash.min_ntime,
        clean_jobs=job.min_ntime is None,
        extranonce1=extranonce_prefix,
        pool_difficulty=pool_difficulty,
    )


def block_header(
    version: int, prev_hash: bytes, merkle_root: bytes, ntime: int, nbits: int, nonce: int
) -> bytes:
    """The 80-byte header; ``prev_hash`` and ``merkle_root`` are raw (header order)."""
    if len(prev_hash) != U256_SIZE or len(merkle_root) != U256_SIZE:
        raise ValueError("prev_hash and merkle_root must be 32 bytes")
    return (
        struct.pack("<I", version)
        + prev_hash
        + merkle_root
        + struct.pack("<III", ntime, nbits, nonce)
    )


def standard_share(
    merkle_root: bytes, prev_hash: bytes, nbits: int, version: int, ntime: int, nonce: int
) -> ShareResult:
    """Judge a SubmitSharesStandard: the job (NewMiningJob) gives the merkle root."""
    header = block_header(version, prev_hash, merkle_root, ntime, nbits, nonce)
    return judge_header(header, nbits_to_target(nbits), version)


def target_to_int(target: bytes) -> int:
    """A U256 target field as an integer (little-endian, notes §3)."""
    if len(target) != U256_SIZE:
        raise ValueError(f"a U256 target is 32 bytes, got {len(target)}")
    return int.from_bytes(target, "little")


def int_to_target(value: int) -> bytes:
    """An integer target as a U256 field."""
    if not 0 <= value <= MAX_TARGET:
        raise ValueError(f"target {value:#x} outside 0..2**256-1")
    return value.to_bytes(U256_SIZE, "little")


def target_to_difficulty(target: bytes | int) -> float:
    """Pool difficulty of a target: DIFF1_TARGET / target (inf for a zero target)."""
    value = target_to_int(target) if isinstance(target, bytes | bytearray) else target
    return DIFF1_TARGET / value if value > 0 else float("inf")


def target_from_difficulty(difficulty: float) -> int:
    """The integer target of a pool difficulty, floor(DIFF1_TARGET / difficulty), exactly.

    Uses the float's exact ratio so large targets are not rounded to 53 bits;
    tiny difficulties clamp to the largest 256-bit target.
    """
    if not difficulty > 0 or difficulty == float("inf"):
        raise ValueError(f"difficulty must be a positive finite number, got {difficulty!r}")
    numerator, denominator = difficulty.as_integer_ratio()
    return min(DIFF1_TARGET * denominator // numerator, MAX_TARGET)
