"""SV2 miners behind the proxy: SV2 test miners that hash for real, an SV1 test pool.

The proxy is their SV2 pool (Noise with its own authority key) and serves
them from aggregated SV1 pool connections: each share gets the pool's (or the
proxy's) real verdict as SubmitShares.Success/Error, and a row like any
share's, with ``protocol = 'sv2'``.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.sv2_keys import authority_key_file

from stratum_proxy.errors import ConfigError
from stratum_proxy.sim.hasher import search
from stratum_proxy.sim.pool import TestPool
from stratum_proxy.sim.pool_config import PoolConfig
from stratum_proxy.sim.sv2_miner import ACCEPTED, Sv2MinerConfig, Sv2TestMiner
from stratum_proxy.sv2.framing import FRAME_HEADER_SIZE, Header
from stratum_proxy.sv2.jobs import block_header, target_to_int
from stratum_proxy.sv2.messages import (
    CloseChannel,
    NewMiningJob,
    OpenExtendedMiningChannel,
    OpenMiningChannelError,
    OpenStandardMiningChannel,
    OpenStandardMiningChannelSuccess,
    SetNewPrevHash,
    SetupConnection,
    SetupConnectionSuccess,
    SubmitSharesStandard,
    SubmitSharesSuccess,
    decode_message,
    encode_message,
)
from stratum_proxy.sv2.noise import NoiseInitiator

SV2_LISTENER = {
    "aggregate.pool_user": "farm1",
    # The miners' difficulty is the pool's: every share is forwarded and judged there.
    "aggregate.min_difficulty": 1e-6,
    "aggregate.start_difficulty": 1e-6,
    "aggregate.max_difficulty": 1e-6,
}


@pytest.mark.parametrize("channel", ["standard", "extended"])
async def test_sv2_miners_get_real_verdicts_and_rows(
    proxy_factory: Any, tmp_path: Path, channel: str
) -> None:
    key_file, public = authority_key_file(tmp_path)
    pool = TestPool(PoolConfig())
    await pool.start()
    proxy = await proxy_factory(
        [f"main=stratum+tcp://127.0.0.1:{pool.port}"],
        listen=["sv2=127.0.0.1:0"],
        **{"sv2.authority_key_file": key_file, **SV2_LISTENER},
    )
    miners = [
        Sv2TestMiner(
            Sv2MinerConfig(
                authority_key=public,
                channel=channel,  # type: ignore[arg-type]
                user_identity=f"farm.rig{i}",
                max_submits=8,
                bad_share_every=4,
            )
        )
        for i in range(2)
    ]
    try:
        async with asyncio.timeout(60):
            await asyncio.gather(*(m.run("127.0.0.1", proxy.port) for m in miners))
    finally:
        await proxy.shutdown()
        await pool.close()
    rows = proxy.rows()
    for i, miner in enumerate(miners):
        assert miner.errors == [] and miner.setup_error == "" and miner.open_error == ""
        assert len(miner.submits) == 8
        for submit in miner.submits:
            expected = ACCEPTED if submit.meant_valid else "difficulty-too-low"
            assert submit.verdict == expected, submit
        mine = [r for r in rows if r["worker"] == f"farm.rig{i}"]
        assert len(mine) == 8 and {r["protocol"] for r in mine} == {"sv2"}
        # The proxy rebuilt the very header each share hashed.
        hashes = {s.hash_int.to_bytes(32, "big").hex() for s in miner.submits}
        assert {r["share_hash"] for r in mine} == hashes
        assert sum(r["status"] == "accepted" for r in mine) == 6


async def test_a_miner_pinning_another_key_is_refused_in_the_handshake(
    proxy_factory: Any, tmp_path: Path
) -> None:
    key_file, _ = authority_key_file(tmp_path)
    (tmp_path / "other").mkdir()
    _, other = authority_key_file(tmp_path / "other")
    pool = TestPool(PoolConfig())
    await pool.start()
    proxy = await proxy_factory(
        [f"main=stratum+tcp://127.0.0.1:{pool.port}"],
        listen=["sv2=127.0.0.1:0"],
        **{"sv2.authority_key_file": key_file, **SV2_LISTENER},
    )
    miner = Sv2TestMiner(Sv2MinerConfig(authority_key=other, max_submits=1))
    try:
        async with asyncio.timeout(20):
            await miner.run("127.0.0.1", proxy.port)
    finally:
        await proxy.shutdown()
        await pool.close()
    (error,) = miner.errors
    assert "not signed by the configured authority" in error
    assert proxy.rows() == []


def test_an_sv2_listener_needs_the_key_and_the_cli_adds_it(tmp_path: Path) -> None:
    from stratum_proxy.cli import _listen, build_parser
    from stratum_proxy.settings import load_settings

    with pytest.raises(ConfigError, match="needs the proxy's authority key"):
        load_settings(None, listen=["sv2=0.0.0.0:3336"], **SV2_LISTENER)
    args = build_parser().parse_args(
        ["run", "--listen", "0.0.0.0:3333", "--listen-sv2", "0.0.0.0:3336"]
    )
    assert _listen(args) == ["0.0.0.0:3333", "sv2=0.0.0.0:3336"]


async def test_a_new_block_and_a_dead_pool_keep_sv2_miners_mining(
    proxy_factory: Any, tmp_path: Path
) -> None:
    """New prev hash mid-stream, then the pool dies: the miners stay connected, get the
    backup's work (a new prev hash from it) and every share keeps an honest verdict."""
    key_file, public = authority_key_file(tmp_path)
    main, backup = TestPool(PoolConfig(seed=1)), TestPool(PoolConfig(seed=2))
    await main.start()
    await backup.start()
    proxy = await proxy_factory(
        [
            f"main=stratum+tcp://127.0.0.1:{main.port}",
            f"backup=stratum+tcp://127.0.0.1:{backup.port}",
        ],
        listen=["sv2=127.0.0.1:0"],
        **{"sv2.authority_key_file": key_file, **SV2_LISTENER, "aggregate.failback": "stay"},
    )
    miners = [
        Sv2TestMiner(
            Sv2MinerConfig(authority_key=public, channel=kind, user_identity=f"farm.{kind}",
                           duration=6.0)
        )
        for kind in ("standard", "extended")
    ]  # fmt: skip
    try:
        tasks = [asyncio.create_task(m.run("127.0.0.1", proxy.port)) for m in miners]
        await main.wait_until(lambda: len(main.judged) >= 6, timeout=20)
        main.new_block()
        first_jobs = {m.submits[0].job_id for m in miners}
        await main.wait_until(lambda: len(main.judged) >= 14, timeout=20)
        await main.close()  # drops the proxy's connections
        await backup.wait_until(lambda: len(backup.judged) >= 6, timeout=20)
        async with asyncio.timeout(30):
            await asyncio.gather(*tasks)
    finally:
        await proxy.shutdown()
        await backup.close()
    rows = proxy.rows()
    for miner in miners:
        assert miner.errors == [] and miner.closed_by_pool == ""  # never dropped
        jobs = {s.job_id for s in miner.submits}
        assert len(jobs) >= 3 and jobs - first_jobs  # new work after the block and the move
        unanswered = [s for s in miner.submits if s.verdict is None]
        assert unanswered == []
        # Shares in flight when the block changed or the pool died are stale: a
        # few (at difficulty 1e-6 the miners find hundreds a second), and never
        # on the work the miner got afterwards.
        stale = [s for s in miner.submits if s.verdict == "stale-share"]
        assert len(stale) <= len(miner.submits) // 10
        last_job = miner.submits[-1].job_id
        assert all(s.job_id != last_job for s in stale)
        assert miner.submits[-1].verdict == ACCEPTED
    assert len(rows) == sum(len(m.submits) for m in miners)  # every share is a row
    upstreams = {r["upstream"] for r in rows if r["forwarded"]}
    assert upstreams == {"main", "backup"}


