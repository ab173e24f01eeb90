"""Stratum V2 protocol errors."""

from __future__ import annotations

from stratum_proxy.errors import RemoteProtocolError


class Sv2ProtocolError(RemoteProtocolError):
    """The SV2 peer broke the protocol (framing, encryption, handshake).

    Fatal by default: an SV2 stream cannot resynchronise after a bad frame or MAC.
    """

    def __init__(self, message: str, *, fatal: bool = True) -> None:
        super().__init__(message, fatal=fatal)
