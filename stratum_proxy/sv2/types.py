"""Stratum V2 binary data types (spec §3.1, SRI ``binary-sv2``) as pull/push pairs.

``Reader.pull_<type>`` reads one value of a spec type from a payload and raises
:class:`Sv2ProtocolError` on anything malformed (short buffer, length over the
type's limit, invalid UTF-8); ``Writer.push_<type>`` appends one value and raises
:class:`LocalProtocolError` when *we* try to send something the type cannot hold.

Value mapping: unsigned integers are ``int``; BOOL is ``bool``; F32 is ``float``;
U256/PUBKEY/SIGNATURE/MAC and the B0_* types are ``bytes`` (U256 kept as the raw
32 wire bytes, i.e. the little-endian integer / header byte order); STR0_255 is
``str``; OPTION[T] is ``T | None``; SEQ*[T] is ``tuple[T, ...]``.

The ``Annotated`` aliases at the end (``U32``, ``B0_32``, …) attach the codec to a
field's type so that a message class reads like the spec's table.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from stratum_proxy.errors import LocalProtocolError
from stratum_proxy.sv2.errors import Sv2ProtocolError

T = TypeVar("T")

# Limits.  Each B/STR/SEQ type carries its bound in its name; the length prefix
# can express more than some of them allow, so the bound is checked explicitly.
MAX_B0_32 = 32  # extranonce fields: spec §3.1 caps B0_32 at 32 (SRI MAX_EXTRANONCE_LEN)
MAX_B0_255 = 255  # 1-byte length prefix
MAX_B0_64K = 0xFFFF  # 2-byte length prefix (coinbase prefix/suffix/outputs)
MAX_B0_16M = 0xFFFFFF  # 3-byte length prefix; also the frame's U24 payload bound
MAX_STR0_255 = 255  # 1-byte length prefix, counted in UTF-8 bytes, not characters
MAX_SEQ0_255 = 255  # 1-byte element count
MAX_SEQ0_64K = 0xFFFF  # 2-byte element count
U256_SIZE = 32
PUBKEY_SIZE = 32  # x-only secp256k1 key
SIGNATURE_SIZE = 64  # BIP340 Schnorr signature
MAC_SIZE = 16  # Poly1305 tag

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_F32 = struct.Struct("<f")


class Reader:
    """Cursor over one payload; every ``pull_*`` consumes exactly its wire size."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._data = bytes(data)
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def eof(self) -> bool:
        return self._pos >= len(self._data)

    def expect_end(self, what: str) -> None:
        """Reject trailing bytes: a peer that adds unknown fields is not the peer we think."""
        if self._pos != len(self._data):
            raise Sv2ProtocolError(f"{what}: {self.remaining} unexpected trailing bytes")

    def pull_bytes(self, size: int) -> bytes:
        end = self._pos + size
        if end > len(self._data):
            raise Sv2ProtocolError(f"short buffer: need {size} bytes, {self.remaining} left")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def pull_rest(self) -> bytes:
        return self.pull_bytes(self.remaining)

    def _pull_struct(self, fmt: struct.Struct) -> Any:
        if self._pos + fmt.size > len(self._data):
            raise Sv2ProtocolError(f"short buffer: need {fmt.size} bytes, {self.remaining} left")
        (value,) = fmt.unpack_from(self._data, self._pos)
        self._pos += fmt.size
        return value

    def pull_u8(self) -> int:
        return self.pull_bytes(1)[0]

    def pull_u16(self) -> int:
        return int(self._pull_struct(_U16))

    def pull_u24(self) -> int:
        return int.from_bytes(self.pull_bytes(3), "little")

    def pull_u32(self) -> int:
        return int(self._pull_struct(_U32))

    def pull_u64(self) -> int:
        return int(self._pull_struct(_U64))

    def pull_f32(self) -> float:
        return float(self._pull_struct(_F32))

    def pull_bool(self) -> bool:
        # Spec §3.1: only bit 0 is meaningful, receivers MUST ignore the others.
        return bool(self.pull_u8() & 1)

    def pull_u256(self) -> bytes:
        return self.pull_bytes(U256_SIZE)

    def pull_pubkey(self) -> bytes:
        return self.pull_bytes(PUBKEY_SIZE)

    def pull_signature(self) -> bytes:
        return self.pull_bytes(SIGNATURE_SIZE)

    def pull_mac(self) -> bytes:
        return self.pull_bytes(MAC_SIZE)

    def _pull_sized(self, size: int, limit: int, type_name: str) -> bytes:
        if size > limit:
            raise Sv2ProtocolError(f"{type_name} length {size} over its limit {limit}")
        return self.pull_bytes(size)

    def pull_b0_32(self) -> bytes:
        return self._pull_sized(self.pull_u8(), MAX_B0_32, "B0_32")

    def pull_b0_255(self) -> bytes:
        return self._pull_sized(self.pull_u8(), MAX_B0_255, "B0_255")

    def pull_b0_64k(self) -> bytes:
        return self._pull_sized(self.pull_u16(), MAX_B0_64K, "B0_64K")

    def pull_b0_16m(self) -> bytes:
        return self._pull_sized(self.pull_u24(), MAX_B0_16M, "B0_16M")

    def pull_str0_255(self) -> str:
        # Decision: STR0_255 must be valid UTF-8 (spec §3.1 recommends it; error
        # codes are ASCII).  Invalid bytes raise instead of being replaced, so a
        # decoded string always re-encodes to the exact bytes received and never
        # carries surrogates into logs or the store.
        raw = self._pull_sized(self.pull_u8(), MAX_STR0_255, "STR0_255")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Sv2ProtocolError(f"STR0_255 is not valid UTF-8: {raw!r}") from exc

    def pull_option(self, item: Callable[[Reader], T]) -> T | None:
        # OPTION[T] is SEQ0_1[T]: a count byte of 0 or 1, then the element.
        count = self.pull_u8()
        if count > 1:
            raise Sv2ProtocolError(f"OPTION count {count} is neither 0 nor 1")
        return item(self) if count else None

    def pull_option_u32(self) -> int | None:
        return self.pull_option(Reader.pull_u32)

    def pull_seq0_255(self, item: Callable[[Reader], T]) -> tuple[T, ...]:
        return tuple(item(self) for _ in range(self.pull_u8()))

    def pull_seq0_64k(self, item: Callable[[Reader], T]) -> tuple[T, ...]:
        return tuple(item(self) for _ in range(self.pull_u16()))

    def pull_seq0_255_u256(self) -> tuple[bytes, ...]:
        return self.pull_seq0_255(Reader.pull_u256)

    def pull_seq0_64k_u16(self) -> tuple[int, ...]:
        return self.pull_seq0_64k(Reader.pull_u16)

    def pull_seq0_64k_u32(self) -> tuple[int, ...]:
        return self.pull_seq0_64k(Reader.pull_u32)


