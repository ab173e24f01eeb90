"""Encrypted SV2 frames after the Noise handshake (SV2 spec §4.6, notes §1.2). Sans-I/O.

One plaintext frame (6-byte header + payload) goes on the wire as

    ENC(header6)                       22 bytes (6 + 16 MAC)
    ENC(chunk) for each payload chunk  each ≤ 65519 plaintext bytes, ≤ 65535 on the wire

Every AEAD call takes the next nonce of its direction (header and each chunk
separately), with empty associated data.  ``msg_length`` in the header is the
plaintext payload length; the ciphertext length follows from it.

A MAC failure means the stream is corrupt or forged: the decoder raises a fatal
Sv2ProtocolError and is unusable afterwards (the caller closes the connection).

Every share crosses this layer twice (its submit and its verdict), so both
directions work on slices of the bytes at hand: a frame is encrypted as its
header and its payload without joining them first (``encrypt_parts``), and
received bytes are decrypted in place, through memoryviews, with only an
incomplete frame's bytes kept for the next call.
"""

from __future__ import annotations

from stratum_proxy.errors import LocalProtocolError
from stratum_proxy.sv2.crypto import MAC_SIZE, MAX_NONCE, CipherState, CryptoError
from stratum_proxy.sv2.errors import Sv2ProtocolError
from stratum_proxy.sv2.framing import FRAME_HEADER_SIZE, MAX_PAYLOAD

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


def take_chunks(out: list[bytes]) -> bytes:
    """The wire bytes queued in ``out``, emptied: the usual single chunk as it is,
    without joining or copying it."""
    if not out:
        return b""
    data = out[0] if len(out) == 1 else b"".join(out)
    out.clear()
    return data


def encrypted_payload_size(length: int) -> int:
    """Bytes on the wire for a payload of ``length`` plaintext bytes (SRI encrypted_len)."""
    full, rest = divmod(length, CHUNK_PLAINTEXT_SIZE)
    return full * CHUNK_SIZE + (rest + MAC_SIZE if rest else 0)


def payload_length(header: bytes | bytearray | memoryview) -> int:
    """``msg_length`` of a 6-byte plaintext header (the U24 at bytes 3..5)."""
    if len(header) < HEADER_SIZE:
        raise Sv2ProtocolError(f"frame header needs 6 bytes, got {len(header)}")
    return header[3] | header[4] << 8 | header[5] << 16


