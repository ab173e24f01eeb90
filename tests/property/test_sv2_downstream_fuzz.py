"""Fuzz the proxy's SV2 miner session (responder side): whatever a miner sends, the
session either hands events to the core or raises the project's protocol error
(the connection closes with a log line) — never another exception.

Every decoder a miner's bytes reach is covered: the Noise handshake (act 1),
the encrypted frame layer, the frame header, and each message's payload, before
and after SetupConnection and the channel's open.
"""

from __future__ import annotations

import os
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stratum_proxy.errors import RemoteProtocolError
from stratum_proxy.sv2.crypto import xonly_pubkey
from stratum_proxy.sv2.downstream import ChannelRequested, Sv2Downstream
from stratum_proxy.sv2.messages import (
    OpenStandardMiningChannel,
    SetupConnection,
    encode_message,
)
from stratum_proxy.sv2.noise import NoiseInitiator
from stratum_proxy.sv2.transport import NoiseTransport

SECRET = bytes(range(1, 33))
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Message types a miner may send, and some it may not: all reach a decoder.
MSG_TYPES = st.one_of(st.sampled_from([0x00, 0x10, 0x13, 0x16, 0x18, 0x1A, 0x1B, 0x1F]),
                      st.integers(0, 255))  # fmt: skip


def _session() -> Sv2Downstream:
    return Sv2Downstream(
        authority_secret=SECRET, cert_validity_s=3600, now=time.time(), rng=os.urandom,
        version_mask=0x1FFFE000, shares_per_minute=12, max_frame_bytes=4096,
    )  # fmt: skip


def _connected(stage: str) -> tuple[Sv2Downstream, NoiseTransport]:
    """A session after the handshake, and after SetupConnection / the channel's open."""
    session = _session()
    initiator = NoiseInitiator(xonly_pubkey(SECRET), time.time(), os.urandom)
    session.receive_data(initiator.first_message())
    transport = initiator.receive(session.data_to_send(), now=time.time())
    assert transport is not None
    if stage in ("setup", "open"):
        setup = SetupConnection(
            protocol=0, min_version=2, max_version=2, flags=0b100, endpoint_host="p",
            endpoint_port=1, vendor="fuzz", hardware_version="", firmware="", device_id="",
        )  # fmt: skip
        session.receive_data(transport.encrypt_frame(encode_message(setup)))
    if stage == "open":
        channel = OpenStandardMiningChannel(
            request_id=1, user_identity="fuzz", nominal_hash_rate=1e12, max_target=b"\xff" * 32
        )
        (requested,) = session.receive_data(transport.encrypt_frame(encode_message(channel)))
        assert isinstance(requested, ChannelRequested)
        requested.channel.assign(b"\x00\x01", 4)  # as the core does
        requested.channel.send_difficulty(1.0)
    session.data_to_send()
    return session, transport


def _feed(session: Sv2Downstream, data: bytes) -> None:
    try:
        events = session.receive_data(data)
    except RemoteProtocolError:
        return  # the shell closes the connection and logs the reason
    assert isinstance(events, list)
    session.data_to_send()  # answers encode without error


@FAST
@given(data=st.binary(max_size=400))
def test_any_bytes_in_the_handshake(data: bytes) -> None:
    _feed(_session(), data)


@FAST
@given(
    stage=st.sampled_from(["handshake", "setup", "open"]),
    frames=st.lists(
        st.tuples(st.integers(0, 0xFFFF), MSG_TYPES, st.binary(max_size=300)),
        min_size=1,
        max_size=4,
    ),
)
def test_any_encrypted_frame_after_the_handshake(
    stage: str, frames: list[tuple[int, int, bytes]]
) -> None:
    """Well-encrypted frames with any header word, type and payload."""
    session, transport = _connected(stage)
    for extension, msg_type, payload in frames:
        header = extension.to_bytes(2, "little") + bytes([msg_type])
        plain = header + len(payload).to_bytes(3, "little") + payload
        try:
            events = session.receive_data(transport.encrypt_frame(plain))
        except RemoteProtocolError:
            return
        assert isinstance(events, list)
        session.data_to_send()


@FAST
@given(stage=st.sampled_from(["handshake", "open"]), data=st.binary(min_size=1, max_size=600))
def test_any_raw_bytes_after_the_handshake(stage: str, data: bytes) -> None:
    """Bytes that are not a valid encrypted frame (a corrupted stream)."""
    session, _ = _connected(stage)
    _feed(session, data)
