"""SV2 extended jobs as SV1 miners see them, and SV2 verdicts as SV1 answers.

Field mapping (notes §5, as the SRI translator does it):

* job_id   = the SV2 job_id in decimal
* prevhash = SV2 prev_hash (header order) with every 4-byte word byte-swapped
* coinb1   = coinbase_tx_prefix, coinb2 = coinbase_tx_suffix, both BIP141-stripped
  (the txid goes into the merkle root; some pools still send the witness form)
* extranonce1 (per miner) = channel extranonce_prefix ‖ the proxy's local bytes,
  so coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2 is exactly the SV2 coinbase
* merkle_branch = the raw 32-byte nodes, version/nbits as 8 hex digits
* ntime = the job's min_ntime, or the SetNewPrevHash min_ntime for a future job.
  Not "now": a pool accepts ntime only up to min_ntime + seconds since the
  prev_hash (notes §4.3), and our clock may run ahead of the pool's.
* clean_jobs = true exactly when the job came with a new prev_hash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stratum_proxy.shares import Job, swap_prevhash_words
from stratum_proxy.sv1 import codes
from stratum_proxy.sv2.jobs import share_job, target_to_difficulty
from stratum_proxy.sv2.messages import NewExtendedMiningJob, SetNewPrevHash

SV1_OTHER = codes.OTHER
SV1_JOB_NOT_FOUND = codes.JOB_NOT_FOUND
SV1_DUPLICATE = codes.DUPLICATE
SV1_LOW_DIFFICULTY = codes.LOW_DIFFICULTY
SV1_UNAUTHORIZED = codes.UNAUTHORIZED
SV1_NOT_SUBSCRIBED = codes.NOT_SUBSCRIBED


def sv1_error_code(sv2_error_code: str) -> int:
    """The SV1 code a miner's firmware classifies like this SV2 error code."""
    return codes.from_sv2(sv2_error_code)


@dataclass(slots=True, eq=False)
class TranslatedJob:
    """One SV2 job activated on a channel, ready for share math and for notify.

    ``job`` is the shares-package view (extranonce1 = the channel's
    extranonce_prefix at activation; miners add local bytes + extranonce2).
    ``target`` is the channel target in force when the job was sent.
    """

    sv2_job_id: int
    job: Job
    target: int
    version_rolling_allowed: bool
    # The target's difficulty, worked out once: every share's row needs it.
    difficulty: float = field(init=False)

    def __post_init__(self) -> None:
        self.difficulty = target_to_difficulty(self.target)

    def notify_params(self, clean: bool) -> list[Any]:
        job = self.job
        return [
            job.job_id,
            swap_prevhash_words(job.prevhash).hex(),
            job.coinb1.hex(),
            job.coinb2.hex(),
            [node.hex() for node in job.merkle_branch],
            f"{job.version:08x}",
            f"{job.nbits:08x}",
            f"{job.ntime:08x}",
            clean,
        ]


def translate_job(
    job: NewExtendedMiningJob, prev_hash: SetNewPrevHash, extranonce_prefix: bytes, target: int
) -> TranslatedJob:
    """Raises InvalidJobError when the coinbase cannot be stripped to a txid."""
    view = share_job(job, prev_hash, extranonce_prefix, target_to_difficulty(target))
    return TranslatedJob(
        sv2_job_id=job.job_id,
        job=view,
        target=target,
        version_rolling_allowed=job.version_rolling_allowed,
    )


def parse_job_id(text: str) -> int | None:
    """The SV2 job id of an SV1 job_id string, None if it is not one of ours."""
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        return None
    value = int(text)
    return value if value < 1 << 32 else None
