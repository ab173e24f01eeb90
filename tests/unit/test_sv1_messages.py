# ruff: noqa: E501
"""Parsing of real Stratum V1 lines (tests/data/sv1_transcripts.md) into typed messages.

TRANSCRIPT_LINES holds every message line of the transcripts, verbatim
(multi-line notifies joined; log prefixes and a trailing literal backslash-n
removed), with the class it must parse to.  "InvalidMessage" rows are the
documented odd ones: the slush doc's Python-tuple error, NiceHash's placeholder
extranonce "xxxxxxxxxxxxxxx", a mangled comment and truncated excerpts; they
must be skipped with a non-fatal error.
"""

from __future__ import annotations

import pytest

from stratum_proxy.errors import RemoteProtocolError
from stratum_proxy.sv1 import messages as m
from stratum_proxy.sv1.params import parse_configure_result, parse_subscribe_result
from stratum_proxy.sv1.parser import parse_line

TRANSCRIPT_LINES: list[tuple[str, str, str]] = [
    ("1.", '{"id": 1, "method": "mining.subscribe", "params": []}', "Subscribe"),
    (
        "1.",
        '{"id": 1, "result": [ [ ["mining.set_difficulty", "b4b6693b72a50c7116db18d6497cac52"], ["mining.notify", "ae6812eb4cd7735a302a8a9dd95cf71f"]], "08000002", 4], "error": null}',
        "Response",
    ),
    (
        "1.",
        '{"params": ["slush.miner1", "password"], "id": 2, "method": "mining.authorize"}',
        "Authorize",
    ),
    ("1.", '{"error": null, "id": 2, "result": true}', "Response"),
    (
        "1.",
        '{"params": ["bf", "4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000","01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20020862062f503253482f04b8864e5008","072f736c7573682f000000000100f2052a010000001976a914d23fcdf86f7e756a64a7a9688ef9903327048ed988ac00000000", [],"00000002", "1c2ac4af", "504e86b9", false], "id": null, "method": "mining.notify"}',
        "Notify",
    ),
    ("1.", '{ "id": null, "method": "mining.set_difficulty", "params": [2]}', "SetDifficulty"),
    (
        "1.",
        '{"params": ["slush.miner1", "bf", "00000001", "504e86ed", "b2957c02"], "id": 4, "method": "mining.submit"}',
        "Submit",
    ),
    ("1.", '{"error": null, "id": 4, "result": true}', "Response"),
    ("1.", '{"id": 10, "result": null, "error": (21, "Job not found", null)}', "InvalidMessage"),
    (
        "2.2",
        '{"id": 183504, "method": "mining.subscribe", "params": ["bmminer/2.0.0", "0100006c"]}',
        "Subscribe",
    ),
    (
        "2.2",
        '{"id":183504,"result":[[["mining.set_difficulty","0100006e"],["mining.notify","0100006e"]],"0100006e",8],"error":null}',
        "Response",
    ),
    (
        "2.2",
        '{"id": 183505, "method": "mining.authorize", "params": ["user1.test", "123"]}',
        "Authorize",
    ),
    ("2.2", '{"id":183505,"result":true,"error":null}', "Response"),
    ("2.2", '{"id": 183506, "method": "mining.multi_version", "params": [1]}', "UnknownMethod"),
    (
        "2.2",
        '{"id":"subscribe","method":"mining.subscribe","params":["bmminer/2.0.0","01000cc6",1928847164]}',
        "Subscribe",
    ),
    (
        "2.2",
        '{"id":"subscribe","result":[[["mining.set_difficulty","01000cc6"],["mining.notify","01000cc6"]],"01000cc6",8],"error":null}',
        "Response",
    ),
    ("2.2", '{"id":"auth","method":"mining.authorize","params":["aaa.2019","111"]}', "Authorize"),
    ("2.2", '{"id":"auth","result":true,"error":null}', "Response"),
    ("2.2", '{"id":null,"method":"mining.set_difficulty","params":[16384]}', "SetDifficulty"),
    (
        "2.2",
        '{"params": ["printcrypto.S19xp134tx6y164", "2dc3427c2e", "0a00000000000000", "64c25820", "591d28da", "00092000"], "id": 2955, "method": "mining.submit"}',
        "Submit",
    ),
    (
        "2.2",
        '{"params": ["printcrypto.S19xp134tx6y164", "2dc3427c2e", "0a00000000000000", "64c25820", "b6fda90f", "000b6000"], "id": 2956, "method": "mining.submit"}',
        "Submit",
    ),
    (
        "2.2",
        '{"id":3,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":2}]}',
        "Configure",
    ),
    (
        "2.2",
        '{"id":3,"result":{"version-rolling":true,"version-rolling.mask":"1fffe000"},"error":null}',
        "Response",
    ),
    (
        "2.2",
        '{"id":null,"method":"mining.set_version_mask","params":["1fffe000"]}',
        "SetVersionMask",
    ),
    ("2.2", '{"id": 3095, "error": null, "result": true}', "Response"),
    (
        "2.4",
        '{"id": 1, "method": "mining.subscribe", "params": ["bitaxe/BM1368 (v2.1.9-dirty)"]}',
        "Subscribe",
    ),
    (
        "2.4",
        '{"id": 2, "method": "mining.configure", "params": [["version-rolling"], {"version-rolling.mask": "ffffffff"}]}',
        "Configure",
    ),
    (
        "2.4",
        '{"id": 3, "method": "mining.suggest_difficulty", "params": [1000]}',
        "SuggestDifficulty",
    ),
    (
        "2.4",
        '{"id": 4, "method": "mining.authorize", "params": ["bc1qqkredrrxc0pqjpcyp8ku3ry46e40tp40zrf0k0.bitaxe", "x"]}',
        "Authorize",
    ),
    (
        "2.4",
        '{"id":1,"error":null,"result":[[["mining.notify","63add300"]],"63add300",4]}',
        "Response",
    ),
    (
        "2.4",
        '{"id":2,"error":null,"result":{"version-rolling":true,"version-rolling.mask":"1fffe000"}}',
        "Response",
    ),
    (
        "2.4",
        '{"id": 1, "method": "mining.subscribe", "params": ["bitaxe/BM1368/v2.4.0-8-g00b8411-dirty"]}',
        "Subscribe",
    ),
    (
        "2.4",
        '{"id": 3, "method": "mining.authorize", "params": ["bc1q######################################.bitaxe", "x"]}',
        "Authorize",
    ),
    (
        "2.4",
        '{"id": 4, "method": "mining.suggest_difficulty", "params": [1000]}',
        "SuggestDifficulty",
    ),
    (
        "2.4",
        '{"id":1,"error":null,"result":[[["mining.notify","b7fb32b8"]],"b7fb32b8",4]}',
        "Response",
    ),
    ("2.4", '{"id":3,"error":null,"result":true}', "Response"),
    ("2.4", '{"id":null,"method":"mining.set_difficulty","params":[1000]}', "SetDifficulty"),
    ("2.4", '{"id": 1, "method": "mining.subscribe", "params": ["bitaxe/BM1368"]}', "Subscribe"),
    ("2.4", '{"id": 4, "method": "mining.authorize", "params": ["<redacted>", "x"]}', "Authorize"),
    (
        "2.4",
        '{"id":1,"error":null,"result":[[["mining.set_difficulty","02187bbb75009a23a3"],["mining.notify","02187bbb75009a23a3"]],"02187bbb75009a23a3",3]}',
        "Response",
    ),
    ("2.4", '{"id":4,"result":true,"error":null}', "Response"),
    (
        "2.4",
        '{"id": 1, "method": "mining.configure", "params": [["version-rolling"], {"version-rolling.mask": "ffffffff"}]}',
        "Configure",
    ),
    (
        "2.4",
        '{"id": 2, "method": "mining.subscribe", "params": ["bitaxe/BM1368/v2.9.0b3-24-gdd577d0"]}',
        "Subscribe",
    ),
    (
        "2.4",
        '{"id": 3, "method": "mining.authorize", "params": ["3#################################", "x"]}',
        "Authorize",
    ),
    (
        "2.4",
        '{"id":1,"error":null,"result":{"version-rolling":true,"version-rolling.mask":"1fffe000"}}',
        "Response",
    ),
    (
        "2.4",
        '{"id":2,"error":null,"result":[[["mining.set_difficulty","6351117f64"],["mining.notify","6351117f64"]],"6351117f64",3]}',
        "Response",
    ),
    (
        "2.4",
        '{"error": null, "id": 1, "result": [[["mining.notify", "1e0a00001"], ["mining.set_difficulty", "1e0a00002"]], "1e0a0000", 8]}',
        "Response",
    ),
    (
        "2.4",
        '{"id": null, "method": "mining.set_difficulty", "params": [16383.75]}',
        "SetDifficulty",
    ),
    ("2.4", '{"id": 1, "method": "mining.subscribe", "params": ["bitaxe/BM1366"]}', "Subscribe"),
    (
        "2.4",
        '{"id":1,"result":[[["mining.notify","0437c817"]],"0437c817",4],"error":null}',
        "Response",
    ),
    (
        "2.4",
        '{"id":2,"result":{"version-rolling":true,"version-rolling.mask":"1fffe000"},"error":null}',
        "Response",
    ),
    (
        "2.4",
        '{"id": 1207, "method": "mining.submit", "params": ["1GvHLb2zAA7doMh6DxvmM5BQYhXhZ5Eoj7.bitaxeTEST", "648516380016eafe", "ea3e000000000000", "67136b82", "d20c0004", "040d0000"]}',
        "Submit",
    ),
    ("2.4", '{"result":true,"error":null,"id":1207}', "Response"),
    (
        "2.4",
        '{"id": 5, "method": "mining.submit", "params": ["bc1qwlmnvq9lexszlc2tmm2hgqrv8kwn8xsz6q5ktk", "69b4f8c10000a30a", "0500000000000000", "69c731f9", "12530472", "01660000"]}',
        "Submit",
    ),
    ("2.4", '{"result":true,"error":null,"id":5}', "Response"),
    (
        "2.4",
        '{"id": 1, "method": "mining.subscribe", "params": ["bitaxe/BM1370/v2.12.2"]}',
        "Subscribe",
    ),
    (
        "2.4",
        '{"id": 2, "method": "mining.authorize", "params": ["bc1qwlmnvq9lexszlc2tmm2hgqrv8kwn8xsz6q5ktk", "x"]}',
        "Authorize",
    ),
    ("2.4", '{"id": 1, "method": "mining.subscribe", "params": ["bitaxe v2.2"]}', "Subscribe"),
    (
        "2.4",
        '{"id": 3, "method": "mining.authorize", "params": ["tb1qumezefzdeqqwn5zfvgdrhxjzc5ylr39uhuxcz4.bitaxe3", "x"]}',
        "Authorize",
    ),
    (
        "2.4",
        '{"id": 4, "method": "mining.suggest_difficulty", "params": [512]}',
        "SuggestDifficulty",
    ),
    (
        "2.4",
        '{"id": 5, "method": "mining.submit", "params": ["tb1qumezefzdeqqwn5zfvgdrhxjzc5ylr39uhuxcz4.bitaxe3", "1", "c7080000", "64b3f3ec", "ed460d91", "00002000"]}',
        "Submit",
    ),
    (
        "2.6",
        '{"id":1,"method":"mining.configure","params":[["version-rolling","minimum-difficulty","subscribe-extranonce"],{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":16,"minimum-difficulty.value":150000}]}',
        "Configure",
    ),
    ("2.6", '{"id":2,"method":"mining.subscribe","params":[]}', "Subscribe"),
    (
        "2.6",
        '{"id":3,"method":"mining.authorize","params":["sustainhash.firmware","x"]}',
        "Authorize",
    ),
    ("2.6", '{"id":3,"method":"mining.extranonce.subscribe","params":[]}', "ExtranonceSubscribe"),
    (
        "2.6",
        '{"id":null,"method":"mining.set_extranonce","params":["xxxxxxxxxxxxxxx"]}',
        "InvalidMessage",
    ),
    ("3.2", '{"id":null,"method":"mining.set_difficulty","params":[512]}', "SetDifficulty"),
    ("3.2", '{"id":null,"method":"mining.set_difficulty","params":[0.01]}', "SetDifficulty"),
    ("3.2", '{"id":null, "method":"mining.set_difficulty","params":[8192]}', "SetDifficulty"),
    ("3.2", '{"id":null,"method":"mining.set_difficulty","params":[1638]}', "SetDifficulty"),
    ("3.2", '{"id":null,"method":"mining.set_difficulty","params":[100.5]}', "SetDifficulty"),
    (
        "3.3",
        '{"id":null,"method":"mining.notify","params":["2dc3427c2e","221a7d5aeda279d8b8455fe56c8dc7d05582575d00038fbf0000000000000000","01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4b03e1360cfabe6d6ddecabad1af6410018e1f62f26730ccb9c8a4a55c1c90fb96d7b124a68f126bcf0100000000000000","2e7c42c32d2f736c7573682f000000000383d02826000000001976a9147c154ed1dc59609e3d26abb2df2ea3d587cd8c4188ac00000000000000002c6a4c2952534b424c4f434b3aa126fd3abcfed0d9d2fdf56d5650fda514e1a35408b1b8445c907d21005402510000000000000000266a24aa21a9ed217bdf1fc8e2ca2f98f2f3dc804fa19609ad045e8761e3fcd6b60baf80d1f5bf00000000",["fd90b0aa15698f631ae06aba1d688db974c899389c874f03b2c91784733ac50c","278cbb17943d36be5e7eaa08b70b733edd2fc6e4143ee7c184d63c8dcb22c48e","e02743f1b8d9050160c811cd8bec5af39c07a47ccade2a466e09409eeeb90b3b","3e76f16fc336d11a98b2c438e7c47b0a6c478a0f8df7c340f57db6887aa05a17","3d84d3378f3647157355aecf67c965f01729b3223f5a787aa7a3eb3de3a33e38","356c1febe5995abebfe7b4476efbf2b83158ce37757e3045f601bb1007ef9602","0064ab04971d60a5761ef07e7ff066a2ecfced7101e73a2d8cea07a730b50695","29ef3189c3aef0da8c1b7204a91f2384b73bdafcc7c1f9123a68b15316f7c5f8","bcc9dc862a6024d4f59ecb69f2adaa1911c6e4813d65a48ead8aa5e4151fb255","7accfd2b86edba50aa41fba73248ea365deaabf12a71c6e4b663be7438d9c091","4cc849c0f0d18f993634ba7563a6c68406e60e0ab1ac4f23bd18401b6e3ab7c4","9a6c6c8936fa3b807e3fbfc107c7427691246aecb89dd8e22bde58b7f748d21b"],"20000004","17056102","64c25820",false]}',
        "Notify",
    ),
    (
        "3.3",
        '{"id":null,"method":"mining.notify","params":["1f9a56282c","bf44fd3513dc7b837d60e5c628b572b448d204a8000007490000000000000000","01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4b03e60e0cfabe6d6d7595fc426909f3a63c563a88773a618ec42cc51188ed0632b69f1c3053a8f8180100000000000000","2c28569a1f2f736c7573682f0000000003a1f3a22b000000001976a9147c154ed1dc59609e3d26abb2df2ea3d587cd8c4188ac00000000000000002c6a4c2952534b424c4f434b3a799d4c611eff5765ba06d2c58ad71b5734d677cea10942664b2a712d005108ae0000000000000000266a24aa21a9ed5c4d2056e3eef09b05d95897adec38c5c3f460a919e95f87e15664957c70305a00000000",["4ea53a030256c37391b891b0d5060537df63944ce3fcd45121215596376bb3db","22cd1dde2c1b083237bbadd62ed1d51ee455265b7defe04dc8bcae7e5acacb33","60c781a8b02c07544cb3a91de3b4d7a13f9939c8579f3ac92fa28e802ace1b39","d89820b36568adc0705d71d639e69ccb7c168a1051697846cf5d98e5725ee4e3","73f0f773a3b6097388984f934ba1b01afc771c33db6df126cd6971cfea9f8f49","420958bbb39f6b8ad30e5b45b38a3825bf76f619b7dbb73a0366605ff882e91d","75f9ef87931104db956c88d65198596049af51017af4685c4548f2c31ec75b6d","70dd7189d5b927ac10a750062e5ab9f8b83fb784068e1c80d0df919bcf22e1b2","b34f2440b2b4609e44594885a397086339f4a2d880fb2d50ac585f757b895832","4c62d861fb259a743d1e2787eeac5bdd22a9883b5cc0b025843cff9441ea6b74","62522d5d8e2ff9d721a9a4b91931ec61069fff7c8ad23119718c068a035b9b1b","a0e7cf5509d9d0d87ff9a4f6332f76a243de01f4e93289b290e937e7fd03224f"],"20000004","1705dd01","64658bd8",true]}',
        "Notify",
    ),
    (
        "3.3",
        '{"id":null,"method":"mining.notify","params":["1","171592f223740e92d223f6e68bff25279af7ac4f2246451e0000000200000000","02000000010000000000000000000000000000000000000000000000000000000000000000ffffffff1903c943255c7075626c69632d706f6f6c5c","ffffffff037a90000000000000160014e6f22ca44dc800e9d049621a3b9a42c509f1c4bc3b0f250000000000160014e6f22ca44dc800e9d049621a3b9a42c509f1c4bc0000000000000000266a24aa21a9edbd3d1d916aa0b57326a2d88ebe1b68a1d7c48585f26d8335fe6a94b62755f64c00000000",["175335649d5e8746982969ec88f52e85ac9917106fba5468e699c8879ab974a1","d5644ab3e708c54cd68dc5aedc92b8d3037449687f92ec41ed6e37673d969d4a","5c9ec187517edc0698556cca5ce27e54c96acb014770599ed9df4d4937fbf2b0"],"20000000","192495f8","64b3f3ec",false]}',
        "Notify",
    ),
    ("3.4", '{"id":1,"method":"mining.set_version_mask","params":["1fffe000"]}', "SetVersionMask"),
    (
        "3.4",
        '{"params":["00003000"], "id":null, "method": "mining.set_version_mask"}',
        "SetVersionMask",
    ),
    (
        "3.4",
        '{"id":0, "result":{ "version-rolling":true, "version-rolling.mask":"1fffffe0", "version-rolling.min-bit-count":"00000005", "minimum-difficulty":false } }',
        "Response",
    ),
    (
        "3.4",
        '{"method": "mining.configure", "id": 1, "params": [["version-rolling"], {"version-rolling.mask": "1fffe000", "version-rolling.min-bit-count": 2}]}',
        "Configure",
    ),
    (
        "3.4",
        '{"error": null, "id": 1, "result": {"version-rolling": true, "version-rolling.mask": "18000000"}}',
        "Response",
    ),
    ("3.4", '{"error": null, "id": 1, "result": {"version-rolling": false}}', "Response"),
    ("3.5", '{"id":5,"error":null,"result":true}', "Response"),
    ("3.5", '{"id":19992,"result":null,"error":[23,"Low difficulty",null]}', "Response"),
    ("3.5", '{"id":4,"result":null,"error":[21,"Job not found",""]}', "Response"),
    ("3.5", '{"id":50,"result":null,"error":[21,"Job not found",""]}', "Response"),
    ("3.5", '{"reject-reason":"Above target 2","result":false,"error":null,"id":8}', "Response"),
    ("3.5", '{"result":false,"error":"Stale","id":618}', "Response"),
    ("3.5", '{"result":null,"error":"Stale","id":618}', "Response"),
    (
        "3.5",
        '{"jsonrpc":"2.0","error":{"code":22,"message":"duplicate share","data":null},"id":42}',
        "Response",
    ),
    (
        "3.5",
        '{"id":3,"result":false,"error":[24,"init_auth: sustainhash.firmware",null]}',
        "Response",
    ),
    ("3.6", '{"id":1,"method":"mining.set_extranonce","params":["deadbeef",8]}', "SetExtranonce"),
    ("3.6", '{"id":null,"method":"client.reconnect","params":[]}', "ClientReconnect"),
    (
        "3.6",
        '{"id":null,"method":"client.show_message","params":["Welcome to the pool!"]}',
        "ShowMessage",
    ),
    ("3.6", '{"id":10,"method":"client.get_version","params":[]}', "GetVersion"),
    ("3.6", '{"id":null,"method":"mining.ping","params":[]}', "Ping"),
    # 2.4, MiningSubmitMessage.spec.ts: the source string has a leading space.
    (
        "2.4",
        ' {"id": 5, "method": "mining.submit", "params": ["tb1qumezefzdeqqwn5zfvgdrhxjzc5ylr39uhuxcz4.bitaxe3", "1", "99020000", "64b1f10f", "2402812d", "00006000"]}',
        "Submit",
    ),
    # 2.1 / 4.8: cgminer answers mining.ping with a result, ESP-Miner with a request-shaped "pong".
    ("2.1", '{"id": 7, "result": "pong", "error": null}', "Response"),
    ("2.4", '{"id":7,"method":"pong","params":[]}', "UnknownMethod"),
    # A line cut off in the public excerpt (2.2, S17 notify): not JSON, skipped, never fatal.
    (
        "2.2",
        '{"id": null, "method": "mining.notify", "params": ["6c65", "99ccb960e94c2cecc24acae64f8494a9de9fcf2b000188140000000000000000", "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff5d03315f091a2f5669614254432f4d696e6564',
        "InvalidMessage",
    ),
]


