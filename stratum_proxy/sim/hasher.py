"""The simulated miner's work: jobs from notify params and the nonce search."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from hashlib import sha256

from stratum_proxy.sim.chain import Template, swap_words


@dataclass(frozen=True, slots=True, kw_only=True)
class MinerJob:
    """A notified job plus the difficulty the miner had when it arrived."""

    template: Template
    difficulty: float


def template_from_notify(params: list[object]) -> Template:
    """Parse the nine mining.notify params; raises ValueError/TypeError on bad input."""
    if len(params) < 9:
        raise ValueError(f"mining.notify needs 9 params, got {len(params)}")
    job_id, prevhash, coinb1, coinb2, branch, version, nbits, ntime, clean = params[:9]
    if not isinstance(branch, list):
        raise ValueError("merkle branch is not a list")
    return Template(
        job_id=str(job_id),
        height=0,
        prevhash=swap_words(bytes.fromhex(str(prevhash))),
        coinb1=bytes.fromhex(str(coinb1)),
        coinb2=bytes.fromhex(str(coinb2)),
        branch=tuple(bytes.fromhex(str(node)) for node in branch),
        version=int(str(version), 16),
        nbits=int(str(nbits), 16),
        ntime=int(str(ntime), 16),
        clean=bool(clean),
    )


def spread_bits(counter: int, mask: int) -> int:
    """Deposit the low bits of ``counter`` into the set bits of ``mask`` (like x86 PDEP).

    Gives every extranonce2 its own distinct version bits inside the BIP310 mask.
    """
    result = 0
    bit = 0
    for position in range(32):
        if mask >> position & 1:
            if counter >> bit & 1:
                result |= 1 << position
            bit += 1
    return result


def search(
    header76: bytes, target: int, start: int, count: int, *, want_valid: bool = True
) -> int | None:
    """First nonce in [start, start+count) whose header hash is (or, with
    ``want_valid=False``, is not) at or below ``target``; None if there is none."""
    pack = struct.Struct("<I").pack
    first = sha256(header76[:64])  # the first block is the same for every nonce
    tail = header76[64:]
    end = min(start + count, 1 << 32)
    for nonce in range(start, end):
        inner = first.copy()
        inner.update(tail + pack(nonce))
        value = int.from_bytes(sha256(inner.digest()).digest(), "little")
        if (value <= target) is want_valid:
            return nonce
    return None


def header76(template: Template, prefix: bytes, version: int) -> bytes:
    """The header without its nonce: version ‖ prevhash ‖ root ‖ ntime ‖ nbits."""
    return struct.pack("<I", version) + prefix + struct.pack("<II", template.ntime, template.nbits)
