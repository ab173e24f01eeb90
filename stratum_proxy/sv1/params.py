"""Checked access to Stratum V1 params and to the results of miner requests.

The helpers raise ``TypeError``/``ValueError`` with a message naming the
parameter; ``parser.parse_line`` wraps them into ``InvalidMessage``.  The result
parsers raise ``InvalidMessage`` directly (a result is interpreted only once the
tracker knows which request it answers).
"""

from __future__ import annotations

import math
from string import hexdigits
from typing import Any

from stratum_proxy.sv1.messages import InvalidMessage

# An extranonce2 beyond 32 bytes is no real pool's setting (they use 2..16); a
# larger value is garbage we refuse rather than size buffers by.
MAX_EXTRANONCE2_SIZE = 32


def as_params(params: Any) -> list[Any]:
    """The params array; a missing or null params is an empty array."""
    if type(params) is list:
        return params
    if params is None:
        return []
    raise TypeError(f"params must be an array, got {type(params).__name__}")


def req_str(p: list[Any], i: int, name: str) -> str:
    """A required string parameter."""
    if i >= len(p):
        raise IndexError(f"params[{i}] ({name}) is missing")
    value = p[i]
    if type(value) is not str:
        raise TypeError(f"params[{i}] ({name}) must be a string, got {_kind(value)}")
    return value


def opt_str(p: list[Any], i: int, name: str) -> str | None:
    """An optional string parameter: absent or null gives None."""
    if i >= len(p) or p[i] is None:
        return None
    return req_str(p, i, name)


def is_hex(text: str) -> bool:
    """Only hexadecimal digits (the empty string included)."""
    return not text.strip(hexdigits)


def hex_bytes(p: list[Any], i: int, name: str, *, size: int | None = None) -> bytes:
    """A hex string parameter as bytes, optionally of an exact byte size."""
    text = req_str(p, i, name)
    if len(text) % 2 or not is_hex(text):
        raise ValueError(f"params[{i}] ({name}) is not an even-length hex string: {text[:80]!r}")
    raw = bytes.fromhex(text)
    if size is not None and len(raw) != size:
        raise ValueError(f"params[{i}] ({name}) must be {size} bytes, got {len(raw)}")
    return raw


def hex_u32(p: list[Any], i: int, name: str) -> int:
    """A 32-bit big-endian hex field (version, nbits, ntime, mask): 1..8 digits."""
    text = req_str(p, i, name)
    if not 0 < len(text) <= 8 or not is_hex(text):
        raise ValueError(f"params[{i}] ({name}) must be up to 8 hex digits, got {text[:80]!r}")
    return int(text, 16)


def positive_number(p: list[Any], i: int, name: str, *, allow_zero: bool = False) -> float:
    """A finite number > 0 (>= 0 with ``allow_zero``); integer or float on the wire."""
    if i >= len(p):
        raise IndexError(f"params[{i}] ({name}) is missing")
    value = p[i]
    if type(value) is bool or not isinstance(value, int | float):
        raise TypeError(f"params[{i}] ({name}) must be a number, got {_kind(value)}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        raise ValueError(f"params[{i}] ({name}) must be a positive number, got {value!r}")
    return number


def parse_subscribe_result(result: Any) -> tuple[str, int]:
    """``mining.subscribe`` result → (extranonce1 hex, extranonce2_size).

    Every shape seen (sv1_transcripts.md 3.1) ends with extranonce1 and
    extranonce2_size; the subscriptions in front (nested list, flat pair, either
    order, any ids) carry nothing the proxy needs, so they are not interpreted.
    """
    if type(result) is not list or len(result) < 3:
        raise InvalidMessage(
            f"subscribe result must be [subscriptions, extranonce1, size]: {result!r:.80}"
        )
    extranonce1, size = result[1], result[2]
    if type(extranonce1) is not str or len(extranonce1) % 2 or not is_hex(extranonce1):
        raise InvalidMessage(f"subscribe result: extranonce1 is not hex: {extranonce1!r:.80}")
    if type(size) is not int or not 0 <= size <= MAX_EXTRANONCE2_SIZE:
        raise InvalidMessage(f"subscribe result: extranonce2_size must be 0..32, got {size!r:.80}")
    return extranonce1.lower(), size


def parse_configure_result(result: Any) -> tuple[bool | None, int | None]:
    """BIP310 ``mining.configure`` result → (version rolling on?, mask).

    (None, None) when the result says nothing about version rolling (the state
    is left as it was); (False, 0) when the pool refused it; (True, mask) when
    granted, mask None if the pool omitted it.
    """
    if type(result) is not dict:
        return None, None
    granted = result.get("version-rolling")
    if granted is None:
        return None, None
    if granted is not True:  # false, or an error string (BIP310 TExtensionResult)
        return False, 0
    text = result.get("version-rolling.mask")
    if text is None:
        return True, None
    mask = maybe_mask(text)
    if mask is None:
        raise InvalidMessage(f"configure result: version-rolling.mask is not a mask: {text!r:.80}")
    return True, mask


def maybe_mask(value: Any) -> int | None:
    """A BIP310 TMask (up to 8 hex digits) as an int; None if it is not one."""
    if type(value) is str and 0 < len(value) <= 8 and is_hex(value):
        return int(value, 16)
    return None


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