@pytest.mark.parametrize(("section", "line", "expected"), TRANSCRIPT_LINES)
def test_transcript_line_parses_to_its_class(section: str, line: str, expected: str) -> None:
    if expected == "InvalidMessage":
        with pytest.raises(m.InvalidMessage) as info:
            parse_line(line.encode())
        assert info.value.fatal is False
        assert isinstance(info.value, RemoteProtocolError)
        return
    msg = parse_line(line.encode())
    assert type(msg).__name__ == expected


def test_transcript_table_covers_every_known_method() -> None:
    kinds = {expected for _, _, expected in TRANSCRIPT_LINES}
    known = {
        "Subscribe", "Authorize", "Configure", "Submit", "SuggestDifficulty",
        "ExtranonceSubscribe", "SetDifficulty", "Notify", "SetExtranonce", "SetVersionMask",
        "ClientReconnect", "ShowMessage", "Ping", "GetVersion", "Response", "UnknownMethod",
    }  # fmt: skip
    assert known <= kinds


def test_submit_with_five_and_six_params() -> None:
    five = parse_line(
        b'{"params": ["slush.miner1", "bf", "00000001", "504e86ed", "b2957c02"], "id": 4, "method": "mining.submit"}'
    )
    assert five == m.Submit(
        id=4, worker="slush.miner1", job_id="bf", extranonce2="00000001",
        ntime="504e86ed", nonce="b2957c02", version_bits=None,
    )  # fmt: skip
    six = parse_line(
        b'{"id": 1207, "method": "mining.submit", "params": ["1GvHLb2zAA7doMh6DxvmM5BQYhXhZ5Eoj7.bitaxeTEST", "648516380016eafe", "ea3e000000000000", "67136b82", "d20c0004", "040d0000"]}'
    )
    assert isinstance(six, m.Submit)
    assert six.version_bits == "040d0000"
    assert six.extranonce2 == "ea3e000000000000"


