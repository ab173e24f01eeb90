"""--store URL parsing: the accepted forms, and a clear error for everything else."""

from __future__ import annotations

from pathlib import Path

import pytest

from stratum_proxy.errors import ConfigError
from stratum_proxy.store.url import ChdbUrl, ClickHouseUrl, parse_store_url, redact_url


def test_chdb_absolute_path() -> None:
    assert parse_store_url("chdb:///var/lib/stratum/db") == ChdbUrl(
        path=Path("/var/lib/stratum/db")
    )


def test_chdb_relative_path_is_resolved_against_cwd(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_store_url("chdb://./data/db") == ChdbUrl(path=tmp_path / "data" / "db")


def test_clickhouse_full_form() -> None:
    url = parse_store_url("clickhouse://miner:s%40cret@ch.lan:9001/farm?secure=0&http_port=8124")
    assert url == ClickHouseUrl(
        host="ch.lan",
        port=9001,
        user="miner",
        password="s@cret",
        database="farm",
        secure=False,
        verify=True,
        http_port=8124,
    )


def test_clickhouse_defaults() -> None:
    url = parse_store_url("clickhouse://ch.lan")
    assert isinstance(url, ClickHouseUrl)
    assert (url.port, url.user, url.password, url.database, url.http_port) == (
        9000,
        "default",
        "",
        "mining",
        8123,
    )


def test_secure_changes_the_default_native_port() -> None:
    url = parse_store_url("clickhouse://ch.lan/mining?secure=1")
    assert isinstance(url, ClickHouseUrl)
    assert url.secure and url.port == 9440


def test_ipv6_host() -> None:
    url = parse_store_url("clickhouse://u:p@[::1]:9000/mining")
    assert isinstance(url, ClickHouseUrl)
    assert url.host == "::1"
    assert "[::1]:9000" in url.display_url


def test_display_url_hides_the_password() -> None:
    url = parse_store_url("clickhouse://miner:topsecret@ch.lan:9000/mining")
    assert "topsecret" not in url.display_url
    assert url.display_url.startswith("clickhouse://miner:***@ch.lan:9000/mining")


def test_redact_url_masks_passwords_even_in_invalid_urls() -> None:
    assert "hunter2" not in redact_url("clickhouse://bob:hunter2@host:notaport/x")
    assert redact_url("chdb:///x") == "chdb:///x"


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("/var/lib/db", "has no scheme"),
        ("postgres://h/db", "'postgres' is not supported"),
        ("chdb://data", "must start with / or ./"),
        ("chdb:///", "refusing to use /"),
        ("chdb:///x?mode=ro", "take no parameters"),
        ("clickhouse://h:99999/db", "invalid port"),
        ("clickhouse:///db", "has no host"),
        ("clickhouse://h/db?compress=1", "unknown parameter"),
        ("clickhouse://h/db?secure=maybe", "must be 0 or 1"),
        ("clickhouse://h/db?http_port=http", "is not a TCP port"),
        ("clickhouse://h/a/b", "single database name"),
    ],
)
def test_bad_urls_say_what_is_accepted(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_store_url(url)
    assert fragment in str(info.value)


def test_errors_list_the_accepted_forms_and_never_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        parse_store_url("clickhouse://bob:hunter2@h:70000/db")
    message = str(info.value)
    assert "hunter2" not in message
    assert "chdb:///absolute/path" in message and "clickhouse://user:password@host:9000" in message
