"""Aggregate mode's extranonce space: the proxy's miners inside an upstream's extranonce2.

An upstream connection gives the proxy ``extranonce1`` and ``extranonce2_size``
bytes to roll.  The proxy splits those bytes:

    upstream extranonce2 = miner prefix (the miner's extranonce1) ‖ miner extranonce2 ‖ zero pad

and toward the miner it folds the upstream's extranonce1 into coinb1 and the
pad into coinb2, so the coinbase the miner hashes is byte for byte the one
the pool rebuilds from the forwarded submit:

    coinb1 ‖ up_en1 ‖ prefix ‖ miner_en2 ‖ pad ‖ coinb2

The prefix belongs to the proxy, not to the pool: every miner gets one that is
unique across the whole proxy (``PrefixPool``), of one width for every
upstream (``prefix_bytes``).  So a miner can move to another upstream (a
failover) without a new subscribe whenever that upstream's extranonce2 holds
its prefix and its extranonce2 (``fits``); what is left over becomes pad.

Miner extranonce2 sizes (``miner_extranonce2_size``): 4 bytes where the
upstream leaves room (4 bytes are 2**32 coinbases per job, far beyond what
an ASIC rolls between jobs; cgminer's maximum is 8 and Whatsminers break
above 8), less where it does not, never below 2 (some firmware then repeats
work; below 3 Whatsminers send duplicates, so the caller warns).
"""

from __future__ import annotations

from dataclasses import dataclass

PREFERRED_MINER_SIZE = 4
MIN_MINER_SIZE = 2
WARN_BELOW = 3


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one miner's bytes sit in one upstream's extranonce2."""

    prefix: bytes  # the miner's extranonce1, the proxy's
    miner_size: int  # the miner's extranonce2_size
    pad: int  # zero bytes after the miner's extranonce2

    @property
    def upstream_size(self) -> int:
        return len(self.prefix) + self.miner_size + self.pad

    def upstream_extranonce2(self, miner_extranonce2: bytes) -> bytes:
        """What the upstream's submit carries for the miner's extranonce2."""
        return self.prefix + miner_extranonce2 + bytes(self.pad)


def miner_extranonce2_size(upstream_size: int, prefix_bytes: int) -> int | None:
    """The extranonce2 size a new miner gets on an upstream; None if it cannot host one."""
    room = upstream_size - prefix_bytes
    if room < MIN_MINER_SIZE:
        return None
    # Exactly 4 where there is room, not more: a smaller extranonce2 fits more
    # upstreams, so the miner can be moved at a failover without a resubscribe.
    return min(room, PREFERRED_MINER_SIZE)


def fits(upstream_size: int, prefix: bytes, miner_size: int) -> Placement | None:
    """The miner's place on an upstream, keeping its extranonce1 and size; None if too small."""
    pad = upstream_size - len(prefix) - miner_size
    if pad < 0:
        return None
    return Placement(prefix=prefix, miner_size=miner_size, pad=pad)


class PrefixPool:
    """Miner extranonce1 values, unique across the proxy while in use.

    Handed out lowest-free-first after a rotating start, so that a prefix just
    released (a miner that reconnected) is not reused at once: a share the old
    connection submitted late can never be confused with the new miner's.
    """

    def __init__(self, prefix_bytes: int) -> None:
        if not 1 <= prefix_bytes <= 4:
            raise ValueError(f"prefix_bytes must be 1..4, got {prefix_bytes}")
        self.prefix_bytes = prefix_bytes
        self.capacity = 1 << (8 * prefix_bytes)
        self._used: set[int] = set()
        self._next = 0

    def __len__(self) -> int:
        return len(self._used)

    def take(self) -> bytes | None:
        """A free prefix, or None when all ``capacity`` are in use."""
        if len(self._used) >= self.capacity:
            return None
        n = self._next
        while n in self._used:
            n = (n + 1) % self.capacity
        self._used.add(n)
        self._next = (n + 1) % self.capacity
        return n.to_bytes(self.prefix_bytes, "big")

    def release(self, prefix: bytes) -> None:
        self._used.discard(int.from_bytes(prefix, "big"))