def test_ids_keep_their_json_type() -> None:
    by_string = parse_line(b'{"id":"auth","result":true,"error":null}')
    by_number = parse_line(b'{"id":4,"result":true,"error":null}')
    by_text_four = parse_line(b'{"id":"4","result":true,"error":null}')
    assert isinstance(by_string, m.Response) and by_string.id == "auth"
    assert isinstance(by_number, m.Response) and by_number.id == 4
    assert isinstance(by_text_four, m.Response) and by_text_four.id == "4"
    assert by_number.id != by_text_four.id


def test_notification_with_non_null_id_is_still_a_notification() -> None:
    msg = parse_line(b'{"id":1,"method":"mining.set_version_mask","params":["1fffe000"]}')
    assert msg == m.SetVersionMask(id=1, mask=0x1FFFE000)


def test_float_difficulties() -> None:
    for text, value in ((b"16383.75", 16383.75), (b"0.01", 0.01), (b"100.5", 100.5), (b"2", 2.0)):
        msg = parse_line(b'{"id":null,"method":"mining.set_difficulty","params":[' + text + b"]}")
        assert msg == m.SetDifficulty(id=None, difficulty=value)


def test_notify_fields_are_decoded() -> None:
    line = next(
        line for _, line, kind in TRANSCRIPT_LINES if kind == "Notify" and '"2dc3427c2e"' in line
    )
    msg = parse_line(line.encode())
    assert isinstance(msg, m.Notify)
    assert msg.job_id == "2dc3427c2e"
    assert msg.prevhash.hex() == "221a7d5aeda279d8b8455fe56c8dc7d05582575d00038fbf0000000000000000"
    assert len(msg.merkle_branch) == 12 and all(len(node) == 32 for node in msg.merkle_branch)
    assert (msg.version, msg.nbits, msg.ntime) == (0x20000004, 0x17056102, 0x64C25820)
    assert msg.clean_jobs is False


