"""Plaintext Stratum V2 frames: the 6-byte header, a sans-I/O decoder, the encoder.

Frame layout (spec §3.2, SRI ``framing-sv2/src/header.rs``; notes §1.1)::

    extension_type U16 LE | msg_type U8 | msg_length U24 LE | payload (msg_length bytes)

Bit 0x8000 of the extension_type word is ``channel_msg`` (on the wire: bit 7 of
byte 1).  The spec words it as "least significant bit … bit 15"; SRI and sv2-tp
both use the 0x8000 mask, so do we (notes §9.2).

The encrypted transport (noise.py) encrypts a whole header and the payload in
chunks; it uses :meth:`Header.decode` and :data:`FRAME_HEADER_SIZE` from here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Protocol

from stratum_proxy.errors import LocalProtocolError
from stratum_proxy.sv2.errors import Sv2ProtocolError

FRAME_HEADER_SIZE = 6
MAX_PAYLOAD = 2**24 - 1  # msg_length is a U24
CHANNEL_MSG_BIT = 0x8000
EXTENSION_MASK = 0x7FFF
CHANNEL_ID_SIZE = 4  # a channel message's payload starts with its U32 channel_id
# ext word U16 | msg_type U8 | msg_length as U16 (low) + U8 (high): the U24 in one call.
_pack_header = struct.Struct("<HBHB").pack


@dataclass(frozen=True, slots=True)
class Header:
    """One frame header; ``extension_type`` excludes the channel_msg bit.

    Not keyword-only: the transport layer builds headers positionally too.
    """

    extension_type: int
    msg_type: int
    msg_length: int
    channel_msg: bool

    SIZE: ClassVar[int] = FRAME_HEADER_SIZE

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> Header:
        """Parse the first 6 bytes of ``data`` (any further bytes are ignored)."""
        if len(data) < FRAME_HEADER_SIZE:
            raise Sv2ProtocolError(f"frame header needs 6 bytes, got {len(data)}")
        word = data[0] | data[1] << 8
        return cls(
            extension_type=word & EXTENSION_MASK,
            msg_type=data[2],
            msg_length=data[3] | data[4] << 8 | data[5] << 16,
            channel_msg=bool(word & CHANNEL_MSG_BIT),
        )

    def encode(self) -> bytes:
        return encode_header(self.extension_type, self.msg_type, self.msg_length, self.channel_msg)


def encode_header(extension_type: int, msg_type: int, msg_length: int, channel_msg: bool) -> bytes:
    """The 6 header bytes of a frame (``Header.encode`` without building a Header)."""
    if not 0 <= extension_type <= EXTENSION_MASK:
        raise LocalProtocolError(f"extension_type {extension_type:#x} over 15 bits")
    if not 0 <= msg_type <= 0xFF:
        raise LocalProtocolError(f"msg_type {msg_type:#x} over 8 bits")
    if not 0 <= msg_length <= MAX_PAYLOAD:
        raise LocalProtocolError(f"payload of {msg_length} bytes over the U24 limit")
    word = extension_type | (CHANNEL_MSG_BIT if channel_msg else 0)
    return _pack_header(word, msg_type, msg_length & 0xFFFF, msg_length >> 16)


class FramedMessage(Protocol):
    """Anything that can become a frame: known messages and :class:`UnknownMessage`."""

    @property
    def extension_type(self) -> int: ...

    @property
    def msg_type(self) -> int: ...

    @property
    def channel_msg(self) -> bool: ...

    def encode(self) -> bytes: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownMessage:
    """A frame we have no class for, kept byte for byte.

    Spec §3.2: a proxy forwards unknown messages with ``channel_msg`` set to the
    channel's other side, rewriting only the channel_id (first 4 payload bytes);
    unknown non-channel messages are discarded by the caller.
    """

    extension_type: int
    msg_type: int
    channel_msg: bool
    payload: bytes

    def encode(self) -> bytes:
        return self.payload

    @property
    def channel_id(self) -> int | None:
        """The channel a channel message addresses (None when not a channel message)."""
        if not self.channel_msg or len(self.payload) < CHANNEL_ID_SIZE:
            return None
        return int.from_bytes(self.payload[:CHANNEL_ID_SIZE], "little")

    def with_channel_id(self, channel_id: int) -> UnknownMessage:
        """The same message addressed to another channel (what a proxy forwards)."""
        if self.channel_id is None:
            raise LocalProtocolError("only a channel message has a channel_id to rewrite")
        return UnknownMessage(
            extension_type=self.extension_type,
            msg_type=self.msg_type,
            channel_msg=True,
            payload=channel_id.to_bytes(CHANNEL_ID_SIZE, "little") + self.payload[CHANNEL_ID_SIZE:],
        )


def encode_frame(msg: FramedMessage) -> bytes:
    """Header plus payload of ``msg``, ready for the wire (or for encryption)."""
    payload = msg.encode()
    return encode_header(msg.extension_type, msg.msg_type, len(payload), msg.channel_msg) + payload


class FrameDecoder:
    """Sans-I/O splitter of a plaintext byte stream into ``(header, payload)`` pairs.

    Use ``receive_data`` then ``next_frame`` until it returns None (h11 style): a
    fatal error then surfaces exactly after the last good frame was handled.
    ``feed`` does both at once; if an error follows good frames in the same call
    it returns those frames and raises the error on the next call, so no frame
    that arrived intact is lost.

    ``max_payload`` lets a listener refuse frames far larger than any message it
    expects before buffering them; a frame over it is fatal because the stream
    cannot be resynchronised without reading it.
    """

    __slots__ = ("_buf", "_error", "_header", "_max_payload")

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        if not 0 <= max_payload <= MAX_PAYLOAD:
            raise LocalProtocolError(f"max_payload must be within 0..{MAX_PAYLOAD}")
        self._buf = bytearray()
        self._header: Header | None = None
        self._error: Sv2ProtocolError | None = None
        self._max_payload = max_payload

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete frame held back; non-zero at EOF means a cut frame."""
        return len(self._buf) + (FRAME_HEADER_SIZE if self._header is not None else 0)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        self._raise_deferred()
        self._buf += data

    def next_frame(self) -> tuple[Header, bytes] | None:
        """The next complete frame, or None until more bytes arrive."""
        self._raise_deferred()
        if self._header is None:
            if len(self._buf) < FRAME_HEADER_SIZE:
                return None
            self._header = self._take_header()
        size = self._header.msg_length
        if len(self._buf) < size:
            return None
        frame = (self._header, bytes(self._buf[:size]))
        del self._buf[:size]
        self._header = None
        return frame

    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple[Header, bytes]]:
        """Add received bytes; return every frame they complete, in order."""
        self.receive_data(data)
        frames: list[tuple[Header, bytes]] = []
        try:
            while (frame := self.next_frame()) is not None:
                frames.append(frame)
        except Sv2ProtocolError as exc:
            if not frames:
                raise
            self._error = exc
        return frames

    def _raise_deferred(self) -> None:
        if self._error is not None:
            raise self._error

    def _take_header(self) -> Header:
        header = Header.decode(self._buf[:FRAME_HEADER_SIZE])
        if header.msg_length > self._max_payload:
            # Sticky: every later call fails the same way, the stream is lost.
            self._error = Sv2ProtocolError(
                f"frame of {header.msg_length} bytes over the {self._max_payload}-byte limit"
                f" (ext {header.extension_type:#06x} type {header.msg_type:#04x})"
            )
            raise self._error
        del self._buf[:FRAME_HEADER_SIZE]
        return header
