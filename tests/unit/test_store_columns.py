"""The one definition of the share columns, and every row builder filling it by name."""

from __future__ import annotations

import orjson

from stratum_proxy.store.record import (
    COLUMN_SPECS,
    COLUMNS,
    DEFAULTS,
    ShareRecord,
    columns_since,
    empty_row,
)
from stratum_proxy.store.schema import MIGRATIONS, SHARES_COLUMNS
from stratum_proxy.sv1.events import ShareResolved
from stratum_proxy.sv1.messages import Submit
from stratum_proxy.sv1.records import ShareContext
from stratum_proxy.sv1.tracker import Sv1Tracker
from stratum_proxy.translate.shares import new_draft, row_template

# The order rows are kept in on disk (spool chunks, dead-letter lines) and sent
# in.  Appending is the only change allowed: a spool written by an older release
# must read back column for column.
FROZEN_ORDER = (
    "ts", "proxy_id", "upstream", "protocol", "channel_id", "worker", "miner_addr", "job_id",
    "extranonce2", "ntime", "nonce", "version", "share_hash", "share_difficulty",
    "pool_difficulty", "network_difficulty", "status", "reject_reason", "is_block",
    "response_ms", "version_bits", "extranonce1", "connection_id", "miner_difficulty",
    "forwarded", "verdict_by", "manual",
)  # fmt: skip


def test_columns_are_only_ever_appended() -> None:
    assert COLUMNS[: len(FROZEN_ORDER)] == FROZEN_ORDER
    assert len(COLUMNS) == len(FROZEN_ORDER), "a new column: append it here too"
    # A column added after the first release has a default (older rows read back
    # with it) and a migration that adds it; migrations only ever grow.
    since = [spec.since for spec in COLUMN_SPECS]
    assert since == sorted(since)
    versions = {m.version for m in MIGRATIONS}
    for name, spec in zip(COLUMNS, COLUMN_SPECS, strict=True):
        assert spec.since in versions
        assert (name in DEFAULTS) == (spec.since > 1), name
    assert [n for n, _ in columns_since(4)] == ["connection_id"]
    assert [n for n, _ in columns_since(5)] == ["miner_difficulty", "forwarded", "verdict_by"]
    assert [n for n, _ in columns_since(6)] == ["manual"]
    assert [n for n, _ in SHARES_COLUMNS] == list(COLUMNS)


def test_an_empty_row_has_every_column_at_its_empty_value() -> None:
    row = ShareRecord(*empty_row())
    assert row.status == "no_response"
    assert (row.ts, row.worker, row.channel_id, row.is_block, row.connection_id) == (
        0.0, "", 0, False, 0,
    )  # fmt: skip


def _distinct_submit() -> tuple[bytes, dict[str, str]]:
    fields = {
        "worker": "rig.W",
        "job_id": "J17",
        "extranonce2": "e2e2e2e2",
        "ntime": "a1a1a1a1",
        "nonce": "b2b2b2b2",
        "version_bits": "00c0c000",
    }
    params = [fields[k] for k in ("worker", "job_id", "extranonce2", "ntime", "nonce")]
    params.append(fields["version_bits"])
    line = orjson.dumps({"id": 5, "method": "mining.submit", "params": params}) + b"\n"
    return line, fields


def test_the_passthrough_row_holds_each_value_in_its_own_column() -> None:
    context = ShareContext(
        proxy_id="PX", upstream="UP", channel_id=41, miner_addr="MA:1", connection_id=42
    )
    tracker = Sv1Tracker(context=context)
    line, fields = _distinct_submit()
    tracker.miner_data(line, 123.5)  # an unknown job: still a row
    (event,) = tracker.pool_data(b'{"id":5,"result":false,"error":[21,"Stale",null]}\n', 124.0)
    assert isinstance(event, ShareResolved)
    row = event.record._asdict()
    for name, value in fields.items():
        assert row[name] == value, name
    assert row == row | {
        "ts": 123.5, "proxy_id": "PX", "upstream": "UP", "protocol": "sv1", "channel_id": 41,
        "miner_addr": "MA:1", "connection_id": 42, "status": "rejected",
        "reject_reason": "21 Stale", "response_ms": 500.0, "share_hash": "",
        "forwarded": True, "verdict_by": "pool", "miner_difficulty": 1.0,
    }  # fmt: skip


def test_the_translate_row_holds_each_value_in_its_own_column() -> None:
    _, fields = _distinct_submit()
    submit = Submit(id=5, **fields)
    draft = new_draft(
        submit,
        row_template(proxy_id="PX", upstream="UP", miner_addr="MA:1", connection_id=42),
        now=123.5,
        channel_id=41,
        extranonce1=b"\xee\x01",
        pool_difficulty=8.0,
    )
    row = ShareRecord(*draft)._asdict()
    for name, value in fields.items():
        assert row[name] == value, name
    assert row == row | {
        "ts": 123.5, "proxy_id": "PX", "upstream": "UP", "channel_id": 41, "connection_id": 42,
        "miner_addr": "MA:1", "extranonce1": "ee01", "pool_difficulty": 8.0,
        "miner_difficulty": 8.0, "forwarded": False, "verdict_by": "",
    }  # fmt: skip