async def test_a_connection_that_never_opens_a_channel_is_closed(
    proxy_factory: Any, tmp_path: Path
) -> None:
    key_file, public = authority_key_file(tmp_path)
    pool = TestPool(PoolConfig())
    await pool.start()
    proxy = await proxy_factory(
        [f"main=stratum+tcp://127.0.0.1:{pool.port}"],
        listen=["sv2=127.0.0.1:0"],
        **{"sv2.authority_key_file": key_file, "sv2.handshake_timeout_s": 0.5, **SV2_LISTENER},
    )
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"\x00" * 10)  # a start of act 1, then nothing
        started = asyncio.get_running_loop().time()
        async with asyncio.timeout(10):
            assert await reader.read() == b""  # closed by the proxy
        waited = asyncio.get_running_loop().time() - started
        writer.close()
        # A miner that does its part in time mines on.
        miner = Sv2TestMiner(Sv2MinerConfig(authority_key=public, max_submits=3))
        async with asyncio.timeout(30):
            await miner.run("127.0.0.1", proxy.port)
    finally:
        await proxy.shutdown()
        await pool.close()
    assert 0.4 <= waited < 5
    assert [s.verdict for s in miner.submits] == [ACCEPTED] * 3


async def test_a_miner_whose_clock_is_past_the_certificate_refuses_it(
    proxy_factory: Any, tmp_path: Path
) -> None:
    """Each handshake gets a certificate signed then, valid sv2.cert_validity_s: a miner
    whose clock is past that window refuses it; one on time mines."""
    key_file, public = authority_key_file(tmp_path)
    pool = TestPool(PoolConfig())
    await pool.start()
    proxy = await proxy_factory(
        [f"main=stratum+tcp://127.0.0.1:{pool.port}"],
        listen=["sv2=127.0.0.1:0"],
        **{"sv2.authority_key_file": key_file, "sv2.cert_validity_s": 60, **SV2_LISTENER},
    )
    late = Sv2TestMiner(Sv2MinerConfig(authority_key=public, max_submits=1, clock_offset_s=3600))
    on_time = Sv2TestMiner(Sv2MinerConfig(authority_key=public, max_submits=2))
    try:
        async with asyncio.timeout(30):
            await late.run("127.0.0.1", proxy.port)
            await on_time.run("127.0.0.1", proxy.port)
    finally:
        await proxy.shutdown()
        await pool.close()
    (error,) = late.errors
    assert "certificate expired" in error and late.submits == []
    assert [s.verdict for s in on_time.submits] == [ACCEPTED, ACCEPTED]