def test_set_extranonce_with_and_without_size() -> None:
    assert parse_line(b'{"id":1,"method":"mining.set_extranonce","params":["DEADBEEF",8]}') == (
        m.SetExtranonce(id=1, extranonce1="deadbeef", extranonce2_size=8)
    )
    assert parse_line(b'{"id":null,"method":"mining.set_extranonce","params":["0a0b"]}') == (
        m.SetExtranonce(id=None, extranonce1="0a0b", extranonce2_size=None)
    )


def test_client_reconnect_params() -> None:
    assert parse_line(
        b'{"id":null,"method":"client.reconnect","params":["pool.example",3333,5]}'
    ) == m.ClientReconnect(id=None, host="pool.example", port=3333, wait_s=5.0)
    assert parse_line(b'{"id":null,"method":"client.reconnect","params":["h","3334"]}') == (
        m.ClientReconnect(id=None, host="h", port=3334, wait_s=0.0)
    )
    assert parse_line(b'{"id":null,"method":"client.reconnect","params":[]}') == (
        m.ClientReconnect(id=None, host=None, port=None, wait_s=0.0)
    )


def test_authorize_does_not_keep_the_password() -> None:
    msg = parse_line(b'{"id":2,"method":"mining.authorize","params":["w1","secret"]}')
    assert msg == m.Authorize(id=2, worker="w1")
    assert "secret" not in repr(msg)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (b"\x00\xff\xfe garbage", ["invalid JSON"]),
        (b'{"id":1,"method":"mining.submit"', ["invalid JSON"]),
        (b"[1,2,3]", ["JSON object", "list"]),
        (b'"just a string"', ["JSON object", "str"]),
        (b'{"id":true,"result":true,"error":null}', ["id", "bool"]),
        (b'{"id":[1],"result":true,"error":null}', ["id", "list"]),
        (b'{"id":1,"method":7,"params":[]}', ["method", "string"]),
        (b'{"id":1,"params":[]}', ["neither"]),
        (
            b'{"id":1,"method":"mining.submit","params":["w","j","00","5f5e1000",12345678]}',
            ["mining.submit", "nonce", "string", "int"],
        ),
        (b'{"id":1,"method":"mining.submit","params":["w","j","00"]}', ["mining.submit", "5 or 6"]),
        (b'{"id":1,"method":"mining.submit","params":{"worker":"w"}}', ["mining.submit", "array"]),
        (b'{"id":null,"method":"mining.set_difficulty","params":["16"]}', ["difficulty", "number"]),
        (b'{"id":null,"method":"mining.set_difficulty","params":[0]}', ["difficulty", "positive"]),
        (b'{"id":null,"method":"mining.set_difficulty","params":[-1]}', ["difficulty", "positive"]),
        (b'{"id":null,"method":"mining.set_difficulty","params":[true]}', ["difficulty", "number"]),
        (b'{"id":null,"method":"mining.set_difficulty","params":[]}', ["difficulty", "missing"]),
        (
            b'{"id":null,"method":"mining.notify","params":["1","00","","",[],"20000000","207fffff","6b022208",true]}',
            ["prevhash", "32 bytes"],
        ),
        (b'{"id":null,"method":"mining.notify","params":["1"]}', ["mining.notify", "9 params"]),
        (b'{"id":null,"method":"mining.set_version_mask","params":["not-hex!"]}', ["mask", "hex"]),
        (b'{"id":null,"method":"client.reconnect","params":["h",70000]}', ["port"]),
    ],
)
def test_invalid_lines_say_what_was_wrong(line: bytes, words: list[str]) -> None:
    with pytest.raises(m.InvalidMessage) as info:
        parse_line(line)
    assert info.value.fatal is False
    for word in words:
        assert word in str(info.value)


