"""The simulated peers' block-template pieces, checked against Bitcoin facts."""

from __future__ import annotations

import random
import struct

from hypothesis import given
from hypothesis import strategies as st

from stratum_proxy.shares import DIFF1_TARGET, Job, compute_share
from stratum_proxy.sim.chain import (
    Template,
    bip34_height_push,
    fake_branch,
    hash_difficulty,
    header_hash_int,
    share_target,
    split_coinbase,
    swap_words,
)
from stratum_proxy.sim.demo import CANDIDATES_NOTE, WorkerRow, render_table
from stratum_proxy.sim.hasher import search, spread_bits, template_from_notify


def test_share_target_is_exact() -> None:
    assert share_target(1) == DIFF1_TARGET
    assert share_target(2) == DIFF1_TARGET // 2
    assert share_target(0.5) == DIFF1_TARGET * 2
    # 1e-6 is not exact in binary; the target must still be within one unit of the ideal.
    assert abs(share_target(1e-6) - DIFF1_TARGET * 10**6) < DIFF1_TARGET * 10**6 // 10**12


def test_bip34_height_push_matches_real_coinbases() -> None:
    # Real scriptSigs: block 840,000 starts 03 40 d1 0c; 227,836 (first BIP34 block) 03 fc 79 03.
    assert bip34_height_push(840_000) == bytes.fromhex("0340d10c")
    assert bip34_height_push(227_836) == bytes.fromhex("03fc7903")
    # 128 needs a sign byte: 0x80 alone would be a negative number.
    assert bip34_height_push(128) == bytes.fromhex("028000")


def test_coinbase_has_the_extranonce_at_the_end_of_the_script_sig() -> None:
    coinb1, coinb2 = split_coinbase(840_000, 12)
    # version(4) + input count(1) + null prevout(36) + script length(1)
    script_len = coinb1[41]
    script_head = coinb1[42:]
    assert script_len == len(script_head) + 12
    assert script_head.startswith(bytes.fromhex("0340d10c"))
    assert coinb2.startswith(b"\xff\xff\xff\xff\x01")  # sequence, then one output
    assert coinb2.endswith(b"\x00\x00\x00\x00")  # locktime


def test_swap_words_is_an_involution() -> None:
    data = bytes(range(32))
    assert swap_words(data)[:4] == bytes([3, 2, 1, 0])
    assert swap_words(swap_words(data)) == data


@given(st.integers(0, 2**16 - 1), st.integers(0, 2**32 - 1))
def test_spread_bits_stays_inside_the_mask(counter: int, mask: int) -> None:
    bits = spread_bits(counter, mask)
    assert bits & ~mask == 0
    assert bin(bits).count("1") <= bin(counter).count("1")


def test_spread_bits_is_distinct_per_counter_within_the_mask_width() -> None:
    mask = 0x1FFFE000  # 16 bits
    assert len({spread_bits(c, mask) for c in range(1 << 16)}) == 1 << 16


def _template(rng: random.Random) -> Template:
    coinb1, coinb2 = split_coinbase(900_001, 12)
    return Template(
        job_id="7", height=900_001, prevhash=rng.randbytes(32), coinb1=coinb1, coinb2=coinb2,
        branch=fake_branch(rng, 3), version=0x20000000, nbits=0x1F00FFFF, ntime=0x6700_0000,
        clean=True,
    )  # fmt: skip


def test_sim_header_hash_equals_the_share_math_of_the_proxy() -> None:
    rng = random.Random(5)
    template = _template(rng)
    en1, en2 = bytes.fromhex("0a0b0c0d"), bytes.fromhex("0100000000000000")
    job = Job(
        job_id="7", prevhash=template.prevhash, coinb1=template.coinb1, coinb2=template.coinb2,
        merkle_branch=template.branch, version=template.version, nbits=template.nbits,
        ntime=template.ntime, clean_jobs=True, extranonce1=en1, pool_difficulty=1e-6,
    )  # fmt: skip
    prefix = template.header_prefix(en1, en2)
    for nonce in (0, 1, 0xDEADBEEF):
        ours = header_hash_int(prefix, 0x20002000, template.ntime, template.nbits, nonce)
        theirs = compute_share(job, en2, template.ntime, nonce, 0x20002000)
        assert ours == theirs.hash_int
        assert hash_difficulty(ours) == theirs.difficulty


def test_notify_round_trip_and_search() -> None:
    template = _template(random.Random(9))
    parsed = template_from_notify(template.notify_params())
    assert parsed.prevhash == template.prevhash
    assert parsed.branch == template.branch
    header = struct.pack("<I", 0x20000000) + template.header_prefix(b"\x01" * 4, b"\x02" * 8)
    header += struct.pack("<II", template.ntime, template.nbits)
    target = share_target(1e-6)  # about one hash in 4,300 meets it
    nonce = search(header, target, 0, 1 << 18)
    assert nonce is not None
    value = header_hash_int(header[4:68], 0x20000000, template.ntime, template.nbits, nonce)
    assert value <= target
    bad = search(header, target, 0, 100, want_valid=False)
    assert bad is not None
    assert header_hash_int(header[4:68], 0x20000000, template.ntime, template.nbits, bad) > target


def test_render_table_lists_each_worker_and_totals() -> None:
    rows = [
        WorkerRow(worker=f"w{i}", submitted=10, accepted=9, rejected=1, unanswered=0, candidates=i,
                  best_difficulty=0.5, hashrate=2.5e6, mean_rtt_ms=1.0, last_reject="Stale job")
        for i in range(3)
    ]  # fmt: skip
    table = render_table(rows, title="demo")
    lines = table.splitlines()
    assert lines[0] == "demo"
    assert [line.split()[0] for line in lines[3:6]] == ["w0", "w1", "w2"]
    assert lines[1].split()[5] == "cands"
    total = lines[-2].split()
    assert total[:6] == ["total", "30", "27", "3", "0", "3"]
    assert "7.5 MH/s" in lines[-2]
    assert lines[-1] == CANDIDATES_NOTE and "not Bitcoin blocks" in lines[-1]
