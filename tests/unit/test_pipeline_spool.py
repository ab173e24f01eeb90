"""The spool on its own: record format, corruption, torn tails, trimming, the cap, the lock."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from stratum_proxy.errors import StoreBusyError
from stratum_proxy.store.faults import synthetic_record
from stratum_proxy.store.record import COLUMNS
from stratum_proxy.store.spool import Spool
from stratum_proxy.store.spool_admin import spool_status
from stratum_proxy.store.spool_format import (
    CHUNK_ROWS,
    FILE_HEADER,
    decode_payload,
    encode_payload,
    encode_record,
    parse_records,
)
from stratum_proxy.store.spool_reader import CorruptionReport, SpoolReader, directory_segments
from stratum_proxy.store.spool_state import Inflight, SpoolState, load_state, save_state


def open_spool(path: Path, **kw: int) -> Spool:
    spool = Spool(
        path, segment_bytes=kw.get("segment_bytes", 1 << 20), max_bytes=kw.get("max_bytes", 1 << 30)
    )
    spool.open()
    return spool


def fill(spool: Spool, seqs: range, *, queued: bool = False) -> list[int]:
    """Write the rows; returns the seqs the spool did not take."""
    items = [(seq, synthetic_record(seq, ts=1.0), queued) for seq in seqs]
    result = spool.write(items, sync=True)  # type: ignore[arg-type]
    assert result.error is None
    return [seq for seq, _, _ in result.not_journaled]


def read_all(path: Path, min_seq: int = 0) -> tuple[list[int], list[CorruptionReport]]:
    damage: list[CorruptionReport] = []
    reader = SpoolReader(path, directory_segments(path), damage.append)
    rows = reader.read(min_seq, 1 << 30)
    reader.finish()
    return [seq for seq, _ in rows], damage


def test_payload_round_trip_is_exact() -> None:
    record = synthetic_record(7)
    record = record._replace(
        worker='rig "7"\n\tünï\\code',
        share_difficulty=0.1 + 0.2,
        response_ms=math.nextafter(12.5, 13),
    )
    assert decode_payload(encode_payload(record)) == record


def test_rows_from_an_older_release_get_default_trailing_columns() -> None:
    record = synthetic_record(3)
    values = list(encode_payload(record)[1:-1].split(b","))  # JSON array body
    first_release = b"[" + b",".join(values[: COLUMNS.index("version_bits")]) + b"]"
    back = decode_payload(first_release)
    assert back.version_bits == "" and back.extranonce1 == "" and back.nonce == record.nonce
    assert back.connection_id == 0 and back.verdict_by == "" and back.forwarded is False
    # A release with version_bits and extranonce1, but not the later columns.
    newer = decode_payload(b"[" + b",".join(values[: COLUMNS.index("connection_id")]) + b"]")
    assert newer.extranonce1 == record.extranonce1 and newer.connection_id == 0


def test_parse_resynchronises_after_a_damaged_record() -> None:
    records = [encode_record(seq, encode_payload(synthetic_record(seq))) for seq in range(10, 20)]
    buf = bytearray(b"".join(records))
    start_of_third = len(records[0]) + len(records[1])
    buf[start_of_third + 25] ^= 0x01  # inside the third record's payload
    parsed = parse_records(bytes(buf), 0)
    assert [c.first_seq for c in parsed.records] == [10, 11, *range(13, 20)]
    assert len(parsed.corruptions) == 1 and parsed.corruptions[0].reason == "crc mismatch"
    assert parsed.corruptions[0].offset == start_of_third


def test_segments_rotate_and_trim_only_acknowledged(tmp_path: Path) -> None:
    spool = open_spool(tmp_path, segment_bytes=64 * 1024)
    fill(spool, range(1, 1001))
    segments = spool.segments()
    assert len(segments) > 3
    cut = segments[2].first_seq  # rows before it are in the first two segments
    spool.trim(cut - 2)  # the second segment still holds an unacknowledged row
    assert spool.segments()[0].first_seq == segments[1].first_seq
    spool.trim(cut - 1)
    assert spool.segments()[0].first_seq == cut
    seqs, damage = read_all(tmp_path)
    assert seqs == list(range(cut, 1001)) and damage == []
    spool.close(acked_seq=1000)
    assert list(tmp_path.glob("seg-*")) == []


def test_torn_tail_is_cut_on_open(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    fill(spool, range(1, 101))
    spool.close()
    segment = next(tmp_path.glob("seg-*"))
    whole = segment.stat().st_size
    with open(segment, "ab") as f:  # a crash in the middle of appending a record
        f.write(encode_record(101, encode_payload(synthetic_record(101)))[:40])
    again = Spool(tmp_path, segment_bytes=1 << 20, max_bytes=1 << 30)
    recovery = again.open()
    assert recovery.torn_bytes == 40 and recovery.last_seq == 100
    assert segment.stat().st_size == whole
    again.close()
    assert read_all(tmp_path)[0] == list(range(1, 101))


def test_damage_at_a_segment_start_counts_rows_from_the_seq_gap(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    last = 2 * CHUNK_ROWS + 50  # three chunks: damage takes the first one only
    fill(spool, range(1, last + 1))
    spool.close()
    segment = next(tmp_path.glob("seg-*"))
    data = bytearray(segment.read_bytes())
    data[len(FILE_HEADER) + 2] ^= 0xFF  # first record's length field
    segment.write_bytes(bytes(data))
    seqs, damage = read_all(tmp_path)
    assert seqs == list(range(CHUNK_ROWS + 1, last + 1))
    assert [(d.rows_lost, d.exact) for d in damage] == [(CHUNK_ROWS, True)]


def test_disk_cap_sheds_spool_only_rows_and_tracks_queued_ones(tmp_path: Path) -> None:
    spool = open_spool(tmp_path, max_bytes=64 * 1024, segment_bytes=16 * 1024)
    refused = fill(spool, range(1, 1001))
    assert spool.full and refused
    assert spool.bytes_on_disk <= 64 * 1024
    written = len(read_all(tmp_path)[0])
    assert written + len(refused) == 1000
    assert fill(spool, range(1001, 1011), queued=True) == list(range(1001, 1011))
    spool.trim(1000)  # everything acknowledged: space again
    assert not spool.full
    spool.close()


def test_second_user_of_a_spool_is_refused(tmp_path: Path) -> None:
    first = open_spool(tmp_path)
    with pytest.raises(StoreBusyError, match="in use by pid"):
        Spool(tmp_path, segment_bytes=1 << 20, max_bytes=1 << 30).open()
    first.close()
    open_spool(tmp_path).close()


def test_state_round_trip(tmp_path: Path) -> None:
    state = SpoolState(
        proxy_id="p", acked_seq=41, inflight=Inflight(first_seq=42, last_seq=50, token="p:42:50")
    )
    save_state(tmp_path, state, sync=True)
    assert load_state(tmp_path) == state
    assert load_state(tmp_path / "missing") == SpoolState()


def test_unencodable_row_is_counted_not_fatal(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    bad = synthetic_record(1)._replace(channel_id=1 << 70)  # beyond 64 bits: orjson refuses it
    spool.write([(1, bad, False)], sync=False)  # type: ignore[list-item]
    fill(spool, range(2, 4))
    assert spool.rows_unencodable == 1
    assert read_all(tmp_path)[0] == [2, 3]
    spool.close()


def test_reader_keeps_up_with_a_growing_active_segment(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    reader = SpoolReader(tmp_path, lambda: [(s.first_seq, s.size) for s in spool.segments()], print)
    fill(spool, range(1, 11))
    assert [seq for seq, _ in reader.read(1, 100)] == list(range(1, 11))
    assert reader.exhausted
    fill(spool, range(11, 16))
    rows = reader.read(11, 100)
    assert [seq for seq, _ in rows] == list(range(11, 16))
    assert type(rows[0][1]) is tuple and rows[0][1] == synthetic_record(11, ts=1.0)
    spool.close()


def test_segments_of_the_one_row_format_still_replay(tmp_path: Path) -> None:
    old = [encode_record(seq, encode_payload(synthetic_record(seq))) for seq in range(5, 25)]
    (tmp_path / "seg-00000000000000000005.spool").write_bytes(FILE_HEADER + b"".join(old))
    spool = Spool(tmp_path, segment_bytes=1 << 20, max_bytes=1 << 30)
    assert spool.open().last_seq == 24
    fill(spool, range(25, 30))  # new chunks after the old records
    spool.close()
    seqs, damage = read_all(tmp_path)
    assert seqs == list(range(5, 30)) and damage == []


def test_rows_of_a_chunk_beyond_below_wait_for_the_next_read(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    fill(spool, range(1, 101))  # one chunk
    damage: list[CorruptionReport] = []
    reader = SpoolReader(tmp_path, directory_segments(tmp_path), damage.append)
    first = reader.read(1, 1000, below=40)
    assert [seq for seq, _ in first] == list(range(1, 40))
    assert [seq for seq, _ in reader.read(60, 1000)] == list(range(60, 101))
    assert damage == []
    spool.close()


def test_a_chunk_at_the_disk_cap_is_split_to_keep_what_fits(tmp_path: Path) -> None:
    spool = open_spool(tmp_path, max_bytes=20 * 1024, segment_bytes=64 * 1024)
    refused = fill(spool, range(1, CHUNK_ROWS + 1))  # one run, far larger than the cap
    written = len(read_all(tmp_path)[0])
    assert written > 0 and spool.bytes_on_disk <= 20 * 1024
    assert written + len(refused) == CHUNK_ROWS
    spool.close()


@pytest.mark.parametrize("batch", [1, 7, 300, 1000])
def test_small_reads_walk_the_whole_spool_holding_at_most_one_chunk(
    tmp_path: Path, batch: int
) -> None:
    # Several segments of many chunks, read back in reads smaller and larger
    # than a chunk: every row once, in order, never decoding far ahead.
    spool = open_spool(tmp_path, segment_bytes=64 * 1024)
    for start in range(1, 5001, 500):
        fill(spool, range(start, start + 500))
    assert len(spool.segments()) > 2
    reader = SpoolReader(tmp_path, directory_segments(tmp_path), print)
    seen: list[int] = []
    next_seq = 1
    while True:
        rows = reader.read(next_seq, batch)
        assert len(rows) <= batch
        assert len(reader._held) < 256  # at most the rest of one chunk
        if rows:
            next_seq = rows[-1][0] + 1
        seen.extend(seq for seq, _ in rows)
        if reader.exhausted:
            break
    assert seen == list(range(1, 5001))
    spool.close()
    assert spool_status(tmp_path)["rows"] == 5000


def test_the_handoff_tracks_rows_the_spool_refused() -> None:
    """At the disk cap: a queued row is kept as in memory only, a spool-only row is shed."""
    import tempfile

    from stratum_proxy.store.handoff import Handoff

    with tempfile.TemporaryDirectory() as tmp:
        spool = open_spool(Path(tmp), max_bytes=16 * 1024, segment_bytes=8 * 1024)
        handoff = Handoff(spool, queue_size=40, buffer_rows=10_000)
        handoff.next_seq = 1
        for i in range(200):  # 40 fit the queue, the rest spill to the journal only
            handoff.put(synthetic_record(i, ts=1.0))
        handoff.journal(sync=True)
        stats = handoff.snapshot()
        assert spool.full and stats["spill"] == 1 and stats["spool_pending"] == 0
        assert stats["queue_depth"] == 40
        on_disk = len(read_all(Path(tmp))[0])
        unjournaled = handoff.lost_after(0)
        assert set(unjournaled) <= set(range(1, 41))  # only queued rows may be memory-only
        assert on_disk + len(unjournaled) + spool.rows_shed == 200
        handoff.acknowledged(40)
        assert handoff.lost_after(0) == []
        spool.close()
