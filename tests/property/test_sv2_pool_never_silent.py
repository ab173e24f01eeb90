"""The SV2 test pool never leaves a message unanswered.

Any message, of any type and with any fields, sent after SetupConnection on a
connection with an open channel: the pool answers with at least one message,
or closes with a Sv2ProtocolError that says why.  The one exception is a
client's CloseChannel, which the spec leaves unanswered.
"""

from __future__ import annotations

import os
import time
from typing import Any

from helpers.sv2_strategies import any_message
from hypothesis import HealthCheck, given, settings

from stratum_proxy.sim.sv2_pool_config import Sv2PoolConfig
from stratum_proxy.sim.sv2_pool_core import Sv2PoolState
from stratum_proxy.sv2.crypto import xonly_pubkey
from stratum_proxy.sv2.errors import Sv2ProtocolError
from stratum_proxy.sv2.framing import FRAME_HEADER_SIZE, Header
from stratum_proxy.sv2.messages import (
    CloseChannel,
    Message,
    OpenStandardMiningChannel,
    SetupConnection,
    decode_message,
    encode_message,
)
from stratum_proxy.sv2.noise import NoiseInitiator

SETUP = SetupConnection(
    protocol=0, min_version=2, max_version=2, flags=0, endpoint_host="", endpoint_port=0,
    vendor="", hardware_version="", firmware="", device_id="",
)  # fmt: skip
OPEN = OpenStandardMiningChannel(
    request_id=1, user_identity="rig", nominal_hash_rate=1.0, max_target=b"\xff" * 32
)


def _connected() -> tuple[Any, Any]:
    state = Sv2PoolState(Sv2PoolConfig())
    now = time.time()
    conn = state.new_connection(now, os.urandom)
    initiator = NoiseInitiator(xonly_pubkey(state.config.authority_secret), now, os.urandom)
    conn.receive_data(initiator.first_message(), now)
    transport = initiator.receive(conn.data_to_send(), now=now)
    assert transport is not None
    return conn, transport


def _send(conn: Any, transport: Any, msg: Message) -> list[Any]:
    now = time.time()
    conn.receive_data(transport.encrypt_frame(encode_message(msg)), now)
    conn.handle_timer(now + 1)
    frames = transport.feed(conn.data_to_send())
    return [decode_message(Header.decode(f), f[FRAME_HEADER_SIZE:]) for f in frames]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msg=any_message)
def test_every_message_is_answered_or_closes_with_a_reason(msg: Message) -> None:
    conn, transport = _connected()
    _send(conn, transport, SETUP)
    _send(conn, transport, OPEN)
    try:
        answers = _send(conn, transport, msg)
    except Sv2ProtocolError as exc:
        assert str(exc)  # closed, with the reason kept
        return
    if isinstance(msg, CloseChannel):
        return
    assert answers, f"{type(msg).__name__} got no answer"
