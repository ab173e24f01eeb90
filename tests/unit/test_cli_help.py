"""``--help`` names the built-in default of every flag that overrides a setting."""

from __future__ import annotations

import pytest

from stratum_proxy.cli import build_parser, setting_default
from stratum_proxy.store.settings import StoreSettings


def help_text(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([*argv, "--help"])
    assert info.value.code == 0
    # argparse wraps lines; compare with single spaces.
    return " ".join(capsys.readouterr().out.split())


def test_run_help_shows_the_settings_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(capsys, "run")
    assert "(default: 0.0.0.0:3333)" in text  # --listen
    assert "(default: chdb://./data/db)" in text  # --store
    assert "(default: 127.0.0.1:8081)" in text  # --api-listen
    assert "--spool-dir SPOOL_DIR durable backup spool directory (default: 'spool' next" in text
    assert "./data/spool)" in text
    assert "(default: info)" in text and "(default: auto)" in text
    assert "(default: this host's name)" in text  # not the name of the machine that built it


@pytest.mark.parametrize(
    "argv",
    [
        ("query",),
        ("stats",),
        ("cleanup",),
        ("spool", "drain"),
        ("spool", "replay-deadletter"),
    ],
)
def test_store_commands_show_the_store_default(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    assert "(default: chdb://./data/db)" in help_text(capsys, *argv)


def test_other_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert "(default: 24.0)" in help_text(capsys, "stats")
    demo = help_text(capsys, "demo")
    assert "(default: 4)" in demo and "(default: 20.0)" in demo
    assert "./data/spool" in help_text(capsys, "spool", "status")


def test_setting_default_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATUM_PROXY_STORE__URL", "chdb:///elsewhere")
    assert setting_default("store.url") == StoreSettings().url
    assert setting_default("listen") == ["0.0.0.0:3333"]
    assert setting_default("api.token_file") is None
