"""SRI's pool scenarios (message-generator ``pool-sri-test-*``), client side, against the
proxy's SV2 listener: the proxy must answer a mining device as SRI's pool does.

Each action sends the scenario's messages and checks its results: message types
(``match_message_type``) and field values (``match_message_field``).  What does not
apply to a proxy is left out and said here:

* ``user_identity`` is empty in the scenarios; the proxy names the rows' worker
  after it and refuses an empty one (``invalid-user-identity``, a restriction the
  spec leaves to the pool), so the device sends ``mg.device``;
* ``submit_shares`` solves the template of SRI's mocked Template Provider, and
  coinbase fields come from that template: the proxy's jobs come from its own
  pool, so those checks are not run (shares are checked by test_sv2_miners.py);
* ``pool-sri-test-extended_0`` asks for 16 bytes of extranonce, which SRI's pool
  config grants; the proxy has 4 to give and answers with the spec's error.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.sv2_keys import authority_key_file
from helpers.sv2_mg import build_message, resolve, scenario

import stratum_proxy.sv2.messages as messages
from stratum_proxy.sim.pool import TestPool
from stratum_proxy.sim.pool_config import PoolConfig
from stratum_proxy.sv2.framing import FRAME_HEADER_SIZE, Header
from stratum_proxy.sv2.messages import OpenMiningChannelError, decode_message, encode_message
from stratum_proxy.sv2.noise import NoiseInitiator

NOT_APPLICABLE = {"submit_shares"}  # SRI's mocked template


class Device:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.transport: Any = None
        self.inbox: list[Any] = []

    async def handshake(self, authority: bytes) -> None:
        initiator = NoiseInitiator(authority, time.time(), os.urandom)
        self.writer.write(initiator.first_message())
        while self.transport is None:
            self.transport = initiator.receive(await self.reader.read(4096), now=time.time())

    def send(self, msg: Any) -> None:
        self.writer.write(self.transport.encrypt_frame(encode_message(msg)))

    async def wait_for(self, kind: type, timeout: float = 10.0) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                for i, msg in enumerate(self.inbox):
                    if isinstance(msg, kind):
                        return self.inbox.pop(i)
                data = await self.reader.read(65536)
                assert data, "the proxy closed the connection"
                frames = self.transport.feed(data)
                self.inbox += [
                    decode_message(Header.decode(f), f[FRAME_HEADER_SIZE:]) for f in frames
                ]


def _type_named(value: str) -> type:
    """A match_message_type value ("0x15") as our message class (no extension)."""
    wanted = int(value, 16)
    for cls in vars(messages).values():
        if (
            isinstance(cls, type)
            and getattr(cls, "MSG_TYPE", None) == wanted
            and getattr(cls, "EXTENSION_TYPE", 0) == 0
        ):
            return cls
    raise AssertionError(f"no message of type {value}")


async def _replay(device: Device, data: dict[str, Any]) -> None:
    for action in data["actions"]:
        if action.get("role") != "client" or NOT_APPLICABLE & set(action["message_ids"]):
            continue
        for message_id in action["message_ids"]:
            fields = dict(resolve(data, message_id))
            if fields.get("user_identity") == "":
                fields["user_identity"] = "mg.device"
            device.send(build_message(fields))
        for result in action["results"]:
            if result["type"] == "match_message_type":
                await device.wait_for(_type_named(result["value"]))
            elif result["type"] == "match_message_field":
                _, name, checks = result["value"]
                got = await device.wait_for(getattr(messages, name))
                for field, typed in checks:
                    (expected,) = typed.values()
                    if field == "extranonce_size" or isinstance(expected, list):
                        continue  # the pool's config or template: not a proxy's (see above)
                    assert getattr(got, field) == expected, (name, field)


@pytest.mark.parametrize(
    "name", ["pool-sri-test-1-standard", "pool-sri-test-extended_1", "pool-sri-test-extended_0"]
)
async def test_sri_pool_scenario_against_the_proxy(
    proxy_factory: Any, tmp_path: Path, name: str
) -> None:
    key_file, public = authority_key_file(tmp_path)
    pool = TestPool(PoolConfig())
    await pool.start()
    proxy = await proxy_factory(
        [f"main=stratum+tcp://127.0.0.1:{pool.port}"],
        listen=["sv2=127.0.0.1:0"],
        **{"sv2.authority_key_file": key_file, "aggregate.pool_user": "farm1"},
    )
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        device = Device(reader, writer)
        async with asyncio.timeout(30):
            await device.handshake(public)
            if name == "pool-sri-test-extended_0":
                data = scenario(name)
                setup, open_channel = data["actions"][0], data["actions"][1]
                data = {**data, "actions": [setup]}
                await _replay(device, data)
                fields = dict(resolve(data, open_channel["message_ids"][0]))
                device.send(build_message({**fields, "user_identity": "mg.device"}))
                refused = await device.wait_for(OpenMiningChannelError)
                assert refused.error_code == "min-extranonce-size-too-large"
                assert refused.request_id == fields["request_id"]
            else:
                await _replay(device, scenario(name))
        writer.close()
    finally:
        await proxy.shutdown()
        await pool.close()
