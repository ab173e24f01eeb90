"""Encrypted SV2 frames after the Noise handshake (SV2 spec §4.6, notes §1.2). Sans-I/O.

One plaintext frame (6-byte header + payload) goes on the wire as

    ENC(header6)                       22 bytes (6 + 16 MAC)
    ENC(chunk) for each payload chunk  each ≤ 65519 plaintext bytes, ≤ 65535 on the wire

Every AEAD call takes the next nonce of its direction (header and each chunk
separately), with empty associated data.  ``msg_length`` in the header is the
plaintext payload length; the ciphertext length follows from it.

A MAC failure means the stream is corrupt or forged: the decoder raises a fatal
Sv2ProtocolError and is unusable afterwards (the caller closes the connection).
"""

from __future__ import annotations

from stratum_proxy.errors import LocalProtocolError
from stratum_proxy.sv2.crypto import MAC_SIZE, MAX_NONCE, CipherState, CryptoError
from stratum_proxy.sv2.errors import Sv2ProtocolError
from stratum_proxy.sv2.framing import FRAME_HEADER_SIZE, MAX_PAYLOAD, Header

HEADER_SIZE = FRAME_HEADER_SIZE  # ext U16 | msg_type U8 | msg_length U24 (spec §3.2)
ENCRYPTED_HEADER_SIZE = HEADER_SIZE + MAC_SIZE  # 22
# SRI SV2_FRAME_CHUNK_SIZE: a ciphertext chunk never exceeds 65535 bytes.
CHUNK_SIZE = 65535
CHUNK_PLAINTEXT_SIZE = CHUNK_SIZE - MAC_SIZE  # 65519

__all__ = [
    "CHUNK_PLAINTEXT_SIZE",
    "CHUNK_SIZE",
    "ENCRYPTED_HEADER_SIZE",
    "MAX_PAYLOAD",
    "NoiseTransport",
    "encrypted_payload_size",
]


def encrypted_payload_size(length: int) -> int:
    """Bytes on the wire for a payload of ``length`` plaintext bytes (SRI encrypted_len)."""
    full, rest = divmod(length, CHUNK_PLAINTEXT_SIZE)
    return full * CHUNK_SIZE + (rest + MAC_SIZE if rest else 0)


def payload_length(header: bytes) -> int:
    return Header.decode(header).msg_length


class NoiseTransport:
    """Both directions of an established SV2 Noise channel.

    ``encrypt_frame`` turns one plaintext frame into wire bytes; ``feed`` takes
    wire bytes in any split and returns the complete plaintext frames.
    ``pending`` holds bytes that arrived behind the handshake; the first
    ``feed`` (``feed(b"")`` will do) decodes them.
    """

    def __init__(
        self,
        send: CipherState,
        recv: CipherState,
        *,
        handshake_hash: bytes = b"",
        max_payload: int = MAX_PAYLOAD,
        pending: bytes = b"",
    ) -> None:
        self._send = send
        self._recv = recv
        self.handshake_hash = handshake_hash
        self._max_payload = min(max_payload, MAX_PAYLOAD)
        self._buffer = bytearray(pending)  # received with the handshake's last bytes
        self._header: bytes | None = None  # decrypted header awaiting its payload
        self._failed: str | None = None

    # --- sending --------------------------------------------------------------

    def encrypt_frame(self, plain_frame: bytes) -> bytes:
        """Wire bytes for one plaintext frame (header + payload, msg_length consistent)."""
        if len(plain_frame) < HEADER_SIZE:
            raise LocalProtocolError(f"SV2 frame of {len(plain_frame)} bytes has no header")
        length = len(plain_frame) - HEADER_SIZE
        if payload_length(plain_frame) != length:
            raise LocalProtocolError(
                f"SV2 header says {payload_length(plain_frame)} payload bytes, frame has {length}"
            )
        chunks = -(-length // CHUNK_PLAINTEXT_SIZE)
        # Nonces n .. n+chunks are used; 2^64-1 itself is reserved (Noise §5.1).
        if self._send.nonce + chunks >= MAX_NONCE:
            raise LocalProtocolError("send nonce exhausted; the connection must be reopened")
        view = memoryview(plain_frame)
        out = [self._send.encrypt(b"", bytes(view[:HEADER_SIZE]))]
        for start in range(HEADER_SIZE, len(plain_frame), CHUNK_PLAINTEXT_SIZE):
            out.append(self._send.encrypt(b"", bytes(view[start : start + CHUNK_PLAINTEXT_SIZE])))
        return b"".join(out)

    # --- receiving ------------------------------------------------------------

    def feed(self, data: bytes) -> list[bytes]:
        """Plaintext frames completed by ``data`` (possibly none); raises on corruption."""
        if self._failed is not None:
            raise Sv2ProtocolError(f"SV2 stream already failed: {self._failed}")
        self._buffer += data
        frames: list[bytes] = []
        try:
            while (frame := self._maybe_next_frame()) is not None:
                frames.append(frame)
        except Sv2ProtocolError as exc:
            self._failed = str(exc)
            raise
        return frames

    def _maybe_next_frame(self) -> bytes | None:
        if self._header is None:
            if len(self._buffer) < ENCRYPTED_HEADER_SIZE:
                return None
            self._header = self._decrypt(ENCRYPTED_HEADER_SIZE, "frame header")
            length = payload_length(self._header)
            if length > self._max_payload:
                raise Sv2ProtocolError(
                    f"SV2 frame announces {length} payload bytes, limit is {self._max_payload}"
                )
        length = payload_length(self._header)
        if len(self._buffer) < encrypted_payload_size(length):
            return None
        parts = [self._header]
        remaining = length
        while remaining:
            chunk = min(remaining, CHUNK_PLAINTEXT_SIZE)
            parts.append(self._decrypt(chunk + MAC_SIZE, "frame payload"))
            remaining -= chunk
        self._header = None
        return b"".join(parts)

    def _decrypt(self, size: int, what: str) -> bytes:
        if self._recv.nonce >= MAX_NONCE:
            raise Sv2ProtocolError("receive nonce exhausted; the peer must reconnect")
        ciphertext = bytes(self._buffer[:size])
        try:
            plaintext = self._recv.decrypt(b"", ciphertext)
        except CryptoError as exc:
            raise Sv2ProtocolError(
                f"SV2 {what} failed authentication at nonce {self._recv.nonce}: {exc}"
            ) from None
        del self._buffer[:size]
        return plaintext

    @property
    def buffered(self) -> int:
        """Received wire bytes not yet returned in a frame (non-zero at EOF: cut frame)."""
        pending_header = 0 if self._header is None else ENCRYPTED_HEADER_SIZE
        return len(self._buffer) + pending_header