def test_invalid_submit_keeps_what_could_be_read() -> None:
    with pytest.raises(m.InvalidMessage) as info:
        parse_line(b'{"id":"s1","method":"mining.submit","params":["w","j","00","5f5e1000",1]}')
    assert info.value.method == "mining.submit"
    assert info.value.msg_id == "s1"
    assert info.value.params == ["w", "j", "00", "5f5e1000", 1]


def test_reject_reason_is_read_from_a_response() -> None:
    msg = parse_line(b'{"reject-reason":"Above target 2","result":false,"error":null,"id":8}')
    assert msg == m.Response(id=8, result=False, error=None, reject_reason="Above target 2")


# sv1_transcripts.md 3.1: every subscribe result shape -> (extranonce1, extranonce2_size).
SUBSCRIBE_RESULTS = [
    (
        [
            [
                ["mining.set_difficulty", "b4b6693b72a50c7116db18d6497cac52"],
                ["mining.notify", "ae6812eb4cd7735a302a8a9dd95cf71f"],
            ],
            "08000002",
            4,
        ],
        "08000002",
        4,
    ),
    ([[["mining.notify", "63add300"]], "63add300", 4], "63add300", 4),
    (
        [
            [
                ["mining.set_difficulty", "02187bbb75009a23a3"],
                ["mining.notify", "02187bbb75009a23a3"],
            ],
            "02187bbb75009a23a3",
            3,
        ],
        "02187bbb75009a23a3",
        3,
    ),
    (
        [
            [["mining.set_difficulty", "6351117f64"], ["mining.notify", "6351117f64"]],
            "6351117f64",
            3,
        ],
        "6351117f64",
        3,
    ),
    (
        [[["mining.notify", "1e0a00001"], ["mining.set_difficulty", "1e0a00002"]], "1e0a0000", 8],
        "1e0a0000",
        8,
    ),
    (
        [[["mining.set_difficulty", "01000cc6"], ["mining.notify", "01000cc6"]], "01000cc6", 8],
        "01000cc6",
        8,
    ),
    (
        [
            [
                ["mining.notify", "mining.notify"],
                ["mining.set_difficulty", "mining.set_difficulty"],
            ],
            "00",
            8,
        ],
        "00",
        8,
    ),
    (
        [
            [
                ["mining.set_difficulty", "deadbeefcafebabea200000000000000"],
                ["mining.notify", "deadbeefcafebabea200000000000000"],
            ],
            "40000004",
            4,
        ],
        "40000004",
        4,
    ),
    ([[["mining.notify", "695482c0"]], "4de05269", 8], "4de05269", 8),
    # SRI's flat (non-nested) pair, with a real extranonce1 in place of its "{}" placeholder.
    ([["mining.notify", "1"], "1165060344b679", 4], "1165060344b679", 4),
]


