"""Pure share math: header rebuild, sha256d, difficulty, per-job caches. No I/O."""

from stratum_proxy.shares.job import (
    Job,
    ShareResult,
    compute_share,
    hex_u32,
    rolled_version,
    submitted_share,
)
from stratum_proxy.shares.math import (
    DIFF1_TARGET,
    difficulty_from_hash_int,
    difficulty_from_target,
    merkle_root,
    nbits_to_target,
    sha256d,
    swap_prevhash_words,
)

__all__ = [
    "DIFF1_TARGET",
    "Job",
    "ShareResult",
    "compute_share",
    "difficulty_from_hash_int",
    "difficulty_from_target",
    "hex_u32",
    "merkle_root",
    "nbits_to_target",
    "rolled_version",
    "sha256d",
    "submitted_share",
    "swap_prevhash_words",
]
