"""TLV extension fields (spec §3.4.3; SRI ``parsers-sv2/src/tlv``; notes §3).

A TLV is ``U16 extension_type | U8 field_type | U16 length | value``, appended
after a message's fixed fields once the extension was negotiated.  Type and
length are little-endian as SRI sends them; the spec's example prints them
big-endian (notes §9.3) and we follow the implementation.
"""

from __future__ import annotations

from dataclasses import dataclass

from stratum_proxy.errors import LocalProtocolError
from stratum_proxy.sv2.errors import Sv2ProtocolError
from stratum_proxy.sv2.messages.base import EXTENSION_WORKER_HASHRATE_TRACKING
from stratum_proxy.sv2.types import Reader, Writer

TLV_HEADER_SIZE = 5  # U16 extension_type + U8 field_type + U16 length
TLV_FIELD_USER_IDENTITY = 0x01  # extension 0x0002: worker name on SubmitSharesExtended
MAX_USER_IDENTITY_TLV = 32  # bytes of UTF-8, extension 0x0002 spec


@dataclass(frozen=True, slots=True, kw_only=True)
class Tlv:
    """One TLV extension field appended to a message."""

    extension_type: int
    field_type: int
    value: bytes

    def push(self, writer: Writer) -> None:
        writer.push_u16(self.extension_type)
        writer.push_u8(self.field_type)
        if len(self.value) > 0xFFFF:
            raise LocalProtocolError(f"TLV value of {len(self.value)} bytes over the U16 length")
        writer.push_u16(len(self.value))
        writer.push_bytes(self.value)

    @classmethod
    def pull(cls, reader: Reader) -> Tlv:
        if reader.remaining < TLV_HEADER_SIZE:
            raise Sv2ProtocolError(f"TLV header needs 5 bytes, {reader.remaining} left")
        extension_type = reader.pull_u16()
        field_type = reader.pull_u8()
        value = reader.pull_bytes(reader.pull_u16())
        return cls(extension_type=extension_type, field_type=field_type, value=value)

    @classmethod
    def user_identity(cls, worker: str) -> Tlv:
        """Extension 0x0002 worker name; callers truncate to 32 bytes (truncate_utf8)."""
        value = worker.encode("utf-8")
        if len(value) > MAX_USER_IDENTITY_TLV:
            raise LocalProtocolError(f"user_identity TLV holds 32 bytes, got {len(value)}")
        return cls(
            extension_type=EXTENSION_WORKER_HASHRATE_TRACKING,
            field_type=TLV_FIELD_USER_IDENTITY,
            value=value,
        )
