"""SRI message-generator scenarios (../shared/vectors/sv2/message-generator): their
messages, given as field values, built with our classes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import stratum_proxy.sv2.messages as messages
from stratum_proxy.sv2.messages import Message
from stratum_proxy.sv2.types import Codec

MG_DIR = Path("/work/shared/vectors/sv2/message-generator")


def field_value(codec: Codec, raw: Any) -> Any:
    """MG JSON value -> our Python value for that spec type."""
    if codec.name.startswith(("U256", "B0_")):
        return bytes(raw)
    if codec.name == "OPTION[U32]":
        return raw[0] if raw else None
    if codec.name == "SEQ0_255[U256]":
        return tuple(bytes(node) for node in raw)
    if codec.name.startswith("SEQ"):
        return tuple(raw)
    if codec.name == "F32":
        return float(raw)
    return raw


def build_message(fields: dict[str, Any]) -> Message:
    cls = getattr(messages, fields["type"])
    codecs = dict(cls.WIRE_FIELDS)
    values = {
        name: field_value(codecs[name], raw) for name, raw in fields.items() if name != "type"
    }
    assert set(values) == set(codecs), f"{cls.__name__}: MG fields differ from ours"
    return cls(**values)


def scenario(name: str) -> dict[str, Any]:
    """One test scenario's JSON (test/<name>/<name>.json)."""
    data: dict[str, Any] = json.loads((MG_DIR / "test" / name / f"{name}.json").read_text())
    return data


def scenario_messages(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The scenario's common and mining messages by id, as field values."""
    return {
        entry["id"]: entry["message"]
        for section in ("common_messages", "mining_messages")
        for entry in data.get(section, [])
    }


def resolve(data: dict[str, Any], message_id: str) -> dict[str, Any]:
    """A message of the scenario by id; ``path::id`` names one in a shared message file
    (actions give the bare id, the frame builders the full one)."""
    own = scenario_messages(data)
    if message_id not in own and "::" not in message_id:
        for builder in data.get("frame_builders", []):
            if builder.get("message_id", "").endswith(f"::{message_id}"):
                message_id = builder["message_id"]
    if "::" in message_id:
        path, _, wanted = message_id.partition("::")
        shared = json.loads((MG_DIR / "messages" / Path(path).name).read_text())
        found = scenario_messages(shared)
        return found[wanted]
    return own[message_id]
