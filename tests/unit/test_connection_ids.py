"""Connection ids: reserved in blocks that are saved before use, so no restart repeats one."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import orjson
import pytest

from stratum_proxy.errors import StoreError
from stratum_proxy.store.connection_ids import IDS_FILE, MAX_ID, ConnectionIds


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def warning(self, event: str, **kw: Any) -> None:
        self.lines.append(("warning", event, kw))

    def error(self, event: str, **kw: Any) -> None:
        self.lines.append(("error", event, kw))


def _saved(directory: Path) -> int:
    return int(orjson.loads((directory / IDS_FILE).read_bytes())["next"])


def test_a_new_directory_numbers_from_one_and_saves_the_block_first(tmp_path: Path) -> None:
    ids = ConnectionIds(tmp_path, block=8)
    assert not (tmp_path / IDS_FILE).exists()  # nothing written until an id is needed
    got = [ids() for _ in range(20)]
    assert got == list(range(1, 21))
    assert _saved(tmp_path) == 25  # blocks [1, 9), [9, 17), [17, 25)
    assert stat.S_IMODE((tmp_path / IDS_FILE).stat().st_mode) == 0o600


def test_a_restart_without_a_clean_stop_never_repeats_an_id(tmp_path: Path) -> None:
    seen: set[int] = set()
    for run in range(5):  # each run is abandoned mid-block, as a crash would
        ids = ConnectionIds(tmp_path, block=8)
        taken = [ids() for _ in range(3 + run * 5)]
        assert not seen & set(taken)
        assert max(taken) < _saved(tmp_path)  # every id handed out lies below the saved end
        seen |= set(taken)


def test_ids_wrap_to_one_at_the_uint32_limit_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / IDS_FILE).write_bytes(orjson.dumps({"next": MAX_ID - 2}))
    log = _Log()
    ids = ConnectionIds(tmp_path, block=4, log=log)
    assert [ids() for _ in range(3)] == [1, 2, 3]  # a block would pass 2**32 - 1
    assert log.lines[0][:2] == ("warning", "connection_ids_wrapped")
    assert all(0 < n <= MAX_ID for n in (ids() for _ in range(10)))


@pytest.mark.parametrize(
    "content", [b"{not json", b"[1, 2]", b'{"next": 0}', b'{"next": "7"}', b'{"next": 5e9}']
)
def test_a_damaged_file_is_refused_with_what_to_do(tmp_path: Path, content: bytes) -> None:
    (tmp_path / IDS_FILE).write_bytes(content)
    with pytest.raises(StoreError) as info:
        ConnectionIds(tmp_path)
    assert IDS_FILE in str(info.value) and "delete it" in str(info.value)


def test_a_block_that_cannot_be_saved_is_used_anyway_and_logged(tmp_path: Path) -> None:
    log = _Log()
    ids = ConnectionIds(tmp_path, block=4, log=log)
    (tmp_path / (IDS_FILE + ".tmp")).mkdir()  # the write fails, even for root
    assert [ids() for _ in range(6)] == [1, 2, 3, 4, 5, 6]  # miners are not refused
    assert [line[1] for line in log.lines] == ["connection_ids_not_saved"] * 2
    assert "may repeat" in log.lines[0][2]["note"]
