"""Common messages (spec §3.3, notes §4.1) and extension negotiation (ext 0x0001).

Every class is the spec's table row: fields in wire order, typed with the spec's
data types.  MSG_TYPE and CHANNEL_MSG are the values SRI and the spec agree on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from stratum_proxy.sv2.messages.base import EXTENSION_NEGOTIATION, Message, register
from stratum_proxy.sv2.types import SEQ0_64K_U16, STR0_255, U8, U16, U32

# SetupConnection.protocol (spec §3.3.1).
PROTOCOL_MINING = 0
PROTOCOL_JOB_DECLARATION = 1
PROTOCOL_TEMPLATE_DISTRIBUTION = 2

# Mining-protocol SetupConnection.flags (spec §5.3.1; bit 0 = LSB).
REQUIRES_STANDARD_JOBS = 1 << 0
REQUIRES_WORK_SELECTION = 1 << 1
REQUIRES_VERSION_ROLLING = 1 << 2
# Mining-protocol SetupConnection.Success.flags.
REQUIRES_FIXED_VERSION = 1 << 0
REQUIRES_EXTENDED_CHANNELS = 1 << 1

PROTOCOL_VERSION = 2  # the only SV2 version there is


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class SetupConnection(Message):
    MSG_TYPE: ClassVar[int] = 0x00
    CHANNEL_MSG: ClassVar[bool] = False

    protocol: U8
    min_version: U16
    max_version: U16
    flags: U32
    endpoint_host: STR0_255
    endpoint_port: U16
    vendor: STR0_255
    hardware_version: STR0_255
    firmware: STR0_255
    device_id: STR0_255


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class SetupConnectionSuccess(Message):
    MSG_TYPE: ClassVar[int] = 0x01
    CHANNEL_MSG: ClassVar[bool] = False

    used_version: U16
    flags: U32


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class SetupConnectionError(Message):
    MSG_TYPE: ClassVar[int] = 0x02
    CHANNEL_MSG: ClassVar[bool] = False

    flags: U32  # the unsupported flags; 0 when refused for another reason
    error_code: STR0_255


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelEndpointChanged(Message):
    MSG_TYPE: ClassVar[int] = 0x03
    CHANNEL_MSG: ClassVar[bool] = True

    channel_id: U32


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class Reconnect(Message):
    MSG_TYPE: ClassVar[int] = 0x04
    CHANNEL_MSG: ClassVar[bool] = False

    new_host: STR0_255  # empty: same host
    new_port: U16  # 0: same port


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class RequestExtensions(Message):
    EXTENSION_TYPE: ClassVar[int] = EXTENSION_NEGOTIATION
    MSG_TYPE: ClassVar[int] = 0x00
    CHANNEL_MSG: ClassVar[bool] = False

    request_id: U16
    requested_extensions: SEQ0_64K_U16


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class RequestExtensionsSuccess(Message):
    EXTENSION_TYPE: ClassVar[int] = EXTENSION_NEGOTIATION
    MSG_TYPE: ClassVar[int] = 0x01
    CHANNEL_MSG: ClassVar[bool] = False

    request_id: U16
    supported_extensions: SEQ0_64K_U16


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class RequestExtensionsError(Message):
    EXTENSION_TYPE: ClassVar[int] = EXTENSION_NEGOTIATION
    MSG_TYPE: ClassVar[int] = 0x02
    CHANNEL_MSG: ClassVar[bool] = False

    request_id: U16
    unsupported_extensions: SEQ0_64K_U16
    required_extensions: SEQ0_64K_U16
