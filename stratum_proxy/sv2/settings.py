"""Settings of translate mode (SV1 miners onto a Stratum V2 pool).

Lives under ``Settings.sv2`` (TOML ``[sv2]``, env ``STRATUM_PROXY_SV2__*``).
Defaults follow what the SRI translator ships with (notes §5) where that is
sound, and say so where we differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stratum_proxy.sv2.cert import TIME_LEEWAY_S

# BIP310's customary mask (bits 13..28).  SRI offers 0x1fffffe0 (notes §9.9),
# which lets miners roll bits 5..12 that some pools do not accept.
DEFAULT_VERSION_MASK = 0x1FFFE000


class Sv2Settings(BaseModel):
    """How the proxy talks to SV2 pools and what the SV1 miners behind it get."""

    model_config = ConfigDict(extra="forbid")  # a typo must not silently use a default

    extranonce_mode: Literal["per_miner", "aggregated"] = Field(
        default="per_miner",
        description=(
            "per_miner: one extended channel per miner (the pool sees each miner, and each "
            "gets the pool's own target); aggregated: one channel for all miners of a pool "
            "connection, the proxy splits its extranonce space"
        ),
    )
    authority_key: str = Field(
        default="",
        description="Authority public key (base58check) for stratum2+tcp URLs that carry none",
    )
    cert_leeway_s: float = Field(
        default=TIME_LEEWAY_S, ge=0, description="Clock skew tolerated on the pool certificate"
    )
    user_identity: str = Field(
        default="",
        description=(
            "Account sent as the channel's user_identity; per_miner appends .minerN "
            "(empty: the channel is named after the proxy)"
        ),
    )
    extranonce2_size: int = Field(
        default=4, ge=2, le=16, description="extranonce2 bytes each SV1 miner rolls"
    )
    aggregated_local_bytes: int = Field(
        default=2,
        ge=1,
        le=4,
        description="Extranonce bytes the proxy uses to tell miners apart in aggregated mode",
    )
    nominal_hashrate_hs: float = Field(
        default=100e12, gt=0, description="Expected hash rate of one miner (h/s), told to the pool"
    )
    version_mask: int = Field(
        default=DEFAULT_VERSION_MASK, ge=0, le=0xFFFFFFFF, description="BIP310 mask offered"
    )
    handshake_timeout_s: float = Field(
        default=10.0, gt=0, description="Noise handshake plus SetupConnection must finish by then"
    )
    vendor: str = Field(default="stratum-proxy", max_length=255)
    # SV2 miners (a ``sv2=host:port`` listener): the proxy is their pool.
    authority_key_file: Path | None = Field(
        default=None,
        description="the proxy's own authority key (stratum-proxy keys generate), mode 600",
    )
    miner_max_frame_bytes: int = Field(
        default=16 * 1024, ge=1024, le=(1 << 24) - 1,
        description="an SV2 miner's frame larger than this closes its connection",
    )  # fmt: skip
    max_channels_per_connection: int = Field(
        default=64, ge=1, le=65_536,
        description="channels one SV2 miner connection may open (each holds an extranonce "
        "prefix); one more gets OpenMiningChannel.Error max-channels-reached",
    )  # fmt: skip
    cert_validity_s: int = Field(
        default=86_400, ge=60, le=10 * 365 * 86_400,
        description="validity of the certificate signed for each miner's handshake",
    )  # fmt: skip

    @field_validator("version_mask", mode="before")
    @classmethod
    def _hex_mask(cls, value: object) -> object:
        # Operators write masks in hex, as miners and pools print them.
        if isinstance(value, str):
            try:
                return int(value, 16)
            except ValueError:
                raise ValueError(f"{value!r} is not a hex mask, e.g. 0x1fffe000") from None
        return value
