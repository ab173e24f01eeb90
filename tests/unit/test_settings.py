"""Settings precedence: defaults < TOML file < environment < flags; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from stratum_proxy.errors import ConfigError
from stratum_proxy.settings import load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "stratum-proxy.toml"


def test_example_config_loads() -> None:
    settings = load_settings(EXAMPLE)
    assert settings.proxy_id == "farm-a-proxy-1"
    assert settings.pools[0].startswith("main=stratum+tcp://")
    assert settings.store.batch_rows == 10_000
    assert settings.limits.submit_timeout_s == 30


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text(
        'pools = ["stratum+tcp://file:1"]\n[store]\nurl = "chdb:///file"\nbatch_rows = 5\n'
        "[limits]\nidle_timeout_s = 11\n"
    )
    settings = load_settings(cfg)
    assert settings.store.url == "chdb:///file"
    assert settings.store.batch_rows == 5

    monkeypatch.setenv("STRATUM_PROXY_STORE__URL", "chdb:///env")
    monkeypatch.setenv("STRATUM_PROXY_LIMITS__IDLE_TIMEOUT_S", "22")
    settings = load_settings(cfg)
    assert settings.store.url == "chdb:///env"
    assert settings.limits.idle_timeout_s == 22
    assert settings.store.batch_rows == 5  # the file's value survives a sibling override

    settings = load_settings(
        cfg, **{"store.url": "chdb:///flag", "pools": ["stratum+tcp://flag:2"]}
    )
    assert settings.store.url == "chdb:///flag"
    assert settings.pools == ["stratum+tcp://flag:2"]
    assert settings.store.batch_rows == 5
    assert settings.limits.idle_timeout_s == 22


def test_env_list_as_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATUM_PROXY_POOLS", '["stratum+tcp://a:1","stratum+tcp://b:2"]')
    assert load_settings().pools == ["stratum+tcp://a:1", "stratum+tcp://b:2"]


def test_none_flags_are_ignored() -> None:
    settings = load_settings(None, **{"store.url": None, "listen": None})
    assert settings.listen == ["0.0.0.0:3333"]


def test_bad_values_name_the_setting(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[limits]\nmax_line_bytes = -1\n")
    with pytest.raises(ConfigError, match=r"limits\.max_line_bytes"):
        load_settings(cfg)


def test_unknown_key_rejected(tmp_path: Path) -> None:
    cfg = tmp_path / "typo.toml"
    cfg.write_text("listn = ['0.0.0.0:1']\n")
    with pytest.raises(ConfigError, match="listn"):
        load_settings(cfg)


def test_broken_toml_and_missing_file(tmp_path: Path) -> None:
    cfg = tmp_path / "broken.toml"
    cfg.write_text("[store\nurl=")
    with pytest.raises(ConfigError, match=r"broken\.toml"):
        load_settings(cfg)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_a_token_in_the_wrong_shape_is_not_echoed(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[api]\ntoken = ["hunter2-secret"]\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert "api.token" in str(caught.value)
    assert "hunter2-secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("section", "typo"),
    [
        ("store", 'urll = "chdb:///elsewhere"'),
        ("limits", "max_conections = 5"),
        ("log", 'levle = "debug"'),
        ("api", 'listn = "0.0.0.0:8081"'),
        ("sv2", 'extranonce_mod = "aggregated"'),
    ],
)
def test_a_typo_in_any_section_is_refused(tmp_path: Path, section: str, typo: str) -> None:
    config = tmp_path / "typo.toml"
    config.write_text(f"[{section}]\n{typo}\n")
    key = typo.split(" =")[0]
    with pytest.raises(ConfigError, match=rf"{section}\.{key}: Extra inputs are not permitted"):
        load_settings(config)


def test_a_typo_in_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATUM_PROXY_STORE__URLL", "chdb:///elsewhere")
    with pytest.raises(ConfigError, match=r"store\.urll"):
        load_settings(None)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"store.url": "mysql://x"}, "store.url: .*scheme 'mysql' is not supported"),
        ({"store.url": "garbage"}, "store.url: .*has no scheme"),
        ({"store.url": "clickhouse://h:notaport/db"}, "store.url"),
        ({"pools": ["ftp://pool:3333"]}, "setting pools: .*unsupported scheme 'ftp'"),
        ({"pools": ["stratum+tcp://pool"]}, "setting pools: .*needs a host and a port"),
        ({"listen": ["nonsense"]}, "setting listen: .*expected host:port"),
        ({"api.listen": "0.0.0.0"}, "setting api.listen: .*expected host:port"),
    ],
)
def test_bad_addresses_are_refused_at_start(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(None, **overrides)
    # An empty api.listen turns the API off: allowed.
    assert load_settings(None, **{"api.listen": ""}).api.listen == ""


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("chdb://", "the path must start with / or ./"),
        ("chdb://data", "the path must start with / or ./"),
        ("clickhouse://h:99999/db", "invalid port"),
        ("clickhouse://h/db?sekure=1", "unknown parameter"),
        ("postgres://h/db", "'postgres' is not supported"),
    ],
)
def test_every_unusable_store_url_names_the_setting_and_the_accepted_forms(
    url: str, fragment: str
) -> None:
    with pytest.raises(ConfigError, match=r"setting store\.url: ") as caught:
        load_settings(None, **{"store.url": url})
    assert fragment in str(caught.value)
    assert "chdb:///absolute/path" in str(caught.value) or "accepted" in str(caught.value)
    assert "Value error" not in str(caught.value)  # pydantic's wording is not ours


def test_a_store_password_is_never_echoed(tmp_path: Path) -> None:
    for overrides in (
        {"store.url": "clickhouse://bob:hunter2@h:notaport/db"},
        {"store.url": "clickhouse://bob:hunter2@h/db?x=1"},
        {"store.urll": "clickhouse://bob:hunter2@h/db"},
    ):
        with pytest.raises(ConfigError, match=r"store\.url") as caught:
            load_settings(None, **overrides)
        assert "hunter2" not in str(caught.value), overrides


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"pools": ["main=stratum+tcp://pool"]}, r"setting pools: pool 'main="),
        ({"pools": ["stratum+tcp://pool:70000"]}, "setting pools: .*needs a host and a port"),
        ({"pools": ["stratum2+tcp://pool:3336"]}, "setting pools: .*authority public key"),
        ({"listen": ["0.0.0.0:3333", "0.0.0.0:99999"]}, r"setting listen: .*0\.0\.0\.0:99999"),
        ({"api.listen": "localhost:http"}, "setting api.listen: .*expected host:port"),
    ],
)
def test_every_bad_address_is_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(None, **overrides)


def test_bad_addresses_in_the_file_and_environment_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('pools = ["ftp://pool:3333"]\n')
    with pytest.raises(ConfigError, match=r"setting pools: .*unsupported scheme 'ftp'"):
        load_settings(config)
    monkeypatch.setenv("STRATUM_PROXY_LISTEN", "0.0.0.0")
    with pytest.raises(ConfigError, match="setting listen: "):
        load_settings(None)


def test_a_misspelt_section_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "typo.toml"
    config.write_text('[stor]\nurl = "chdb:///elsewhere"\n')
    with pytest.raises(ConfigError, match="setting stor: Extra inputs are not permitted"):
        load_settings(config)


@pytest.mark.parametrize(
    "name", ["STRATUM_PROXY_LIMITS__MAX_CONECTIONS", "STRATUM_PROXY_SV2__EXTRANONCE_MOD"]
)
def test_a_misspelt_nested_env_var_is_refused(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "5")
    key = name.removeprefix("STRATUM_PROXY_").lower().replace("__", ".")
    with pytest.raises(ConfigError, match=rf"setting {key}: Extra inputs are not permitted"):
        load_settings(None)


def test_unknown_top_level_env_vars_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # pydantic-settings reads only the env vars named after fields, and refusing the
    # others would break Kubernetes, which injects STRATUM_PROXY_PORT and friends
    # for a Service named stratum-proxy.
    monkeypatch.setenv("STRATUM_PROXY_PORT", "tcp://10.0.0.1:3333")
    monkeypatch.setenv("STRATUM_PROXY_SERVICE_HOST", "10.0.0.1")
    assert load_settings(None).listen == ["0.0.0.0:3333"]


def test_env_lists_may_be_written_with_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATUM_PROXY_POOLS", "stratum+tcp://a:1, stratum+tcp://b:2")
    monkeypatch.setenv("STRATUM_PROXY_API__ALLOWED_HOSTS", "proxy.lan,proxy")
    settings = load_settings(None)
    assert settings.pools == ["stratum+tcp://a:1", "stratum+tcp://b:2"]
    assert settings.api.allowed_hosts == ["proxy.lan", "proxy"]


def test_an_env_section_that_is_not_json_names_the_section(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STRATUM_PROXY_STORE", "chdb:///x")
    with pytest.raises(ConfigError, match="setting store: Input should be a valid dictionary"):
        load_settings(None)


def test_a_bad_version_mask_says_what_is_expected() -> None:
    with pytest.raises(ConfigError, match=r"setting sv2\.version_mask: 'zz' is not a hex mask"):
        load_settings(None, **{"sv2.version_mask": "zz"})


def test_listen_addresses_may_carry_their_mode() -> None:
    from stratum_proxy.proxy.endpoints import parse_listener

    settings = load_settings(
        None,
        listen=["0.0.0.0:3333", "aggregate=0.0.0.0:3334"],
        pools=["stratum+tcp://pool:3333"],
        **{"aggregate.pool_user": "farm1"},
    )
    modes = [parse_listener(a, default_mode=settings.mode).mode for a in settings.listen]
    assert modes == ["auto", "aggregate"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"listen": ["fast=0.0.0.0:1"]}, "unknown mode 'fast'"),
        ({"mode": "aggregate"}, "aggregate.pool_user"),
        (
            {"mode": "aggregate", "aggregate.pool_user": "f", "pools": ["stratum2+tcp://p:1/k"]},
            "SV2 authority public key",
        ),
        (
            {"aggregate.min_difficulty": 10, "aggregate.start_difficulty": 1},
            "min_difficulty <= start_difficulty",
        ),
    ],
)
def test_aggregate_mistakes_are_refused_at_start(
    overrides: dict[str, object], message: str
) -> None:
    values: dict[str, object] = {"pools": ["stratum+tcp://pool:3333"], **overrides}
    with pytest.raises(ConfigError) as info:
        load_settings(None, **values)
    assert message in str(info.value)
