"""Stratum V2 messages: one frozen dataclass per wire message, plus the registry.

``decode_message(header, payload)`` turns a frame from :class:`FrameDecoder`
into a message (or :class:`UnknownMessage`); ``encode_message(msg)`` returns the
whole frame.  ``msg.encode()`` / ``Cls.decode(payload)`` work on payloads only.
Trailing payload bytes are rejected except for the two documented tails in
:mod:`.mining` (group_channel_id version skew, SubmitSharesExtended TLVs).
"""

from __future__ import annotations

from stratum_proxy.sv2.framing import UnknownMessage, encode_frame
from stratum_proxy.sv2.messages.base import (
    EXTENSION_CORE,
    EXTENSION_NEGOTIATION,
    EXTENSION_WORKER_HASHRATE_TRACKING,
    Message,
    decode_message,
    message_class,
)
from stratum_proxy.sv2.messages.common import (
    PROTOCOL_JOB_DECLARATION,
    PROTOCOL_MINING,
    PROTOCOL_TEMPLATE_DISTRIBUTION,
    PROTOCOL_VERSION,
    REQUIRES_EXTENDED_CHANNELS,
    REQUIRES_FIXED_VERSION,
    REQUIRES_STANDARD_JOBS,
    REQUIRES_VERSION_ROLLING,
    REQUIRES_WORK_SELECTION,
    ChannelEndpointChanged,
    Reconnect,
    RequestExtensions,
    RequestExtensionsError,
    RequestExtensionsSuccess,
    SetupConnection,
    SetupConnectionError,
    SetupConnectionSuccess,
)
from stratum_proxy.sv2.messages.mining import (
    CloseChannel,
    NewExtendedMiningJob,
    NewMiningJob,
    OpenExtendedMiningChannel,
    OpenExtendedMiningChannelSuccess,
    OpenMiningChannelError,
    OpenStandardMiningChannel,
    OpenStandardMiningChannelSuccess,
    SetCustomMiningJob,
    SetCustomMiningJobError,
    SetCustomMiningJobSuccess,
    SetExtranoncePrefix,
    SetGroupChannel,
    SetNewPrevHash,
    SetTarget,
    SubmitSharesError,
    SubmitSharesExtended,
    SubmitSharesStandard,
    SubmitSharesSuccess,
    UpdateChannel,
    UpdateChannelError,
)
from stratum_proxy.sv2.messages.tlv import MAX_USER_IDENTITY_TLV, TLV_FIELD_USER_IDENTITY, Tlv

AnyMessage = Message | UnknownMessage


def encode_message(msg: AnyMessage) -> bytes:
    """The full plaintext frame (6-byte header + payload) of ``msg``."""
    return encode_frame(msg)


__all__ = [
    "EXTENSION_CORE",
    "EXTENSION_NEGOTIATION",
    "EXTENSION_WORKER_HASHRATE_TRACKING",
    "MAX_USER_IDENTITY_TLV",
    "PROTOCOL_JOB_DECLARATION",
    "PROTOCOL_MINING",
    "PROTOCOL_TEMPLATE_DISTRIBUTION",
    "PROTOCOL_VERSION",
    "REQUIRES_EXTENDED_CHANNELS",
    "REQUIRES_FIXED_VERSION",
    "REQUIRES_STANDARD_JOBS",
    "REQUIRES_VERSION_ROLLING",
    "REQUIRES_WORK_SELECTION",
    "TLV_FIELD_USER_IDENTITY",
    "AnyMessage",
    "ChannelEndpointChanged",
    "CloseChannel",
    "Message",
    "NewExtendedMiningJob",
    "NewMiningJob",
    "OpenExtendedMiningChannel",
    "OpenExtendedMiningChannelSuccess",
    "OpenMiningChannelError",
    "OpenStandardMiningChannel",
    "OpenStandardMiningChannelSuccess",
    "Reconnect",
    "RequestExtensions",
    "RequestExtensionsError",
    "RequestExtensionsSuccess",
    "SetCustomMiningJob",
    "SetCustomMiningJobError",
    "SetCustomMiningJobSuccess",
    "SetExtranoncePrefix",
    "SetGroupChannel",
    "SetNewPrevHash",
    "SetTarget",
    "SetupConnection",
    "SetupConnectionError",
    "SetupConnectionSuccess",
    "SubmitSharesError",
    "SubmitSharesExtended",
    "SubmitSharesStandard",
    "SubmitSharesSuccess",
    "Tlv",
    "UnknownMessage",
    "UpdateChannel",
    "UpdateChannelError",
    "decode_message",
    "encode_message",
    "message_class",
]
