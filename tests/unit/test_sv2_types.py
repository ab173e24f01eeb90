"""SV2 data types (spec §3.1, notes §3): wire bytes, round trips, limits, malformed input."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest

from stratum_proxy.errors import LocalProtocolError
from stratum_proxy.sv2.errors import Sv2ProtocolError
from stratum_proxy.sv2.types import (
    MAX_B0_16M,
    Reader,
    Writer,
    truncate_utf8,
)


def _encode(push: Callable[[Writer, Any], None], value: Any) -> bytes:
    writer = Writer()
    push(writer, value)
    return writer.data()


def _decode(pull: Callable[[Reader], Any], data: bytes) -> Any:
    reader = Reader(data)
    value = pull(reader)
    reader.expect_end("test")
    return value


# (type name, value, exact wire bytes) — wire forms written out by hand from spec §3.1.
WIRE_CASES: list[tuple[str, Any, bytes]] = [
    ("u8", 0, b"\x00"),
    ("u8", 255, b"\xff"),
    ("u16", 0x0102, b"\x02\x01"),
    ("u16", 0xFFFF, b"\xff\xff"),
    ("u24", 0x030201, b"\x01\x02\x03"),
    ("u24", 2**24 - 1, b"\xff\xff\xff"),
    ("u32", 0x04030201, b"\x01\x02\x03\x04"),
    ("u64", 0x0807060504030201, bytes(range(1, 9))),
    ("u64", 2**64 - 1, b"\xff" * 8),
    ("f32", 1.5, b"\x00\x00\xc0\x3f"),
    ("f32", -0.0, b"\x00\x00\x00\x80"),
    ("bool", True, b"\x01"),
    ("bool", False, b"\x00"),
    ("u256", bytes(range(32)), bytes(range(32))),
    ("pubkey", b"\x02" * 32, b"\x02" * 32),
    ("signature", b"\x03" * 64, b"\x03" * 64),
    ("mac", b"\x04" * 16, b"\x04" * 16),
    ("b0_32", b"", b"\x00"),
    ("b0_32", b"\xaa" * 32, b"\x20" + b"\xaa" * 32),
    ("b0_255", b"\x01" * 255, b"\xff" + b"\x01" * 255),
    ("b0_64k", b"\x05" * 300, b"\x2c\x01" + b"\x05" * 300),
    ("b0_16m", b"\x06" * 70000, b"\x70\x11\x01" + b"\x06" * 70000),
    ("str0_255", "", b"\x00"),
    ("str0_255", "Bitmain", b"\x07Bitmain"),
    ("str0_255", "żółw", b"\x07" + "żółw".encode()),
    ("option_u32", None, b"\x00"),
    ("option_u32", 0x0C0B0A09, b"\x01\x09\x0a\x0b\x0c"),
    ("seq0_255_u256", (), b"\x00"),
    ("seq0_255_u256", (b"\x11" * 32, b"\x22" * 32), b"\x02" + b"\x11" * 32 + b"\x22" * 32),
    ("seq0_64k_u16", (1, 0x0203), b"\x02\x00\x01\x00\x03\x02"),
    ("seq0_64k_u32", (7,), b"\x01\x00\x07\x00\x00\x00"),
]


@pytest.mark.parametrize(("kind", "value", "wire"), WIRE_CASES)
def test_wire_form_and_round_trip(kind: str, value: Any, wire: bytes) -> None:
    push = getattr(Writer, f"push_{kind}")
    pull = getattr(Reader, f"pull_{kind}")
    assert _encode(push, value) == wire
    decoded = _decode(pull, wire)
    assert decoded == value
    if kind == "f32":
        assert struct.pack("<f", decoded) == wire  # sign of -0.0 kept


def test_b0_16m_holds_its_maximum() -> None:
    value = b"\x00" * MAX_B0_16M
    wire = _encode(Writer.push_b0_16m, value)
    assert wire[:3] == b"\xff\xff\xff"
    assert _decode(Reader.pull_b0_16m, wire) == value


def test_b0_64k_holds_its_maximum() -> None:
    value = b"\x01" * 0xFFFF
    assert _decode(Reader.pull_b0_64k, _encode(Writer.push_b0_64k, value)) == value


@pytest.mark.parametrize(
    ("byte", "expected"), [(0x00, False), (0x01, True), (0xFE, False), (0xFF, True)]
)
def test_bool_keeps_only_the_low_bit(byte: int, expected: bool) -> None:
    # Spec §3.1: receivers ignore bits 1..7.
    assert _decode(Reader.pull_bool, bytes([byte])) is expected


def test_b0_32_length_over_32_is_rejected_even_with_enough_bytes() -> None:
    with pytest.raises(Sv2ProtocolError, match="B0_32 length 33") as info:
        _decode(Reader.pull_b0_32, b"\x21" + b"\x00" * 33)
    assert info.value.fatal


def test_option_count_above_one_is_rejected() -> None:
    with pytest.raises(Sv2ProtocolError, match="OPTION"):
        _decode(Reader.pull_option_u32, b"\x02\x00\x00\x00\x00")


def test_invalid_utf8_str_is_rejected() -> None:
    with pytest.raises(Sv2ProtocolError, match="UTF-8"):
        _decode(Reader.pull_str0_255, b"\x02\xc3\x28")


SHORT_CASES = [
    ("u8", b""),
    ("u16", b"\x01"),
    ("u24", b"\x01\x02"),
    ("u32", b"\x01\x02\x03"),
    ("u64", b"\x00" * 7),
    ("f32", b"\x00" * 3),
    ("bool", b""),
    ("u256", b"\x00" * 31),
    ("pubkey", b"\x00" * 31),
    ("signature", b"\x00" * 63),
    ("mac", b"\x00" * 15),
    ("b0_32", b"\x05abcd"),
    ("b0_255", b""),
    ("b0_64k", b"\x03\x00ab"),
    ("b0_16m", b"\x01\x00"),
    ("str0_255", b"\x04abc"),
    ("option_u32", b"\x01\x00\x00"),
    ("seq0_255_u256", b"\x02" + b"\x00" * 63),
    ("seq0_64k_u16", b"\x02\x00\x01\x00\x02"),
    ("seq0_64k_u32", b"\x01"),
]


@pytest.mark.parametrize(("kind", "data"), SHORT_CASES)
def test_short_buffer_raises_protocol_error(kind: str, data: bytes) -> None:
    with pytest.raises(Sv2ProtocolError):
        _decode(getattr(Reader, f"pull_{kind}"), data)


def test_trailing_bytes_are_reported() -> None:
    reader = Reader(b"\x01\x02")
    assert reader.pull_u8() == 1
    with pytest.raises(Sv2ProtocolError, match="1 unexpected trailing"):
        reader.expect_end("X")


BAD_PUSHES: list[tuple[str, Any]] = [
    ("u8", 256),
    ("u8", -1),
    ("u16", 0x10000),
    ("u24", 2**24),
    ("u32", 2**32),
    ("u64", 2**64),
    ("u32", "1"),
    ("f32", 1e39),
    ("u256", b"\x00" * 31),
    ("pubkey", b"\x00" * 33),
    ("signature", b""),
    ("b0_32", b"\x00" * 33),
    ("b0_255", b"\x00" * 256),
    ("b0_64k", b"\x00" * 0x10000),
    ("str0_255", "é" * 128),  # 256 UTF-8 bytes although 128 characters
    ("str0_255", b"bytes"),
    ("seq0_255_u256", [b"\x00" * 32] * 256),
    ("seq0_64k_u16", [1, 0x10000]),
]


@pytest.mark.parametrize(("kind", "value"), BAD_PUSHES)
def test_unencodable_values_are_local_errors(kind: str, value: Any) -> None:
    with pytest.raises(LocalProtocolError):
        _encode(getattr(Writer, f"push_{kind}"), value)


def test_truncate_utf8_never_splits_a_character() -> None:
    text = "a" + "é" * 200  # 401 bytes
    cut = truncate_utf8(text)
    assert len(cut.encode()) == 255  # 'a' + 127 full 'é'
    assert text.startswith(cut)
    assert truncate_utf8("short") == "short"
    assert truncate_utf8("ab€", 3) == "ab"


def test_every_spec_type_has_a_pull_push_pair_and_a_wire_case() -> None:
    # Generic helpers (option, seq0_*) take an item codec; the named ones are the spec types.
    generic = {"bytes", "rest", "option", "seq0_255", "seq0_64k"}
    pulls = {n[5:] for n in dir(Reader) if n.startswith("pull_")} - generic
    pushes = {n[5:] for n in dir(Writer) if n.startswith("push_")} - generic
    assert pulls == pushes
    assert pulls == {kind for kind, _, _ in WIRE_CASES}
