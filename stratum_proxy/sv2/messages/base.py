"""The machinery every SV2 message class shares: wire fields from type hints, a registry.

A message is a frozen, slotted, keyword-only dataclass whose fields are annotated
with the spec-type aliases of :mod:`stratum_proxy.sv2.types` (``channel_id: U32``),
in wire order.  ``@register`` reads those annotations once and derives
``encode()``/``decode()`` from them, so a class body is the spec's table and
nothing else.  Fields without a codec (a message's optional tail) are handled by
the class's ``_encode_tail``/``_decode_tail`` hooks.

``generic_encode``/``generic_decode`` are that field-by-field codec.  A class
may override ``encode``/``decode`` with a faster equivalent (the per-share
messages in :mod:`.mining` do); the generic functions stay the reference the
fast paths are tested against, and the fallback for anything unusual.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, ClassVar, Self, TypeVar

from stratum_proxy.errors import LocalProtocolError
from stratum_proxy.sv2.errors import Sv2ProtocolError
from stratum_proxy.sv2.framing import EXTENSION_MASK, FRAME_HEADER_SIZE, Header, UnknownMessage
from stratum_proxy.sv2.types import Codec, Reader, Writer

# Extension ids (spec §3.2 / extensions docs).  Core protocols share 0x0000.
EXTENSION_CORE = 0x0000
EXTENSION_NEGOTIATION = 0x0001
EXTENSION_WORKER_HASHRATE_TRACKING = 0x0002


class Message:
    """Base of every known SV2 message; see the module docstring."""

    __slots__ = ()

    EXTENSION_TYPE: ClassVar[int] = EXTENSION_CORE
    MSG_TYPE: ClassVar[int]
    CHANNEL_MSG: ClassVar[bool]
    WIRE_FIELDS: ClassVar[tuple[tuple[str, Codec], ...]] = ()

    # FramedMessage protocol (framing.encode_frame), shared with UnknownMessage.
    @property
    def extension_type(self) -> int:
        return self.EXTENSION_TYPE

    @property
    def msg_type(self) -> int:
        return self.MSG_TYPE

    @property
    def channel_msg(self) -> bool:
        return self.CHANNEL_MSG

    def encode(self) -> bytes:
        """The payload (no frame header)."""
        return generic_encode(self)

    @classmethod
    def decode(cls, payload: bytes | bytearray | memoryview) -> Self:
        """Parse a payload; trailing bytes are rejected unless the class defines a tail."""
        return generic_decode(cls, payload)

    def _encode_tail(self, writer: Writer) -> None:
        """Write fields that follow the fixed ones (none by default)."""

    @classmethod
    def _decode_tail(cls, reader: Reader) -> dict[str, Any]:
        """Read fields that follow the fixed ones (none by default)."""
        return {}


M = TypeVar("M", bound=type[Message])
AnyM = TypeVar("AnyM", bound=Message)


def generic_encode(msg: Message) -> bytes:
    """The payload of ``msg``, field by field through each field's codec."""
    writer = Writer()
    for name, codec in msg.WIRE_FIELDS:
        try:
            codec.push(writer, getattr(msg, name))
        except LocalProtocolError as exc:
            raise LocalProtocolError(f"{type(msg).__name__}.{name}: {exc}") from exc
    msg._encode_tail(writer)
    return writer.data()


def generic_decode(cls: type[AnyM], payload: bytes | bytearray | memoryview) -> AnyM:
    """A ``cls`` from its payload, field by field; raises Sv2ProtocolError naming the field."""
    reader = Reader(payload)
    values: dict[str, Any] = {}
    for name, codec in cls.WIRE_FIELDS:
        try:
            values[name] = codec.pull(reader)
        except Sv2ProtocolError as exc:
            raise Sv2ProtocolError(f"{cls.__name__}.{name}: {exc}") from exc
    values.update(cls._decode_tail(reader))
    reader.expect_end(cls.__name__)
    return cls(**values)


_REGISTRY: dict[tuple[int, int], type[Message]] = {}


def register(cls: M) -> M:
    """Derive ``WIRE_FIELDS`` from the annotations and index the class by its wire id."""
    if not dataclasses.is_dataclass(cls):
        raise LocalProtocolError(f"{cls.__name__} must be a dataclass before @register")
    hints = typing.get_type_hints(cls, include_extras=True)
    wire: list[tuple[str, Codec]] = []
    for field in dataclasses.fields(cls):
        codecs = [m for m in getattr(hints[field.name], "__metadata__", ()) if isinstance(m, Codec)]
        if codecs:
            wire.append((field.name, codecs[0]))
    cls.WIRE_FIELDS = tuple(wire)
    key = (cls.EXTENSION_TYPE, cls.MSG_TYPE)
    if key in _REGISTRY:
        raise LocalProtocolError(f"{cls.__name__} reuses the id of {_REGISTRY[key].__name__}")
    _REGISTRY[key] = cls
    return cls


def message_class(extension_type: int, msg_type: int) -> type[Message] | None:
    return _REGISTRY.get((extension_type, msg_type))


def decode_message(header: Header, payload: bytes) -> Message | UnknownMessage:
    """Dispatch on ``(extension_type & 0x7fff, msg_type)``; unknown ids stay raw.

    The channel_msg bit is not checked on receive (notes §1.1: strict on send,
    lenient on receive); it only decides whether an unknown message is forwarded.
    """
    if len(payload) != header.msg_length:
        raise Sv2ProtocolError(
            f"payload of {len(payload)} bytes but the header says {header.msg_length}"
        )
    cls = _REGISTRY.get((header.extension_type, header.msg_type))
    if cls is None:
        return UnknownMessage(
            extension_type=header.extension_type,
            msg_type=header.msg_type,
            channel_msg=header.channel_msg,
            payload=bytes(payload),
        )
    return cls.decode(payload)


def decode_frame(header: bytes, payload: bytes) -> Message | UnknownMessage:
    """``decode_message`` for a frame held as its 6 header bytes and its payload.

    What ``NoiseTransport.feed_parts`` returns: a known message is dispatched
    straight from the header bytes, without a :class:`Header` object.
    """
    if len(header) == FRAME_HEADER_SIZE:
        cls = _REGISTRY.get(((header[0] | header[1] << 8) & EXTENSION_MASK, header[2]))
        if cls is not None and len(payload) == header[3] | header[4] << 8 | header[5] << 16:
            return cls.decode(payload)
    return decode_message(Header.decode(header), payload)
