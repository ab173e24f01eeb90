"""The proxy's SV2 authority key file: what ``keys generate`` writes, readable by its owner only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stratum_proxy.cli import main
from stratum_proxy.errors import ConfigError
from stratum_proxy.sv2.keyfile import load_authority_key
from stratum_proxy.sv2.keys import decode_public_key, generate_keypair


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_the_output_of_keys_generate_is_a_key_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "generate"]) == 0
    printed = capsys.readouterr().out
    key = load_authority_key(_write(tmp_path / "authority.key", printed))
    public_line = next(line for line in printed.splitlines() if line.startswith("public:"))
    assert key.public == public_line.split(":", 1)[1].strip()
    assert key.xonly == decode_public_key(key.public)


def test_a_bare_secret_line_is_enough(tmp_path: Path) -> None:
    secret, public = generate_keypair(os.urandom)
    assert load_authority_key(_write(tmp_path / "k", f"# farm 1\n{secret}\n")).public == public


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_a_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    secret, _ = generate_keypair(os.urandom)
    path = _write(tmp_path / "k", f"secret: {secret}\n", mode)
    with pytest.raises(ConfigError, match=f"can be read by others.*chmod 600 {path}"):
        load_authority_key(path)


def test_broken_files_say_what_is_wrong(tmp_path: Path) -> None:
    secret, _ = generate_keypair(os.urandom)
    _, other_public = generate_keypair(os.urandom)
    cases = {
        "does not exist": None,
        "expected a 'secret: ...' line": "public: x\nsomething: y\n",
        "not valid Base58Check": "secret: 0OIl\n",
        "not the secret's public key": f"secret: {secret}\npublic: {other_public}\n",
    }
    for expected, text in cases.items():
        path = tmp_path / "missing" if text is None else _write(tmp_path / "k", text)
        with pytest.raises(ConfigError, match=expected):
            load_authority_key(path)