class _FlipRelay:
    """A man in the middle that flips one bit of the proxy's handshake answer."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, flip: bool) -> None:
            first = flip
            while data := await src.read(65536):
                if first:  # act 2: ephemeral key, then the encrypted static key
                    data = data[:80] + bytes([data[80] ^ 0x01]) + data[81:]
                    first = False
                dst.write(data)
            dst.close()

        await asyncio.gather(
            pipe(reader, up_writer, False), pipe(up_reader, writer, True), return_exceptions=True
        )


async def test_a_tampered_handshake_is_refused(proxy_factory: Any, tmp_path: Path) -> None:
    key_file, public = authority_key_file(tmp_path)
    pool = TestPool(PoolConfig())
    await pool.start()
    proxy = await proxy_factory(
        [f"main=stratum+tcp://127.0.0.1:{pool.port}"],
        listen=["sv2=127.0.0.1:0"],
        **{"sv2.authority_key_file": key_file, "sv2.handshake_timeout_s": 2, **SV2_LISTENER},
    )
    relay = _FlipRelay(proxy.port)
    await relay.start()
    miner = Sv2TestMiner(Sv2MinerConfig(authority_key=public, max_submits=1))
    try:
        async with asyncio.timeout(30):
            await miner.run("127.0.0.1", relay.port)
            # The proxy sees act 1 from a miner, then a close: nothing is left open.
            while proxy.server.statistics()["aggregate"]["0"]["miners"]:
                await asyncio.sleep(0.05)
    finally:
        await relay.close()
        await proxy.shutdown()
        await pool.close()
    (error,) = miner.errors
    assert "act 2 altered in transit" in error and miner.submits == []
    assert proxy.rows() == []


async def test_a_corrupted_frame_closes_that_miner_only(proxy_factory: Any, tmp_path: Path) -> None:
    """Frames 1-3: setup, open, first share; the 4th (the second share) fails its MAC."""
    key_file, public = authority_key_file(tmp_path)
    pool = TestPool(PoolConfig())
    await pool.start()
    proxy = await proxy_factory(
        [f"main=stratum+tcp://127.0.0.1:{pool.port}"],
        listen=["sv2=127.0.0.1:0"],
        **{"sv2.authority_key_file": key_file, **SV2_LISTENER},
    )
    broken = Sv2TestMiner(
        Sv2MinerConfig(
            authority_key=public, user_identity="farm.broken", max_submits=3, corrupt_frame=4
        )
    )
    sound = Sv2TestMiner(
        Sv2MinerConfig(authority_key=public, user_identity="farm.sound", max_submits=3)
    )
    try:
        async with asyncio.timeout(60):
            await asyncio.gather(*(m.run("127.0.0.1", proxy.port) for m in (broken, sound)))
    finally:
        await proxy.shutdown()
        await pool.close()
    # Closed: an EOF or a reset, as the close meets the miner's next write; the first
    # share's verdict may or may not have reached it before.
    assert broken.errors and broken.submits[0].verdict in (ACCEPTED, None)
    assert all(s.verdict is None for s in broken.submits[1:])
    assert sound.errors == [] and [s.verdict for s in sound.submits] == [ACCEPTED] * 3
    rows = proxy.rows()
    # The share before the corrupted frame has its row; the corrupted one could not be read.
    broken_hash = broken.submits[0].hash_int.to_bytes(32, "big").hex()
    assert [r["share_hash"] for r in rows if r["worker"] == "farm.broken"] == [broken_hash]
    assert sum(r["worker"] == "farm.sound" for r in rows) == 3


async def test_update_channel_through_the_proxy_sets_a_new_target_at_once(
    proxy_factory: Any, tmp_path: Path
) -> None:
    """The open's nominal hashrate gives the channel's first target, UpdateChannel's a new
    one (within the vardiff bounds) at once: SetTarget and a job to work it on; later
    shares are judged by it."""
    key_file, public = authority_key_file(tmp_path)
    pool = TestPool(PoolConfig())
    await pool.start()
    proxy = await proxy_factory(
        [f"main=stratum+tcp://127.0.0.1:{pool.port}"],
        listen=["sv2=127.0.0.1:0"],
        **{
            "sv2.authority_key_file": key_file,
            **SV2_LISTENER,
            "aggregate.max_difficulty": 1e-4,
            "aggregate.retarget_s": 3600,  # only the miner's update moves the difficulty
        },
    )
    # 4295 h/s doubled by the update: at 12 shares a minute, difficulty 1e-5.
    miner = Sv2TestMiner(
        Sv2MinerConfig(authority_key=public, nominal_hash_rate=4295, max_submits=10,
                       update_after=3)
    )  # fmt: skip
    try:
        async with asyncio.timeout(60):
            await miner.run("127.0.0.1", proxy.port)
    finally:
        await proxy.shutdown()
        await pool.close()
    assert miner.errors == [] and miner.updates_sent == 1
    (updated,) = miner.set_targets  # the channel opened at the open's hashrate
    assert 0.99e-5 < (0xFFFF << 208) / updated < 1.01e-5
    assert all(s.verdict == ACCEPTED for s in miner.submits)
    rows = proxy.rows()
    difficulties = sorted(r["miner_difficulty"] for r in rows)
    # The open's nominal hashrate set the first target: 4295 h/s x 5 s / 2^32.
    assert difficulties[0] == pytest.approx(5e-6, rel=1e-3)
    assert difficulties[-1] == pytest.approx(1e-5, rel=1e-3)  # 8590 h/s x 5 s / 2^32
    assert sum(d > 5e-6 for d in difficulties) >= 5  # the shares after the update


async def test_two_channels_on_one_connection_are_two_miners(
    proxy_factory: Any, tmp_path: Path
) -> None:
    """One connection, two standard channels (a downstream proxy, a multi-board machine):
    each gets its own extranonce and jobs, its shares their own verdicts and rows; closing
    one leaves the other mining."""
    key_file, public = authority_key_file(tmp_path)
    pool = TestPool(PoolConfig())
    await pool.start()
    proxy = await proxy_factory(
        [f"main=stratum+tcp://127.0.0.1:{pool.port}"],
        listen=["sv2=127.0.0.1:0"],
        **{"sv2.authority_key_file": key_file, **SV2_LISTENER},
    )
    try:
        async with asyncio.timeout(30):
            client = await RawSv2Client.connect("127.0.0.1", proxy.port, public)
            client.send(SETUP)
            await client.expect(SetupConnectionSuccess)
            for request_id, user in ((1, "farm.board1"), (2, "farm.board2")):
                client.send(
                    OpenStandardMiningChannel(request_id=request_id, user_identity=user,
                                              nominal_hash_rate=1e6, max_target=b"\xff" * 32)
                )  # fmt: skip
            opened = [await client.expect(OpenStandardMiningChannelSuccess) for _ in range(2)]
            ids = [o.channel_id for o in opened]
            assert len(set(ids)) == 2
            assert opened[0].extranonce_prefix != opened[1].extranonce_prefix
            work = await client.work_for(ids)
            for sequence, channel_id in enumerate(ids, start=1):
                job, prev = work[channel_id]
                target = target_to_int(opened[ids.index(channel_id)].target)
                header = block_header(job.version, prev.prev_hash, job.merkle_root,
                                      prev.min_ntime, prev.nbits, 0)  # fmt: skip
                nonce = search(header[:76], target, 0, 1 << 24)
                assert nonce is not None
                client.send(
                    SubmitSharesStandard(channel_id=channel_id, sequence_number=sequence,
                                         job_id=job.job_id, nonce=nonce, ntime=prev.min_ntime,
                                         version=job.version)
                )  # fmt: skip
            verdicts = [await client.expect(SubmitSharesSuccess) for _ in range(2)]
            assert sorted(v.channel_id for v in verdicts) == sorted(ids)
            client.send(CloseChannel(channel_id=ids[0], reason_code="board off"))
            await asyncio.sleep(0.2)
            stats = proxy.server.statistics()["aggregate"]["0"]
            assert stats["miners"] == 1  # the closed channel's extranonce is free again
            client.close()
    finally:
        await proxy.shutdown()
        await pool.close()
    rows = proxy.rows()
    assert sorted(r["worker"] for r in rows) == ["farm.board1", "farm.board2"]
    assert all(r["status"] == "accepted" and r["protocol"] == "sv2" for r in rows)
    assert sorted(r["channel_id"] for r in rows) == sorted(ids)
    assert len({r["connection_id"] for r in rows}) == 2  # each channel is a miner


SETUP = SetupConnection(
    protocol=0, min_version=2, max_version=2, flags=0b100, endpoint_host="proxy",
    endpoint_port=3336, vendor="test", hardware_version="", firmware="", device_id="",
)  # fmt: skip


class RawSv2Client:
    """A bare SV2 client over loopback: the test says every message itself."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, transport: Any
    ) -> None:
        self.reader, self.writer, self.transport = reader, writer, transport
        self.inbox: list[Any] = []

    @classmethod
    async def connect(cls, host: str, port: int, authority: bytes) -> RawSv2Client:
        reader, writer = await asyncio.open_connection(host, port)
        initiator = NoiseInitiator(authority, time.time(), os.urandom)
        writer.write(initiator.first_message())
        transport = None
        while transport is None:
            transport = initiator.receive(await reader.read(4096), now=time.time())
        client = cls(reader, writer, transport)
        client._take(transport.feed(b""))
        return client

    def _take(self, frames: list[bytes]) -> None:
        self.inbox += [decode_message(Header.decode(f), f[FRAME_HEADER_SIZE:]) for f in frames]

    def send(self, msg: Any) -> None:
        self.writer.write(self.transport.encrypt_frame(encode_message(msg)))

    async def expect(self, kind: type) -> Any:
        while True:
            for i, msg in enumerate(self.inbox):
                if isinstance(msg, kind):
                    return self.inbox.pop(i)
            data = await self.reader.read(65536)
            assert data, "the proxy closed the connection"
            self._take(self.transport.feed(data))

    async def work_for(self, channel_ids: list[int]) -> dict[int, tuple[Any, Any]]:
        """The first job and its prev hash on each channel."""
        jobs: dict[int, Any] = {}
        prevs: dict[int, Any] = {}
        while set(prevs) != set(channel_ids):
            msg = await self.expect(NewMiningJob | SetNewPrevHash)
            (jobs if isinstance(msg, NewMiningJob) else prevs).setdefault(msg.channel_id, msg)
        return {c: (jobs[c], prevs[c]) for c in channel_ids}

    def close(self) -> None:
        self.writer.close()


