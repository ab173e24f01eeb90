"""Hypothesis strategies for every registered SV2 message (codec fuzzing, peers' properties)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from stratum_proxy.sv2.messages import (
    Message,
    OpenExtendedMiningChannelSuccess,
    SubmitSharesExtended,
    Tlv,
)
from stratum_proxy.sv2.messages.base import _REGISTRY

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
u256 = st.binary(min_size=32, max_size=32)
# Text whose UTF-8 form always fits STR0_255 (at most 4 bytes per character).
str0_255 = st.text(max_size=63)

# Strategy per spec type, keyed by the codec's name.  Sizes of the 64K types are
# kept small for speed; their limits are covered by the unit tests.
BY_TYPE: dict[str, st.SearchStrategy[Any]] = {
    "U8": st.integers(0, 0xFF),
    "U16": u16,
    "U24": st.integers(0, 0xFFFFFF),
    "U32": u32,
    "U64": st.integers(0, 2**64 - 1),
    "F32": st.floats(width=32, allow_nan=False),
    "BOOL": st.booleans(),
    "U256": u256,
    "PUBKEY": u256,
    "SIGNATURE": st.binary(min_size=64, max_size=64),
    "B0_32": st.binary(max_size=32),
    "B0_255": st.binary(max_size=255),
    "B0_64K": st.binary(max_size=600),
    "B0_16M": st.binary(max_size=600),
    "STR0_255": str0_255,
    "OPTION[U32]": st.none() | u32,
    "SEQ0_255[U256]": st.lists(u256, max_size=12).map(tuple),
    "SEQ0_64K[U16]": st.lists(u16, max_size=40).map(tuple),
    "SEQ0_64K[U32]": st.lists(u32, max_size=40).map(tuple),
}

tlv = st.builds(
    Tlv, extension_type=u16, field_type=st.integers(0, 0xFF), value=st.binary(max_size=40)
)
# Fields beyond the fixed ones (see messages/mining.py).  The group id is always
# an int here: None is sent as 0, so it cannot round-trip by design.
TAILS: dict[type[Message], dict[str, st.SearchStrategy[Any]]] = {
    OpenExtendedMiningChannelSuccess: {"group_channel_id": u32},
    SubmitSharesExtended: {"extensions": st.lists(tlv, max_size=4).map(tuple)},
}

CLASSES = sorted(_REGISTRY.values(), key=lambda c: (c.EXTENSION_TYPE, c.MSG_TYPE))


def messages_of(cls: type[Message]) -> st.SearchStrategy[Message]:
    fields = {name: BY_TYPE[codec.name] for name, codec in cls.WIRE_FIELDS}
    fields.update(TAILS.get(cls, {}))
    return st.builds(cls, **fields)


any_message = st.one_of([messages_of(cls) for cls in CLASSES])
