"""What a mining server (the proxy for its SV2 miners, the SV2 test pool) answers to
the messages it does not serve.  Sans-I/O.

Nothing is ignored: RequestExtensions is answered with no extension supported
(silence would leave the client waiting for its timeout), SetCustomMiningJob
with ``jd-not-supported``; a message out of order (before SetupConnection, a
second SetupConnection) or one no client sends raises Sv2ProtocolError, and
the connection is closed with that reason.
"""

from __future__ import annotations

from stratum_proxy.sv2.errors import Sv2ProtocolError
from stratum_proxy.sv2.messages import (
    AnyMessage,
    Message,
    RequestExtensions,
    RequestExtensionsSuccess,
    SetCustomMiningJob,
    SetCustomMiningJobError,
    SetupConnection,
)


def check_order(msg: AnyMessage, setup_done: bool) -> None:
    """Raise for SetupConnection twice, or anything else before it."""
    if isinstance(msg, SetupConnection):
        if setup_done:
            raise Sv2ProtocolError("a second SetupConnection on one connection: closing")
    elif not setup_done:
        # The spec has no error message for this: the connection is closed.
        raise Sv2ProtocolError(f"{type(msg).__name__} before SetupConnection: closing")


def answer_unserved(msg: AnyMessage, what: str) -> Message:
    """The answer to a message this server does not serve; raises, saying ``what`` it is not."""
    if isinstance(msg, RequestExtensions):
        return RequestExtensionsSuccess(request_id=msg.request_id, supported_extensions=())
    if isinstance(msg, SetCustomMiningJob):
        return SetCustomMiningJobError(
            channel_id=msg.channel_id, request_id=msg.request_id, error_code="jd-not-supported"
        )
    raise Sv2ProtocolError(f"{type(msg).__name__} is not a message {what}: closing")