class Writer:
    """Accumulates one payload; ``data()`` returns the bytes written so far."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def data(self) -> bytes:
        return bytes(self._buf)

    def push_bytes(self, value: bytes) -> None:
        self._buf += value

    def _push_struct(self, fmt: struct.Struct, value: Any, type_name: str) -> None:
        try:
            self._buf += fmt.pack(value)
        except (struct.error, OverflowError, TypeError) as exc:
            raise LocalProtocolError(f"{type_name} cannot hold {value!r}") from exc

    def _push_uint(self, value: int, size: int, type_name: str) -> None:
        if not isinstance(value, int) or not 0 <= value < 1 << (8 * size):
            raise LocalProtocolError(f"{type_name} cannot hold {value!r}")
        self._buf += value.to_bytes(size, "little")

    def push_u8(self, value: int) -> None:
        self._push_uint(value, 1, "U8")

    def push_u16(self, value: int) -> None:
        self._push_uint(value, 2, "U16")

    def push_u24(self, value: int) -> None:
        self._push_uint(value, 3, "U24")

    def push_u32(self, value: int) -> None:
        self._push_uint(value, 4, "U32")

    def push_u64(self, value: int) -> None:
        self._push_uint(value, 8, "U64")

    def push_f32(self, value: float) -> None:
        self._push_struct(_F32, value, "F32")

    def push_bool(self, value: bool) -> None:
        # Senders write exactly 0 or 1 (spec §3.1).
        self._buf.append(1 if value else 0)

    def _push_fixed(self, value: bytes, size: int, type_name: str) -> None:
        if not isinstance(value, bytes | bytearray) or len(value) != size:
            raise LocalProtocolError(f"{type_name} needs exactly {size} bytes, got {value!r}")
        self._buf += value

    def push_u256(self, value: bytes) -> None:
        self._push_fixed(value, U256_SIZE, "U256")

    def push_pubkey(self, value: bytes) -> None:
        self._push_fixed(value, PUBKEY_SIZE, "PUBKEY")

    def push_signature(self, value: bytes) -> None:
        self._push_fixed(value, SIGNATURE_SIZE, "SIGNATURE")

    def push_mac(self, value: bytes) -> None:
        self._push_fixed(value, MAC_SIZE, "MAC")

    def _push_sized(self, value: bytes, prefix: int, limit: int, type_name: str) -> None:
        if not isinstance(value, bytes | bytearray) or len(value) > limit:
            raise LocalProtocolError(f"{type_name} holds at most {limit} bytes, got {value!r}")
        self._push_uint(len(value), prefix, type_name)
        self._buf += value

    def push_b0_32(self, value: bytes) -> None:
        self._push_sized(value, 1, MAX_B0_32, "B0_32")

    def push_b0_255(self, value: bytes) -> None:
        self._push_sized(value, 1, MAX_B0_255, "B0_255")

    def push_b0_64k(self, value: bytes) -> None:
        self._push_sized(value, 2, MAX_B0_64K, "B0_64K")

    def push_b0_16m(self, value: bytes) -> None:
        self._push_sized(value, 3, MAX_B0_16M, "B0_16M")

    def push_str0_255(self, value: str) -> None:
        # Use truncate_utf8() first when the text comes from a peer (worker names).
        if not isinstance(value, str):
            raise LocalProtocolError(f"STR0_255 needs a str, got {value!r}")
        self._push_sized(value.encode("utf-8"), 1, MAX_STR0_255, "STR0_255")

    def push_option(self, value: T | None, item: Callable[[Writer, T], None]) -> None:
        if value is None:
            self._buf.append(0)
        else:
            self._buf.append(1)
            item(self, value)

    def push_option_u32(self, value: int | None) -> None:
        self.push_option(value, Writer.push_u32)

    def _push_seq(
        self, values: Iterable[T], item: Callable[[Writer, T], None], prefix: int, limit: int
    ) -> None:
        values = tuple(values)
        if len(values) > limit:
            raise LocalProtocolError(f"sequence holds at most {limit} items, got {len(values)}")
        self._push_uint(len(values), prefix, "SEQ count")
        for value in values:
            item(self, value)

    def push_seq0_255(self, values: Iterable[T], item: Callable[[Writer, T], None]) -> None:
        self._push_seq(values, item, 1, MAX_SEQ0_255)

    def push_seq0_64k(self, values: Iterable[T], item: Callable[[Writer, T], None]) -> None:
        self._push_seq(values, item, 2, MAX_SEQ0_64K)

    def push_seq0_255_u256(self, values: Iterable[bytes]) -> None:
        self.push_seq0_255(values, Writer.push_u256)

    def push_seq0_64k_u16(self, values: Iterable[int]) -> None:
        self.push_seq0_64k(values, Writer.push_u16)

    def push_seq0_64k_u32(self, values: Iterable[int]) -> None:
        self.push_seq0_64k(values, Writer.push_u32)


def truncate_utf8(text: str, limit: int = MAX_STR0_255) -> str:
    """Longest prefix of ``text`` whose UTF-8 form fits ``limit`` bytes (no split characters)."""
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


@dataclass(frozen=True, slots=True)
class Codec:
    """How one spec type is read and written; attached to fields via ``Annotated``."""

    name: str
    pull: Callable[[Reader], Any]
    push: Callable[[Writer, Any], None]


U8 = Annotated[int, Codec("U8", Reader.pull_u8, Writer.push_u8)]
U16 = Annotated[int, Codec("U16", Reader.pull_u16, Writer.push_u16)]
U24 = Annotated[int, Codec("U24", Reader.pull_u24, Writer.push_u24)]
U32 = Annotated[int, Codec("U32", Reader.pull_u32, Writer.push_u32)]
U64 = Annotated[int, Codec("U64", Reader.pull_u64, Writer.push_u64)]
F32 = Annotated[float, Codec("F32", Reader.pull_f32, Writer.push_f32)]
BOOL = Annotated[bool, Codec("BOOL", Reader.pull_bool, Writer.push_bool)]
U256 = Annotated[bytes, Codec("U256", Reader.pull_u256, Writer.push_u256)]
PUBKEY = Annotated[bytes, Codec("PUBKEY", Reader.pull_pubkey, Writer.push_pubkey)]
SIGNATURE = Annotated[bytes, Codec("SIGNATURE", Reader.pull_signature, Writer.push_signature)]
B0_32 = Annotated[bytes, Codec("B0_32", Reader.pull_b0_32, Writer.push_b0_32)]
B0_255 = Annotated[bytes, Codec("B0_255", Reader.pull_b0_255, Writer.push_b0_255)]
B0_64K = Annotated[bytes, Codec("B0_64K", Reader.pull_b0_64k, Writer.push_b0_64k)]
B0_16M = Annotated[bytes, Codec("B0_16M", Reader.pull_b0_16m, Writer.push_b0_16m)]
STR0_255 = Annotated[str, Codec("STR0_255", Reader.pull_str0_255, Writer.push_str0_255)]
OPTION_U32 = Annotated[
    int | None, Codec("OPTION[U32]", Reader.pull_option_u32, Writer.push_option_u32)
]
SEQ0_255_U256 = Annotated[
    tuple[bytes, ...], Codec("SEQ0_255[U256]", Reader.pull_seq0_255_u256, Writer.push_seq0_255_u256)
]
SEQ0_64K_U16 = Annotated[
    tuple[int, ...], Codec("SEQ0_64K[U16]", Reader.pull_seq0_64k_u16, Writer.push_seq0_64k_u16)
]
SEQ0_64K_U32 = Annotated[
    tuple[int, ...], Codec("SEQ0_64K[U32]", Reader.pull_seq0_64k_u32, Writer.push_seq0_64k_u32)
]