class NoiseTransport:
    """Both directions of an established SV2 Noise channel.

    ``encrypt_frame`` turns one plaintext frame into wire bytes (``encrypt_parts``
    does the same for a header and a payload held apart); ``feed`` takes wire
    bytes in any split and returns the complete plaintext frames (``feed_parts``:
    each as its header and its payload).  ``pending`` holds bytes that arrived
    behind the handshake; the first ``feed`` (``feed(b"")`` will do) decodes them.
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
        self._buffer = bytearray(pending)  # wire bytes of an incomplete frame
        self._header: bytes | None = None  # decrypted header awaiting its payload
        # Wire bytes the next step needs (an encrypted header, or the payload of
        # ``_header``): fewer buffered bytes than this are only kept.
        self._need = ENCRYPTED_HEADER_SIZE
        self._failed: str | None = None

    # --- sending --------------------------------------------------------------

    def encrypt_frame(self, plain_frame: bytes) -> bytes:
        """Wire bytes for one plaintext frame (header + payload, msg_length consistent)."""
        if len(plain_frame) < HEADER_SIZE:
            raise LocalProtocolError(f"SV2 frame of {len(plain_frame)} bytes has no header")
        view = memoryview(plain_frame)
        return self.encrypt_parts(view[:HEADER_SIZE], view[HEADER_SIZE:])

    def encrypt_parts(
        self, header: bytes | memoryview, payload: bytes | bytearray | memoryview
    ) -> bytes:
        """Wire bytes for the frame ``header`` (6 bytes) + ``payload``, never joined in memory."""
        length = len(payload)
        if len(header) != HEADER_SIZE:
            raise LocalProtocolError(f"SV2 frame header of {len(header)} bytes, not 6")
        if header[3] | header[4] << 8 | header[5] << 16 != length:
            raise LocalProtocolError(
                f"SV2 header says {payload_length(header)} payload bytes, frame has {length}"
            )
        send = self._send
        chunks = -(-length // CHUNK_PLAINTEXT_SIZE)
        # Nonces n .. n+chunks are used; 2^64-1 itself is reserved (Noise §5.1).
        if send.nonce + chunks >= MAX_NONCE:
            raise LocalProtocolError("send nonce exhausted; the connection must be reopened")
        if chunks == 1:  # every message but very large jobs: the header and one chunk
            return send.encrypt_two(header, payload)
        if not chunks:
            return send.encrypt(b"", header)
        view = memoryview(payload)
        out = [send.encrypt(b"", header)]
        for start in range(0, length, CHUNK_PLAINTEXT_SIZE):
            out.append(send.encrypt(b"", view[start : start + CHUNK_PLAINTEXT_SIZE]))
        return b"".join(out)

    # --- receiving ------------------------------------------------------------

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Plaintext frames completed by ``data`` (possibly none); raises on corruption."""
        return [header + payload for header, payload in self.feed_parts(data)]

    def feed_parts(self, data: bytes | bytearray | memoryview) -> list[tuple[bytes, bytes]]:
        """``feed``, each frame as (its 6-byte header, its payload)."""
        frames, error = self.feed_parts_until_error(data)
        if error is not None:
            raise error
        return frames

    def feed_parts_until_error(
        self, data: bytes | bytearray | memoryview
    ) -> tuple[list[tuple[bytes, bytes]], Sv2ProtocolError | None]:
        """``feed_parts``, with the frames that came before a corrupted one: they were
        sent whole and authenticated (a miner's share in them still gets its row), and
        the error, which the caller raises once it has handled them."""
        if self._failed is not None:
            return [], Sv2ProtocolError(f"SV2 stream already failed: {self._failed}")
        buffer = self._buffer
        if buffer:
            buffer += data
            if len(buffer) < self._need:
                return [], None
            data = bytes(buffer)
            buffer.clear()
        elif len(data) < self._need:
            buffer += data
            return [], None
        elif type(data) is not bytes:
            data = bytes(data)  # a view of a caller's bytearray must not outlive this call
        frames: list[tuple[bytes, bytes]] = []
        try:
            used = self._decrypt_frames(memoryview(data), frames)
        except Sv2ProtocolError as exc:
            self._failed = str(exc)
            return frames, exc
        if used < len(data):
            buffer += memoryview(data)[used:]
        return frames, None

    def _decrypt_frames(self, view: memoryview, frames: list[tuple[bytes, bytes]]) -> int:
        """Append every complete frame in ``view``; returns the bytes used."""
        decrypt = self._recv.decrypt_no_ad  # every slice holds its MAC
        end = len(view)
        pos = 0
        header = self._header
        what = "frame header"  # what is being decrypted, for the error
        try:
            while True:
                if header is None:
                    if end - pos < ENCRYPTED_HEADER_SIZE:
                        self._need = ENCRYPTED_HEADER_SIZE
                        break
                    what = "frame header"
                    header = decrypt(view[pos : pos + ENCRYPTED_HEADER_SIZE])
                    pos += ENCRYPTED_HEADER_SIZE
                    length = header[3] | header[4] << 8 | header[5] << 16
                    if length > self._max_payload:
                        raise Sv2ProtocolError(
                            f"SV2 frame announces {length} payload bytes, "
                            f"limit is {self._max_payload}"
                        )
                else:
                    length = header[3] | header[4] << 8 | header[5] << 16
                what = "frame payload"
                if length <= CHUNK_PLAINTEXT_SIZE:
                    size = length + MAC_SIZE if length else 0
                    if end - pos < size:
                        self._need = size
                        break
                    payload = decrypt(view[pos : pos + size]) if size else b""
                else:
                    size = encrypted_payload_size(length)
                    if end - pos < size:
                        self._need = size
                        break
                    stop = pos + size
                    payload = b"".join(
                        decrypt(view[start : min(start + CHUNK_SIZE, stop)])
                        for start in range(pos, stop, CHUNK_SIZE)
                    )
                pos += size
                frames.append((header, payload))
                header = None
        except CryptoError as exc:
            if self._recv.nonce >= MAX_NONCE:
                raise Sv2ProtocolError("receive nonce exhausted; the peer must reconnect") from None
            raise Sv2ProtocolError(
                f"SV2 {what} failed authentication at nonce {self._recv.nonce}: {exc}"
            ) from None
        self._header = header
        return pos

    @property
    def buffered(self) -> int:
        """Received wire bytes not yet returned in a frame (non-zero at EOF: cut frame)."""
        pending_header = 0 if self._header is None else ENCRYPTED_HEADER_SIZE
        return len(self._buffer) + pending_header
