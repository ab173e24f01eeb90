"""Every real vector through the share path each mode actually uses.

``test_shares_vectors`` checks the share math itself; here the same blocks and
pool fixtures go in as a mode receives them, and the row (or result) each mode
stores must carry the vector's known hash, difficulty, version and block flag:

* passthrough: ``mining.notify`` and ``mining.submit`` lines through ``Sv1Tracker``;
* translate: an SV2 extended job (``NewExtendedMiningJob`` + ``SetNewPrevHash``)
  turned into an SV1 job, and the miner's submit through ``check_submit``;
* SV2 standard channels (header-only mining): ``standard_share`` on the job's
  merkle root.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from stratum_proxy.shares import DIFF1_TARGET, rolled_version, submitted_share, swap_prevhash_words
from stratum_proxy.store.record import ShareRecord
from stratum_proxy.sv1.events import ShareResolved
from stratum_proxy.sv1.messages import Submit
from stratum_proxy.sv1.records import ShareContext
from stratum_proxy.sv1.tracker import Sv1Tracker
from stratum_proxy.sv2.jobs import standard_share
from stratum_proxy.sv2.messages import NewExtendedMiningJob, SetNewPrevHash
from stratum_proxy.translate.jobs import translate_job
from stratum_proxy.translate.shares import Forward, check_submit, new_draft, row_template

VECTORS_PATH = Path(__file__).resolve().parents[1] / "data" / "vectors" / "share_vectors.json"
VECTORS = [v for v in json.loads(VECTORS_PATH.read_text()) if v["coinb1"] is not None]
IDS = [v["id"] for v in VECTORS]


def _job_version(v: dict[str, Any]) -> str:
    return str(v.get("version_job") or v["version"])


def _mask(v: dict[str, Any]) -> int:
    return int(v["version_mask"], 16) if v.get("version_mask") else 0


def _expected_version(v: dict[str, Any]) -> int:
    bits = int(v["version_bits"], 16) if v.get("version_bits") else None
    return rolled_version(int(_job_version(v), 16), _mask(v), bits)


def _check(
    v: dict[str, Any], share_hash: str, difficulty: float, version: int, block: bool
) -> None:
    assert share_hash == v["expected_hash_be"]
    assert DIFF1_TARGET // int(share_hash, 16) == v["expected_difficulty_floor"]
    assert difficulty == pytest.approx(v["expected_difficulty"], rel=1e-12)
    assert version == _expected_version(v)
    if v["kind"] == "block" or v.get("block_hash"):
        assert block


def _line(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj) + b"\n"


@pytest.mark.parametrize("v", VECTORS, ids=IDS)
def test_passthrough_rows_carry_every_vector(v: dict[str, Any]) -> None:
    tracker = Sv1Tracker(
        context=ShareContext(proxy_id="p", upstream="pool", channel_id=9, miner_addr="m")
    )
    en2_size = len(v["extranonce2"]) // 2
    tracker.miner_data(_line({"id": 1, "method": "mining.subscribe", "params": []}), 0.0)
    tracker.pool_data(
        _line({"id": 1, "result": [[], v["extranonce1"], en2_size], "error": None}), 0.0
    )
    if _mask(v):
        tracker.miner_data(
            _line({"id": 2, "method": "mining.configure", "params": [["version-rolling"], {}]}),
            0.0,
        )
        answer = {"version-rolling": True, "version-rolling.mask": v["version_mask"]}
        tracker.pool_data(_line({"id": 2, "result": answer, "error": None}), 0.0)
    notify = [
        "j1", v["prevhash_stratum"], v["coinb1"], v["coinb2"], v["merkle_branch"],
        _job_version(v), v["nbits"], v["ntime"], True,
    ]  # fmt: skip
    tracker.pool_data(_line({"id": None, "method": "mining.notify", "params": notify}), 0.0)
    params = ["w", "j1", v["extranonce2"], v["ntime"], v["nonce"]]
    if v.get("version_bits"):
        params.append(v["version_bits"])
    tracker.miner_data(_line({"id": 3, "method": "mining.submit", "params": params}), 1.0)
    events = tracker.pool_data(_line({"id": 3, "result": True, "error": None}), 1.0)
    (row,) = [e.record for e in events if isinstance(e, ShareResolved)]
    _check(v, row.share_hash, row.share_difficulty, row.version, row.is_block)
    assert row.status == "accepted" and row.extranonce1 == v["extranonce1"]


@pytest.mark.parametrize("v", VECTORS, ids=IDS)
def test_translate_rows_carry_every_vector(v: dict[str, Any]) -> None:
    prev = SetNewPrevHash(
        channel_id=1,
        job_id=5,
        prev_hash=swap_prevhash_words(bytes.fromhex(v["prevhash_stratum"])),
        min_ntime=int(v["ntime"], 16),
        nbits=int(v["nbits"], 16),
    )
    job = NewExtendedMiningJob(
        channel_id=1,
        job_id=5,
        min_ntime=None,
        version=int(_job_version(v), 16),
        version_rolling_allowed=True,
        merkle_path=tuple(bytes.fromhex(b) for b in v["merkle_branch"]),
        coinbase_tx_prefix=bytes.fromhex(v["coinb1"]),
        coinbase_tx_suffix=bytes.fromhex(v["coinb2"]),
    )
    # The channel's prefix is the vector's extranonce1; the miner adds no local bytes.
    translated = translate_job(job, prev, bytes.fromhex(v["extranonce1"]), (1 << 256) - 1)
    submit = Submit(
        id=3,
        worker="w",
        job_id="5",
        extranonce2=v["extranonce2"],
        ntime=v["ntime"],
        nonce=v["nonce"],
        version_bits=v.get("version_bits") or None,
    )
    draft = new_draft(
        submit,
        row_template(proxy_id="p", upstream="pool", miner_addr="m", connection_id=7),
        now=1.0,
        channel_id=1,
        extranonce1=bytes.fromhex(v["extranonce1"]),
        pool_difficulty=1.0,
    )
    outcome = check_submit(
        draft,
        submit,
        translated,
        local=b"",
        extranonce2_size=len(v["extranonce2"]) // 2,
        version_mask=_mask(v),
        channel_target=(1 << 256) - 1,
    )
    assert isinstance(outcome, Forward)
    record = ShareRecord(*draft)
    _check(v, record.share_hash, record.share_difficulty, record.version, record.is_block)
    assert (outcome.nonce, outcome.ntime) == (int(v["nonce"], 16), int(v["ntime"], 16))
    # SubmitSharesExtended carries what follows the channel's prefix: local bytes + extranonce2.
    assert outcome.extranonce.hex() == v["extranonce2"]
    assert (record.channel_id, record.connection_id) == (1, 7)


@pytest.mark.parametrize("v", VECTORS, ids=IDS)
def test_standard_channel_shares_carry_every_vector(v: dict[str, Any]) -> None:
    translated = translate_job(
        NewExtendedMiningJob(
            channel_id=1,
            job_id=5,
            min_ntime=None,
            version=int(_job_version(v), 16),
            version_rolling_allowed=True,
            merkle_path=tuple(bytes.fromhex(b) for b in v["merkle_branch"]),
            coinbase_tx_prefix=bytes.fromhex(v["coinb1"]),
            coinbase_tx_suffix=bytes.fromhex(v["coinb2"]),
        ),
        SetNewPrevHash(
            channel_id=1,
            job_id=5,
            prev_hash=swap_prevhash_words(bytes.fromhex(v["prevhash_stratum"])),
            min_ntime=int(v["ntime"], 16),
            nbits=int(v["nbits"], 16),
        ),
        bytes.fromhex(v["extranonce1"]),
        (1 << 256) - 1,
    )
    # A standard channel's job carries the merkle root of its own extranonce.
    root = translated.job.merkle_root(bytes.fromhex(v["extranonce2"]))
    result = standard_share(
        root,
        translated.job.prevhash,
        int(v["nbits"], 16),
        _expected_version(v),
        int(v["ntime"], 16),
        int(v["nonce"], 16),
    )
    _check(v, result.hash_hex, result.difficulty, result.version, result.is_block)


@pytest.mark.parametrize(
    "v", [v for v in VECTORS if len(v["extranonce2"]) >= 4], ids=lambda v: v["id"]
)
def test_aggregate_miner_jobs_carry_every_vector(v: dict[str, Any]) -> None:
    """Aggregate mode: the upstream's extranonce2 split into the miner's prefix and its own."""
    from stratum_proxy.aggregate.jobs import JobIds, UpstreamJob, miner_view
    from stratum_proxy.sv1.parser import parse_object

    notify = parse_object(
        {
            "id": None,
            "method": "mining.notify",
            "params": [
                "pool-job", v["prevhash_stratum"], v["coinb1"], v["coinb2"], v["merkle_branch"],
                _job_version(v), v["nbits"], v["ntime"], True,
            ],
        }
    )  # fmt: skip
    en2 = bytes.fromhex(v["extranonce2"])
    prefix, miner_en2 = en2[:1], en2[1:]
    upstream = UpstreamJob(
        upstream_id=1,
        notify=notify,  # type: ignore[arg-type]
        pool_difficulty=1.0,
        extranonce1=bytes.fromhex(v["extranonce1"]),
        extranonce2_size=len(en2),
    )
    view = miner_view(upstream, 0, JobIds())
    # What the miner is sent: coinb1 carries the upstream's extranonce1.
    assert view.notify_params[2] == v["coinb1"] + v["extranonce1"]
    result = submitted_share(
        view.share_job(prefix), miner_en2, v["ntime"], v["nonce"], v.get("version_bits") or None,
        _mask(v),
    )  # fmt: skip
    _check(v, result.hash_hex, result.difficulty, result.version, result.is_block)
