"""Where the API's tokens come from and when the daemon must refuse to start."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from stratum_proxy.errors import ConfigError
from stratum_proxy.logging import get_logger
from stratum_proxy.settings import ApiSettings, load_settings
from stratum_proxy.web.tokens import client_token, is_loopback_host, load_api_tokens


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LocalHost.", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.168.1.10", False),
        ("proxy.lan", False),
        ("localhost.evil.example", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_loopback_without_a_token_is_open() -> None:
    tokens = load_api_tokens(ApiSettings(), "127.0.0.1")
    assert not tokens.required and tokens.allows(None)


def test_off_loopback_without_a_token_refuses_to_start() -> None:
    for host in ("0.0.0.0", "10.1.2.3", "::", "farm-proxy"):
        with pytest.raises(ConfigError) as err:
            load_api_tokens(ApiSettings(listen=f"{host}:8081"), host)
        message = str(err.value)
        assert "api.token" in message and "api.token_file" in message
        assert "--api-listen" in message


def test_a_token_is_required_on_loopback_too() -> None:
    tokens = load_api_tokens(ApiSettings(token=SecretStr(" t0k ")), "127.0.0.1")
    assert tokens.required and tokens.allows("t0k") and not tokens.allows(None)
    assert not tokens.allows("t0k ") and not tokens.allows("T0K")


def test_token_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("  from-a-file\n")
    path.chmod(0o600)
    with capture_logs() as logs:
        tokens = load_api_tokens(ApiSettings(token_file=path), "0.0.0.0", get_logger())
    assert tokens.required and tokens.allows("from-a-file")
    assert logs == []
    path.chmod(0o644)
    with capture_logs() as logs:
        load_api_tokens(ApiSettings(token_file=path), "0.0.0.0", get_logger())
    assert [e["event"] for e in logs] == ["api_token_file_readable"]
    assert "from-a-file" not in repr(logs) and "chmod 600" in logs[0]["fix"]


def test_token_file_problems_name_the_setting(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(ConfigError, match=r"api\.token_file .*missing.*cannot read"):
        load_api_tokens(ApiSettings(token_file=missing), "0.0.0.0")
    empty = tmp_path / "empty"
    empty.write_text(" \n")
    with pytest.raises(ConfigError, match=r"api\.token_file .* is empty"):
        load_api_tokens(ApiSettings(token_file=empty), "127.0.0.1")
    with pytest.raises(ConfigError, match=r"api\.metrics_token_file .* is empty"):
        load_api_tokens(ApiSettings(token=SecretStr("x"), metrics_token_file=empty), "127.0.0.1")
    full = tmp_path / "full"
    full.write_text("abc")
    with pytest.raises(ConfigError, match="not both"):
        load_api_tokens(ApiSettings(token=SecretStr("x"), token_file=full), "127.0.0.1")


def test_metrics_token() -> None:
    api = ApiSettings(token=SecretStr("main"), metrics_token=SecretStr("scrape"))
    tokens = load_api_tokens(api, "0.0.0.0")
    assert tokens.allows("scrape", metrics=True) and tokens.allows("main", metrics=True)
    assert not tokens.allows("scrape") and tokens.allows("main")
    # A scraper token alone would leave the rest open: refused.
    with pytest.raises(ConfigError, match=r"api\.metrics_token is set but api\.token is not"):
        load_api_tokens(ApiSettings(metrics_token=SecretStr("scrape")), "127.0.0.1")


def test_tokens_stay_secret_in_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STRATUM_PROXY_API__TOKEN", "env-secret-token")
    settings = load_settings(None)
    assert "env-secret-token" not in repr(settings) and "env-secret-token" not in str(settings)
    assert client_token(settings.api) == "env-secret-token"
    assert "env-secret-token" not in repr(load_api_tokens(settings.api, "0.0.0.0"))
    # The CLI's --api-token-file replaces the environment's token.
    path = tmp_path / "t"
    path.write_text("file-token\n")
    flagged = load_settings(None, **{"api.token_file": path, "api.token": ""})
    assert client_token(flagged.api) == "file-token"
    assert client_token(ApiSettings()) is None