async def test_a_backup_with_less_extranonce_room(proxy_factory: Any, tmp_path: Path) -> None:
    """The backup leaves 3 bytes of extranonce2 where the main left 4: a standard channel
    gets its new (shorter) extranonce with SetExtranoncePrefix and mines on; an extended
    channel cannot roll another size, so it is told to reconnect."""
    key_file, public = authority_key_file(tmp_path)
    main = TestPool(PoolConfig(seed=1, extranonce2_size=8))
    backup = TestPool(PoolConfig(seed=2, extranonce2_size=5))
    await main.start()
    await backup.start()
    proxy = await proxy_factory(
        [
            f"main=stratum+tcp://127.0.0.1:{main.port}",
            f"backup=stratum+tcp://127.0.0.1:{backup.port}",
        ],
        listen=["sv2=127.0.0.1:0"],
        **{"sv2.authority_key_file": key_file, **SV2_LISTENER, "aggregate.failback": "stay"},
    )
    standard = Sv2TestMiner(Sv2MinerConfig(authority_key=public, channel="standard", duration=6.0))
    extended = Sv2TestMiner(Sv2MinerConfig(authority_key=public, channel="extended", duration=6.0))
    try:
        tasks = [asyncio.create_task(m.run("127.0.0.1", proxy.port)) for m in (standard, extended)]
        await main.wait_until(lambda: len(main.judged) >= 6, timeout=20)
        await main.close()
        async with asyncio.timeout(30):
            await asyncio.gather(*tasks)
    finally:
        await proxy.shutdown()
        await backup.close()
    assert standard.prefix_changes == 1 and not standard.reconnect_requested
    assert standard.submits[-1].verdict == ACCEPTED
    assert any(j.worker for j in backup.judged)  # the standard channel mined on the backup
    assert extended.reconnect_requested and extended.errors == []


