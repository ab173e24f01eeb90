"""Options, verdict records and jobs of the simulated Stratum V2 pool."""

from __future__ import annotations

from dataclasses import dataclass

from stratum_proxy.sim.chain import REGTEST_NBITS, Template

MAX_TARGET = (1 << 256) - 1
# A fixed test authority key (secret 0x01..0x20); tests pin its public half.
TEST_AUTHORITY_SECRET = bytes(range(1, 33))
# SV2 SubmitShares.Error codes the pool can answer (SRI mining_sv2 constants).
ERROR_CODES = (
    "stale-share",
    "invalid-job-id",
    "difficulty-too-low",
    "duplicate-share",
    "bad-extranonce-size",
    "invalid-channel-id",
    "version-rolling-not-allowed",
    "invalid-share",
)


@dataclass(slots=True, kw_only=True)
class Sv2PoolConfig:
    """Everything a test can turn on the pool; defaults behave like a healthy SRI pool."""

    authority_secret: bytes = TEST_AUTHORITY_SECRET
    cert_validity_s: int = 3600
    difficulty: float = 1e-6  # tiny, so a Python miner finds shares in milliseconds
    extranonce_prefix_size: int = 4
    extranonce_size: int = 8  # granted (or the client's minimum if larger)
    grant_extranonce_size: int = 0  # > 0: grant exactly this, whatever was asked (a broken pool)
    nbits: int = REGTEST_NBITS
    branch_length: int = 3
    seed: int = 1
    group_channels: bool = True  # channels join a group; jobs go to the group id
    old_open_success: bool = False  # OpenExtendedMiningChannel.Success without group id
    segwit_coinbase: bool = False  # send prefix/suffix with marker, flag and witness
    version_rolling_allowed: bool = True
    batch_size: int = 1  # SubmitShares.Success after this many accepted shares
    batch_delay_s: float = 0.05  # ... or this long after the first unacknowledged one
    accept_any: bool = False  # load tests: well-formed shares are accepted unhashed
    record_judged: bool = True
    refuse_setup: str = ""  # answer SetupConnection.Error with this code
    refuse_open: str = ""  # answer OpenMiningChannel.Error with this code
    refuse_users: tuple[str, ...] = ()  # channels opened under these: "unknown-user"
    # --- handshake / transport faults ---
    sign_with: bytes | None = None  # a different authority secret: "wrong key"
    cert_age_s: float = 0.0  # certificate issued this long ago (> validity: expired)
    tamper_act2: bool = False  # flip a bit in the encrypted static key of act 2
    corrupt_frame: int = 0  # flip a bit in the Nth encrypted frame sent (1-based)
    answer_shares: bool = True  # False: never answer a submit


@dataclass(frozen=True, slots=True, kw_only=True)
class Sv2Judged:
    """One SubmitSharesExtended as the pool judged it."""

    connection: int
    channel_id: int
    sequence_number: int
    job_id: int
    extranonce: str
    ntime: int
    nonce: int
    version: int
    hash_hex: str  # '' when not built (unknown job/channel, accept_any)
    difficulty: float
    pool_difficulty: float
    accepted: bool
    error_code: str
    user_identity: str


@dataclass(slots=True, kw_only=True)
class PoolJob:
    job_id: int
    template: Template
    epoch: int  # which prev_hash it belongs to
    future: bool
