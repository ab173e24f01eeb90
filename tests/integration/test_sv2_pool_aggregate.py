"""Aggregated connections to an SV2 pool: SV2 miners and SV1 miners, over loopback.

The proxy opens extended channels on one connection per pool and carves its
miners' extranonce prefixes out of them (``aggregate/sv2_pool.py``): under
the farm's ``pool_user``, or, for SV2 miners with identity pass-through (the
default), one under each worker's own name.  Every share the miners hash for real
is judged by the SV2 test pool, whose verdict (and error code) reaches the
miner and the row; the pool's own record of each share is the oracle for the
row's hash and for the identity it was credited to.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from helpers.sv2_keys import authority_key_file

from stratum_proxy.sim.miner import MinerConfig, TestMiner
from stratum_proxy.sim.pool import TestPool
from stratum_proxy.sim.pool_config import PoolConfig
from stratum_proxy.sim.sv2_miner import ACCEPTED, Sv2MinerConfig, Sv2TestMiner
from stratum_proxy.sim.sv2_pool import Sv2TestPool
from stratum_proxy.sim.sv2_pool_config import Sv2PoolConfig

FORWARD_ALL = {
    "aggregate.pool_user": "farm1",
    # The miners' difficulty is the pool's: every share is forwarded and judged there.
    "aggregate.min_difficulty": 1e-6,
    "aggregate.start_difficulty": 1e-6,
    "aggregate.max_difficulty": 1e-6,
}


def _check_rows_against_pool(
    rows: list[dict[str, Any]],
    pool: Sv2TestPool,
    *,
    worker_channels: bool = False,
    farm_first: bool = False,
) -> None:
    """Each forwarded row is a share the pool judged: same header hash, same verdict,
    credited to the row's worker (its own channel) or to the farm's account
    (``farm_first``: either, an SV1 miner's shares before its own channel was up)."""
    judged = {j.hash_hex: j for j in pool.judged}
    forwarded = [r for r in rows if r["forwarded"]]
    assert forwarded and len(forwarded) == len(pool.judged)
    for row in forwarded:
        j = judged[row["share_hash"]]
        assert row["status"] == ("accepted" if j.accepted else "rejected")
        assert row["verdict_by"] == "pool"
        assert row["upstream"] == "main"
        if not j.accepted:
            assert row["reject_reason"] == j.error_code
        if farm_first:
            assert j.user_identity in (row["worker"], "farm1")
        else:
            assert j.user_identity == (row["worker"] if worker_channels else "farm1")


@pytest.mark.parametrize(
    ("channel", "worker_channels"),
    [("standard", True), ("extended", True), ("standard", False), ("extended", False)],
)
async def test_sv2_miners_on_an_sv2_pool_get_its_verdicts(
    proxy_factory: Any, tmp_path: Path, channel: str, worker_channels: bool
) -> None:
    key_file, public = authority_key_file(tmp_path)
    pool = Sv2TestPool()
    await pool.start()
    proxy = await proxy_factory(
        [pool.url("main")],
        listen=["sv2=127.0.0.1:0"],
        **{
            "sv2.authority_key_file": key_file,
            **FORWARD_ALL,
            "aggregate.identity_passthrough": worker_channels,
        },
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
        # One pool connection; on it a channel per worker, or one for both under the
        # farm's name.  A worker's channel closes when its miner leaves.
        (conn,) = pool.connections()
        assert len(conn.channels) + len(conn.closed_channels) == (2 if worker_channels else 1)
    finally:
        await proxy.shutdown()
        await pool.close()
    rows = proxy.rows()
    assert len(rows) == 16 and {r["protocol"] for r in rows} == {"sv2"}
    for i, miner in enumerate(miners):
        assert miner.errors == [] and miner.setup_error == "" and miner.open_error == ""
        for submit in miner.submits:
            assert submit.verdict == (ACCEPTED if submit.meant_valid else "difficulty-too-low")
        mine = {r["share_hash"] for r in rows if r["worker"] == f"farm.rig{i}"}
        assert mine == {s.hash_int.to_bytes(32, "big").hex() for s in miner.submits}
    # The bad shares are the proxy's to refuse (below the miner's target): the pool
    # judged exactly the good ones, each with the header the row has.
    _check_rows_against_pool(rows, pool, worker_channels=worker_channels)
    assert all(j.accepted for j in pool.judged) and len(pool.judged) == 12


async def test_each_pool_rejection_reaches_the_sv2_miner_with_its_code(
    proxy_factory: Any, tmp_path: Path
) -> None:
    key_file, public = authority_key_file(tmp_path)
    pool = Sv2TestPool()
    await pool.start()
    # The pool's codes, in order; the miner's codes are the ones SV2 firmware knows.
    pool.force_errors("stale-share", "duplicate-share", "difficulty-too-low", "invalid-share")
    proxy = await proxy_factory(
        [pool.url("main")],
        listen=["sv2=127.0.0.1:0"],
        **{"sv2.authority_key_file": key_file, **FORWARD_ALL},
    )
    miner = Sv2TestMiner(Sv2MinerConfig(authority_key=public, channel="extended", max_submits=6))
    try:
        async with asyncio.timeout(60):
            await miner.run("127.0.0.1", proxy.port)
    finally:
        await proxy.shutdown()
        await pool.close()
    assert [s.verdict for s in miner.submits] == [
        "stale-share",
        "duplicate-share",
        "difficulty-too-low",
        "invalid-share",
        ACCEPTED,
        ACCEPTED,
    ]
    rows = proxy.rows()
    reasons = {r["share_hash"]: r["reject_reason"] for r in rows}
    hashes = [s.hash_int.to_bytes(32, "big").hex() for s in miner.submits]
    assert [reasons[h] for h in hashes] == [
        "stale-share",
        "duplicate-share",
        "difficulty-too-low",
        "invalid-share",
        "",
        "",
    ]
    _check_rows_against_pool(rows, pool, worker_channels=True)


@pytest.mark.parametrize("worker_channels", [True, False])
async def test_sv1_miners_aggregated_onto_an_sv2_pool(
    proxy_factory: Any, worker_channels: bool
) -> None:
    """SV1 miners name themselves after their subscribe is answered: they start on the
    farm's channel and, with identity pass-through, move to their own when it has work."""
    pool = Sv2TestPool()
    await pool.start()
    proxy = await proxy_factory(
        [pool.url("main")],
        mode="aggregate",
        **{**FORWARD_ALL, "aggregate.identity_passthrough": worker_channels},
    )
    miners = [
        TestMiner(MinerConfig(workers=(f"farm1.rig{i}",), max_submits=6, bad_share_every=3))
        for i in range(3)
    ]
    try:
        async with asyncio.timeout(60):
            await asyncio.gather(*(m.run("127.0.0.1", proxy.port) for m in miners))
        (conn,) = pool.connections()  # one connection either way
        # The farm's channel, kept, and each miner's (closed when it left).
        closed = 3 if worker_channels else 0
        await pool.wait_for(lambda: len(conn.closed_channels) == closed, timeout=10)
        assert len(conn.channels) == 1
    finally:
        await proxy.shutdown()
        await pool.close()
    rows = proxy.rows()
    assert len(rows) == 18 and {r["protocol"] for r in rows} == {"sv1"}
    _check_rows_against_pool(rows, pool, farm_first=worker_channels)
    if worker_channels:  # the last shares, at least, under each miner's own name
        assert {j.user_identity for j in pool.judged[-3:]} <= {f"farm1.rig{i}" for i in range(3)}
    answered = Counter(s.accepted for m in miners for s in m.submits)
    assert answered[True] == sum(r["status"] == "accepted" for r in rows) == 12


async def test_an_sv2_pool_that_dies_fails_over_to_an_sv1_pool_and_back(
    proxy_factory: Any, tmp_path: Path
) -> None:
    """The SV2 miners keep their connection through both moves; every share has a verdict.

    Two workers' channels share the SV2 pool's connection: its loss moves both.
    """
    key_file, public = authority_key_file(tmp_path)
    main = Sv2TestPool(Sv2PoolConfig(seed=3))
    backup = TestPool(PoolConfig(seed=2))
    await main.start()
    await backup.start()
    port = main.port
    proxy = await proxy_factory(
        [main.url("main"), f"backup=stratum+tcp://127.0.0.1:{backup.port}"],
        listen=["sv2=127.0.0.1:0"],
        **{
            "sv2.authority_key_file": key_file,
            **FORWARD_ALL,
            "aggregate.failback": "priority",
            "aggregate.failback_check_s": 0.5,
        },
    )
    miners = [
        Sv2TestMiner(
            Sv2MinerConfig(authority_key=public, channel=channel, user_identity=name, duration=12)
        )
        for name, channel in (("farm.a", "standard"), ("farm.b", "extended"))
    ]
    revived: Sv2TestPool | None = None
    try:
        task = asyncio.gather(*(m.run("127.0.0.1", proxy.port) for m in miners))
        await main.wait_for(lambda: len(main.judged) >= 5, timeout=20)
        await main.close()
        await backup.wait_until(lambda: len(backup.judged) >= 5, timeout=20)
        revived = Sv2TestPool(Sv2PoolConfig(seed=4))
        await revived.start(port=port)
        await revived.wait_for(lambda: len(revived.judged) >= 5, timeout=20)
        async with asyncio.timeout(30):
            await task
    finally:
        await proxy.shutdown()
        await backup.close()
        if revived is not None:
            await revived.close()
    for miner in miners:
        assert miner.errors == [] and miner.closed_by_pool == ""
        assert all(s.verdict is not None for s in miner.submits)
        assert miner.submits[-1].verdict == ACCEPTED
    for worker in ("farm.a", "farm.b"):
        upstreams = [r["upstream"] for r in sorted(proxy.rows(), key=lambda r: r["ts"])
                     if r["forwarded"] and r["worker"] == worker]  # fmt: skip
        # main, then the backup, then main again (fail-back by priority).
        changes = [u for i, u in enumerate(upstreams) if i == 0 or upstreams[i - 1] != u]
        assert changes == ["main", "backup", "main"]
    # Back on main, each worker mines on its own channel again (opened for the
    # fail-back), all on one connection.
    assert {j.user_identity for j in revived.judged} == {"farm.a", "farm.b"}
    assert len({j.connection for j in revived.judged}) == 1


@pytest.mark.parametrize("fault", ["closes the channel", "grants too little extranonce"])
async def test_an_unusable_sv2_channel_sends_the_miners_to_the_backup(
    proxy_factory: Any, tmp_path: Path, fault: str
) -> None:
    key_file, public = authority_key_file(tmp_path)
    small = fault == "grants too little extranonce"
    config = Sv2PoolConfig(grant_extranonce_size=3 if small else 0)
    main, backup = Sv2TestPool(config), TestPool(PoolConfig(seed=2))
    await main.start()
    await backup.start()
    proxy = await proxy_factory(
        [main.url("main"), f"backup=stratum+tcp://127.0.0.1:{backup.port}"],
        listen=["sv2=127.0.0.1:0"],
        **{
            "sv2.authority_key_file": key_file,
            **FORWARD_ALL,
            "aggregate.failback": "stay",
            # The farm's own channel: its loss is the pool's (a worker's is not, below).
            "aggregate.identity_passthrough": False,
        },
    )
    miner = Sv2TestMiner(Sv2MinerConfig(authority_key=public, max_submits=40))
    try:
        task = asyncio.create_task(miner.run("127.0.0.1", proxy.port))
        if fault == "closes the channel":
            await main.wait_for(lambda: len(main.judged) >= 3, timeout=20)
            main.close_channels("pool-maintenance")
        async with asyncio.timeout(60):
            await task
    finally:
        await proxy.shutdown()
        await main.close()
        await backup.close()
    assert miner.errors == [] and miner.closed_by_pool == ""
    assert all(s.verdict is not None for s in miner.submits)
    assert miner.submits[-1].verdict == ACCEPTED
    rows = [r for r in proxy.rows() if r["forwarded"]]
    assert rows[-1]["upstream"] == "backup"
    if small:
        assert main.judged == [] and {r["upstream"] for r in rows} == {"backup"}


async def test_a_worker_name_the_sv2_pool_refuses_mines_under_the_farms_account(
    proxy_factory: Any, tmp_path: Path
) -> None:
    """Not a pool failure: the refused worker moves to the shared channel, the pool stays."""
    key_file, public = authority_key_file(tmp_path)
    main = Sv2TestPool(Sv2PoolConfig(refuse_users=("farm.bad",)))
    backup = TestPool(PoolConfig(seed=2))
    await main.start()
    await backup.start()
    proxy = await proxy_factory(
        [main.url("main"), f"backup=stratum+tcp://127.0.0.1:{backup.port}"],
        listen=["sv2=127.0.0.1:0"],
        **{"sv2.authority_key_file": key_file, **FORWARD_ALL},
    )
    miners = [
        Sv2TestMiner(Sv2MinerConfig(authority_key=public, user_identity=name, max_submits=6))
        for name in ("farm.good", "farm.bad")
    ]
    try:
        async with asyncio.timeout(60):
            await asyncio.gather(*(m.run("127.0.0.1", proxy.port) for m in miners))
        (hub,) = proxy.server.hubs.values()
        assert hub.statistics()["worker_channels_refused"] == 1
        assert hub.core.pool_down_until == {}  # main was never marked down
    finally:
        await proxy.shutdown()
        await main.close()
        await backup.close()
    for miner in miners:
        assert miner.errors == [] and miner.open_error == ""
        assert [s.verdict for s in miner.submits] == [ACCEPTED] * 6
    assert backup.judged == []
    credited = Counter(j.user_identity for j in main.judged)
    assert credited == {"farm.good": 6, "farm1": 6}
    rows = proxy.rows()
    assert {r["worker"] for r in rows if r["upstream"] == "main"} == {"farm.good", "farm.bad"}


async def test_a_worker_channel_the_pool_closes_moves_to_the_farms_channel(
    proxy_factory: Any, tmp_path: Path
) -> None:
    key_file, public = authority_key_file(tmp_path)
    main = Sv2TestPool()
    await main.start()
    proxy = await proxy_factory(
        [main.url("main")],
        listen=["sv2=127.0.0.1:0"],
        **{"sv2.authority_key_file": key_file, **FORWARD_ALL},
    )
    miner = Sv2TestMiner(
        Sv2MinerConfig(authority_key=public, user_identity="farm.rig7", max_submits=40)
    )
    try:
        task = asyncio.create_task(miner.run("127.0.0.1", proxy.port))
        await main.wait_for(lambda: len(main.judged) >= 3, timeout=20)
        main.close_channels("pool-maintenance")
        async with asyncio.timeout(60):
            await task
        (hub,) = proxy.server.hubs.values()
        assert hub.statistics()["worker_channels_refused"] == 1
    finally:
        await proxy.shutdown()
        await main.close()
    assert miner.errors == [] and miner.closed_by_pool == ""
    assert all(s.verdict is not None for s in miner.submits)
    assert miner.submits[-1].verdict == ACCEPTED
    identities = [j.user_identity for j in main.judged]
    assert identities[0] == "farm.rig7" and identities[-1] == "farm1"


async def test_a_pool_that_stops_answering_times_out_each_workers_shares(
    proxy_factory: Any, tmp_path: Path
) -> None:
    """Two worker channels on one connection: each share gets its own no_response."""
    key_file, public = authority_key_file(tmp_path)
    pool = Sv2TestPool(Sv2PoolConfig(answer_shares=False))
    await pool.start()
    proxy = await proxy_factory(
        [pool.url("main")],
        listen=["sv2=127.0.0.1:0"],
        **{"sv2.authority_key_file": key_file, **FORWARD_ALL, "limits.submit_timeout_s": 0.5},
    )
    miners = [
        Sv2TestMiner(Sv2MinerConfig(authority_key=public, user_identity=name, max_submits=3))
        for name in ("farm.a", "farm.b")
    ]
    try:
        async with asyncio.timeout(60):
            await asyncio.gather(*(m.run("127.0.0.1", proxy.port) for m in miners))
    finally:
        await proxy.shutdown()
        await pool.close()
    for miner in miners:
        assert len(miner.submits) == 3
        assert all(s.verdict not in (None, ACCEPTED) for s in miner.submits)
    rows = proxy.rows()
    assert Counter((r["worker"], r["status"]) for r in rows) == {
        ("farm.a", "no_response"): 3,
        ("farm.b", "no_response"): 3,
    }
    assert Counter(j.user_identity for j in pool.judged) == {"farm.a": 3, "farm.b": 3}


async def test_an_sv2_pool_that_takes_the_connection_but_never_answers_is_left(
    proxy_factory: Any, tmp_path: Path
) -> None:
    """A stalled handshake: no channel within the connect timeout, so the backup serves."""
    key_file, public = authority_key_file(tmp_path)
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # reads nothing, answers nothing

    stalled = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = stalled.sockets[0].getsockname()[1]
    key = Sv2TestPool().authority_key
    backup = TestPool(PoolConfig(seed=2))
    await backup.start()
    proxy = await proxy_factory(
        [f"main=stratum2+tcp://127.0.0.1:{port}/{key}",
         f"backup=stratum+tcp://127.0.0.1:{backup.port}"],
        listen=["sv2=127.0.0.1:0"],
        **{"sv2.authority_key_file": key_file, **FORWARD_ALL, "limits.connect_timeout_s": 1.0,
           "aggregate.failback": "stay"},
    )  # fmt: skip
    miner = Sv2TestMiner(
        Sv2MinerConfig(authority_key=public, user_identity="farm.a", max_submits=3)
    )
    try:
        async with asyncio.timeout(30):
            await miner.run("127.0.0.1", proxy.port)
    finally:
        await proxy.shutdown()
        stalled.close()
        for writer in accepted:
            writer.close()
        await backup.close()
    assert accepted  # the proxy did connect to the stalled pool first
    assert miner.errors == [] and [s.verdict for s in miner.submits] == [ACCEPTED] * 3
    assert {r["upstream"] for r in proxy.rows()} == {"backup"}