@pytest.mark.parametrize(("result", "extranonce1", "size"), SUBSCRIBE_RESULTS)
def test_subscribe_result_shapes(result: object, extranonce1: str, size: int) -> None:
    assert parse_subscribe_result(result) == (extranonce1, size)


@pytest.mark.parametrize(
    "result",
    [
        [["mining.notify", "1"], "{}", 4],  # SRI fixture's placeholder, verbatim
        [[["mining.notify", "x"]], "${client.extraNonceAndSessionId}", 4],  # public-pool template
        [[["mining.notify", "x"]], "abc", 4],  # odd length
        [[["mining.notify", "x"]], "00", -1],
        [[["mining.notify", "x"]], "00", 4.0],
        [[["mining.notify", "x"]], "00"],
        True,
        None,
    ],
)
def test_unusable_subscribe_results_are_refused(result: object) -> None:
    with pytest.raises(m.InvalidMessage):
        parse_subscribe_result(result)


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"version-rolling": True, "version-rolling.mask": "1fffe000"}, (True, 0x1FFFE000)),
        ({"version-rolling": True, "version-rolling.mask": "18000000"}, (True, 0x18000000)),
        ({"version-rolling": False}, (False, 0)),
        ({"version-rolling": "bad mask"}, (False, 0)),  # BIP310: a string is an error message
        ({"version-rolling": True}, (True, None)),
        ({"minimum-difficulty": True}, (None, None)),
        (
            {
                "version-rolling": True,
                "version-rolling.mask": "1fffffe0",
                "version-rolling.min-bit-count": "00000005",
                "minimum-difficulty": False,
            },
            (True, 0x1FFFFFE0),
        ),
        (True, (None, None)),
    ],
)
def test_configure_results(result: object, expected: tuple[bool | None, int | None]) -> None:
    assert parse_configure_result(result) == expected


def test_configure_result_with_a_bad_mask_is_refused() -> None:
    with pytest.raises(m.InvalidMessage, match="mask"):
        parse_configure_result({"version-rolling": True, "version-rolling.mask": "zz"})
