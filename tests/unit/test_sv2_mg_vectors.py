"""SRI message-generator scenarios (notes V12): field values -> our messages -> bytes -> back.

The JSON files give messages as field values (decimal byte arrays), not frames.
Every common/mining message in them is built with our classes, encoded, framed,
decoded and compared; the field types the scenarios assert on must match ours.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from helpers.sv2_mg import MG_DIR, build_message

import stratum_proxy.sv2.messages as messages
from stratum_proxy.sv2.framing import FrameDecoder
from stratum_proxy.sv2.messages import (
    OpenExtendedMiningChannelSuccess,
    decode_message,
    encode_message,
)

# Template-distribution / job-declaration sections are not ours; their SetNewPrevHash
# shares a name with the mining one, so sections are filtered, not just names.
SECTIONS = ("common_messages", "mining_messages")
# The generator's type tags in match_message_field, mapped to spec type names.
MG_TYPE_TAGS = {
    "U8": "U8",
    "U16": "U16",
    "U32": "U32",
    "B064K": "B0_64K",
    "B032": "B0_32",
    "U256": "U256",
}


def _scenarios() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(MG_DIR.rglob("*.json")):
        data = json.loads(path.read_text())
        for section in SECTIONS:
            for entry in data.get(section, []):
                found.append((f"{path.name}::{entry['id']}", entry["message"]))
    return found


SCENARIOS = _scenarios()


def test_scenarios_were_found() -> None:
    kinds = {fields["type"] for _, fields in SCENARIOS}
    assert {
        "SetupConnection",
        "OpenExtendedMiningChannelSuccess",
        "NewExtendedMiningJob",
        "SetNewPrevHash",
    } <= kinds
    assert len(SCENARIOS) >= 20


@pytest.mark.parametrize(("name", "fields"), SCENARIOS, ids=[n for n, _ in SCENARIOS])
def test_scenario_message_round_trips_through_a_frame(name: str, fields: dict[str, Any]) -> None:
    msg = build_message(fields)
    frame = encode_message(msg)
    [(header, payload)] = FrameDecoder().feed(frame)
    assert (header.msg_type, header.channel_msg) == (msg.MSG_TYPE, msg.CHANNEL_MSG)
    if not isinstance(msg, OpenExtendedMiningChannelSuccess):
        assert decode_message(header, payload) == msg
        return
    # The generator predates group_channel_id: its frames are 4 bytes shorter and
    # decode with the id absent; we always send it, as 0 when there is none.
    assert decode_message(header, payload) == dataclasses.replace(msg, group_channel_id=0)
    old_shape = payload[:-4]
    assert len(old_shape) == 43 + len(msg.extranonce_prefix)
    assert OpenExtendedMiningChannelSuccess.decode(old_shape) == msg


def test_translation_proxy_new_extended_job_fields() -> None:
    [(_, fields)] = [
        s for s in SCENARIOS if s[0] == "translation-proxy.json::new_extended_mining_job"
    ]
    job = build_message(fields)
    payload = job.encode()
    # channel_id, job_id, OPTION None, version, bool, empty SEQ0_255, then the coinbase parts.
    assert payload[:15] == bytes.fromhex("000000000100000000000000200100")
    prefix_len = len(fields["coinbase_tx_prefix"])
    assert payload[15:17] == prefix_len.to_bytes(2, "little")
    assert len(payload) == 15 + 2 + prefix_len + 2 + len(fields["coinbase_tx_suffix"])


def _field_assertions() -> list[tuple[str, str, str]]:
    found = []
    for path in sorted(MG_DIR.rglob("*.json")):
        for action in json.loads(path.read_text()).get("actions", []):
            for result in action.get("results", []):
                # SV1 checks carry two items (method, fields); SV2 ones three.
                if result["type"] != "match_message_field" or len(result["value"]) != 3:
                    continue
                protocol, name, checks = result["value"]
                if protocol in ("CommonMessages", "MiningProtocol"):
                    found += [(name, field, next(iter(value))) for field, value in checks]
    return found


@pytest.mark.parametrize(("name", "field", "tag"), sorted(set(_field_assertions())))
def test_scenario_field_types_match_ours(name: str, field: str, tag: str) -> None:
    codecs = dict(getattr(messages, name).WIRE_FIELDS)
    assert codecs[field].name == MG_TYPE_TAGS[tag]