async def test_a_channel_refused_when_a_late_pool_is_too_small_leaves_the_core(
    proxy_factory: Any, tmp_path: Path
) -> None:
    """The pool comes up after the miner asked for its channel, with less extranonce
    room than the miner's minimum: the open is refused then, and the channel is gone
    from the proxy too, while the miner's connection stays open (no miner left held
    in the core with an extranonce prefix)."""
    import socket

    key_file, public = authority_key_file(tmp_path)
    with socket.socket() as probe:  # a port with nothing listening yet
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proxy = await proxy_factory(
        [f"main=stratum+tcp://127.0.0.1:{port}"],
        listen=["sv2=127.0.0.1:0"],
        **{"sv2.authority_key_file": key_file, **SV2_LISTENER,
           "aggregate.failback_check_s": 0.3},
    )  # fmt: skip
    # 4 bytes of extranonce2 at the pool: 2 for the proxy's prefix, 2 for the miner.
    pool = TestPool(PoolConfig(extranonce2_size=4))
    (hub,) = proxy.server.hubs.values()
    try:
        async with asyncio.timeout(20):
            client = await RawSv2Client.connect("127.0.0.1", proxy.port, public)
            client.send(SETUP)
            await client.expect(SetupConnectionSuccess)
            client.send(
                OpenExtendedMiningChannel(request_id=3, user_identity="farm.big",
                                          nominal_hash_rate=1e6, max_target=b"\xff" * 32,
                                          min_extranonce_size=4)
            )  # fmt: skip
            while not hub.core.miners:  # the channel waits in the core for a pool
                await asyncio.sleep(0.02)
            await pool.start(port=port)
            refused = await client.expect(OpenMiningChannelError)
            await asyncio.sleep(0.1)
            assert hub.core.miners == {}  # while the connection is still open
            client.close()
    finally:
        await proxy.shutdown()
        await pool.close()
    assert (refused.request_id, refused.error_code) == (3, "min-extranonce-size-too-large")
