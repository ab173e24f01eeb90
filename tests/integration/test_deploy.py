"""deploy/: the compose file, Prometheus, its alert rules and the Grafana dashboards.

No container engine runs here, so everything that can be checked without one
is: the files parse; the proxy's environment is settings the proxy accepts;
every ClickHouse query of the dashboards, its Grafana macros expanded, runs on
the real embedded store and gives the right numbers (manual rows left out);
every metric the alert rules and the Prometheus panels name is one the proxy
exports; and ``promtool`` checks the rules and the config where it is
installed (Debian's ``prometheus`` package).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from helpers.store_rows import rec

from stratum_proxy.proxy.stats import WorkerStats
from stratum_proxy.settings import load_settings
from stratum_proxy.store import panels, reports
from stratum_proxy.store.backend import encode_batch
from stratum_proxy.store.chdb_store import ChdbStore
from stratum_proxy.store.pipeline import SharePipeline
from stratum_proxy.store.record import ShareRecord
from stratum_proxy.store.settings import StoreSettings
from stratum_proxy.web.metrics import render, take_snapshot

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
NOW = time.time()
FROM, TO = NOW - 3600, NOW + 60


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _panels() -> list[tuple[str, dict[str, Any]]]:
    return [
        (board.name, panel)
        for board in DASHBOARDS
        for panel in json.loads(board.read_text())["panels"]
    ]


def _clickhouse_panels() -> list[tuple[str, dict[str, Any]]]:
    return [
        (board, panel)
        for board, panel in _panels()
        if panel["datasource"]["type"] == "grafana-clickhouse-datasource"
    ]


# --- the files -----------------------------------------------------------------------


def test_the_compose_file_has_the_four_services_and_their_files() -> None:
    compose = _yaml(DEPLOY / "docker-compose.yml")
    assert set(compose["services"]) == {"clickhouse", "stratum-proxy", "prometheus", "grafana"}
    for service in compose["services"].values():
        assert ":latest" not in str(service.get("image", "")), "pinned images only"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), volume
    assert (DEPLOY / ".env.example").is_file() and (DEPLOY / "make-secrets.sh").is_file()
    grafana = compose["services"]["grafana"]["environment"]
    assert "grafana-clickhouse-datasource" in grafana["GF_INSTALL_PLUGINS"]


def test_the_proxys_environment_is_settings_the_proxy_accepts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = _yaml(DEPLOY / "docker-compose.yml")["services"]["stratum-proxy"]["environment"]
    example = dict(
        line.split("=", 1)
        for line in (DEPLOY / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    token = tmp_path / "token"
    token.write_text("t" * 32)
    token.chmod(0o600)

    def interpolate(value: str) -> str:
        # Compose's ${NAME}, ${NAME:-default} and ${NAME:?message} from .env.example.
        def one(match: re.Match[str]) -> str:
            name, _, rest = match.group(1).partition(":")
            return example.get(name) or rest.lstrip("-?")

        return re.sub(r"\$\{([^}]+)\}", one, str(value))

    for name, value in env.items():
        value = interpolate(value)
        if name.endswith("_FILE"):
            value = str(token)  # the secret's path inside the container
        monkeypatch.setenv(name, value)
    settings = load_settings(None)
    assert settings.listen == ["0.0.0.0:3333"]
    assert [p.split("=")[0] for p in settings.pools] == ["main", "backup"]
    assert settings.store.url.startswith("clickhouse://stratum:") and "@clickhouse:9000" in (
        settings.store.url
    )
    assert settings.api.listen == "0.0.0.0:8081" and settings.api.allowed_hosts == ["stratum-proxy"]
    assert settings.api.token_file == token and settings.api.metrics_token_file == token


def test_prometheus_scrapes_the_proxy_with_the_metrics_token_and_loads_the_rules() -> None:
    config = _yaml(DEPLOY / "prometheus" / "prometheus.yml")
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["credentials_file"] == "/run/secrets/metrics_token"
    assert job["static_configs"][0]["targets"] == ["stratum-proxy:8081"]


def test_grafana_provisions_the_datasources_and_the_dashboards_use_them() -> None:
    provisioned = _yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yml")
    uids = {d["uid"]: d["type"] for d in provisioned["datasources"]}
    assert uids == {"clickhouse": "grafana-clickhouse-datasource", "prometheus": "prometheus"}
    providers = _yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yml")
    assert (
        providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/stratum-proxy"
    )
    assert {b.name for b in DASHBOARDS} == {
        "farm.json",
        "workers.json",
        "pools.json",
        "pipeline.json",
    }
    seen_uids = set()
    for board in DASHBOARDS:
        content = json.loads(board.read_text())
        assert content["uid"] not in seen_uids
        seen_uids.add(content["uid"])
        for panel in content["panels"]:
            for target in [panel, *panel["targets"]]:
                assert uids[target["datasource"]["uid"]] == target["datasource"]["type"]


# --- the dashboards' SQL on the real engine ------------------------------------------------

# Grafana's macros as the ClickHouse data source expands them, for a 1 h range
# and a 60 s interval.
_MACROS = {
    r"\$__timeFilter\((\w+)\)": (
        lambda m: (
            f"{m.group(1)} >= toDateTime({int(FROM)}) AND {m.group(1)} <= toDateTime({int(TO)})"
        )
    ),
    r"\$__timeInterval\((\w+)\)": (
        lambda m: f"toStartOfInterval(toDateTime({m.group(1)}), INTERVAL 60 second)"
    ),
    r"\$__interval_s": lambda m: "60",
}


def expand(sql: str, worker: str = "farm.rig1") -> str:
    for pattern, replace in _MACROS.items():
        sql = re.sub(pattern, replace, sql)
    # A worker name is whatever the miner sent: panels take it as ${worker:sqlstring},
    # which Grafana quotes, doubling the quotes inside.  A bare $worker is left for the
    # check below to refuse.
    sql = sql.replace("${worker:sqlstring}", "'" + worker.replace("'", "''") + "'")
    left = re.findall(r"\$\w+|\$\{[^}]*\}", sql)
    assert not left, f"macros the test does not expand: {left}"
    return sql


def _rows_of(store: ChdbStore, sql: str, worker: str = "farm.rig1") -> list[dict[str, Any]]:
    output = store.query(expand(sql, worker) + " FORMAT JSONEachRow")
    return [orjson.loads(line) for line in output.splitlines()]


@pytest.fixture
def farm(store: ChdbStore) -> list[ShareRecord]:
    rows = [
        rec(ts=NOW - 600, worker="farm.rig1", pool_difficulty=1024.0, miner_difficulty=1024.0),
        rec(ts=NOW - 300, worker="farm.rig1", pool_difficulty=1024.0, miner_difficulty=1024.0),
        rec(ts=NOW - 120, worker="farm.rig1", status="rejected", reject_reason="21 Stale"),
        rec(ts=NOW - 900, worker="farm.rig2", pool_difficulty=512.0, miner_difficulty=16.0,
            verdict_by="proxy"),
        rec(ts=NOW - 60, worker="farm.rig2", pool_difficulty=512.0, miner_difficulty=16.0),
        rec(ts=NOW - 30, worker="farm.rig2", status="no_response", upstream="pool-b"),
        rec(ts=NOW - 20, worker="farm.rig2", is_block=True, share_difficulty=9e13),
    ]  # fmt: skip
    manual = rec(ts=NOW - 10, worker="farm.rig1", manual=True, share_hash="", pool_difficulty=1e9)
    store.insert(encode_batch([*rows, manual], "deploy"))
    return rows


def test_every_clickhouse_panel_runs_and_gives_columns(
    store: ChdbStore, farm: list[ShareRecord]
) -> None:
    panels = _clickhouse_panels()
    assert len(panels) >= 10
    for board, panel in panels:
        for target in panel["targets"]:
            rows = _rows_of(store, target["rawSql"])
            assert rows, f"{board}: {panel['title']} gave no rows"
            if target["format"] == 0:  # a time series needs its time column first
                assert next(iter(rows[0])) == "time", f"{board}: {panel['title']}"
    board_variables = [
        v for b in DASHBOARDS for v in json.loads(b.read_text())["templating"]["list"]
    ]
    for variable in board_variables:
        values = [r["worker"] for r in _rows_of(store, variable["query"])]
        assert values == ["farm.rig1", "farm.rig2"]


def _panel(title: str) -> dict[str, Any]:
    (found,) = [p for _, p in _clickhouse_panels() if p["title"] == title]
    return found


def test_the_numbers_follow_the_rules(store: ChdbStore, farm: list[ShareRecord]) -> None:
    acceptance = _rows_of(store, _panel("Acceptance")["targets"][0]["rawSql"])
    assert math.isclose(acceptance[0]["acceptance"], 100 * 5 / 7)  # the manual row left out
    workers = {r["worker"]: r for r in _rows_of(store, _panel("Workers")["targets"][0]["rawSql"])}
    # rig1: 2 accepted at 1024 over 480 s; rig2: 2 accepted at its miner difficulty 16
    # (not the pool's 512) and one with no miner difficulty (its pool's, 65536) over 880 s.
    assert math.isclose(workers["farm.rig1"]["hashrate"], 2 * 1024 * 2**32 / 480, rel_tol=1e-3)
    rig2_work = 16 + 16 + 65536
    assert math.isclose(workers["farm.rig2"]["hashrate"], rig2_work * 2**32 / 880, rel_tol=1e-3)
    assert workers["farm.rig1"]["rejected"] == 1 and workers["farm.rig2"]["no_response"] == 1
    series = _rows_of(store, _panel("Hashrate")["targets"][0]["rawSql"])
    work = sum(r["hashrate"] * 60 for r in series)
    assert math.isclose(work, (2 * 1024 + rig2_work) * 2**32, rel_tol=1e-9)
    reasons = _rows_of(store, _panel("Reject reasons")["targets"][0]["rawSql"])
    assert reasons == [{"kind": "stale", "shares": 1}]
    pools = {r["pool"]: r for r in _rows_of(store, _panel("Pools")["targets"][0]["rawSql"])}
    assert math.isclose(pools["pool-a"]["hashrate_pct"], 100.0)
    assert pools["pool-b"]["hashrate_pct"] == 0
    (candidate,) = _rows_of(store, _panel("Block candidates")["targets"][0]["rawSql"])
    assert candidate["worker"] == "farm.rig2" and candidate["status"] == "accepted"


def test_every_shares_query_leaves_manual_rows_out_and_sorts_rejects_as_the_project_does() -> None:
    queries = [(p["title"], t) for _, p in _clickhouse_panels() for t in p["targets"]]
    variables = [v for b in DASHBOARDS for v in json.loads(b.read_text())["templating"]["list"]]
    for title, sql in [(t, q["rawSql"]) for t, q in queries] + [
        (v["name"], v["query"]) for v in variables
    ]:
        # Manual rows (POST /api/shares) were not measured: every read of shares skips them.
        assert sql.count("FROM mining.shares") == sql.count("NOT manual"), title
    for title, target in queries:
        # The plugin's query types are 'timeSeries' and 'table' (its QueryType enum), and
        # the backend reads `format`: 0 time series, 1 table.
        expected = {0: "timeSeries", 1: "table"}[target["format"]]
        assert target["queryType"] == expected, title
    squeeze = lambda s: re.sub(r"\s+", "", s)  # noqa: E731
    reject_sql = _panel("Reject reasons")["targets"][0]["rawSql"]
    assert squeeze(panels._REJECT_KIND_SQL) in squeeze(reject_sql)


def test_the_panels_agree_with_stats_and_the_api(store: ChdbStore) -> None:
    """On the same rows, the panels give what ``stratum-proxy stats`` and the API give."""
    odd = "o'rig"  # a quote in a worker name must neither break nor widen a query
    rows = [
        # 2.7 s apart: a span in whole seconds would be 3 s, 10 % off.
        rec(ts=NOW - 100.9, worker="w.two", pool_difficulty=1000.0, response_ms=12.0),
        rec(ts=NOW - 98.2, worker="w.two", pool_difficulty=1000.0, response_ms=80.0),
        # One share spans no time: its worker's hashrate is 0, not D * 2^32 per second.
        rec(ts=NOW - 50, worker="w.one", pool_difficulty=1000.0),
        rec(ts=NOW - 40, worker=odd, miner_difficulty=8.0, upstream="pool-b"),
        rec(ts=NOW - 39, worker=odd, miner_difficulty=8.0, upstream="pool-b"),
        rec(ts=NOW - 30, worker=odd, status="rejected", reject_reason="23 low difficulty",
            upstream="pool-b"),
        rec(ts=NOW - 20, worker=odd, status="rejected", reject_reason="duplicate",
            verdict_by="proxy", upstream="pool-b"),
        rec(ts=NOW - 10, worker=odd, status="no_response", upstream="pool-b", response_ms=0.0),
    ]  # fmt: skip
    manual = rec(ts=NOW - 5, worker="w.one", manual=True, pool_difficulty=1e9)
    store.insert(encode_batch([*rows, manual], "agree"))
    hours = (TO - FROM) / 3600
    close = lambda a, b: math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-6)  # noqa: E731

    stats = {w.worker: w for w in reports.worker_stats(store, hours, TO)}
    workers = {r["worker"]: r for r in _rows_of(store, _panel("Workers")["targets"][0]["rawSql"])}
    assert set(workers) == set(stats) == {"w.two", "w.one", odd}
    for name, want in stats.items():
        got = workers[name]
        assert [int(got[k]) for k in ("accepted", "rejected", "no_response")] == [
            want.accepted, want.rejected, want.no_response
        ], name  # fmt: skip
        assert close(got["acceptance_pct"], want.acceptance_pct), name
        assert close(got["hashrate"], want.hashrate), (name, got["hashrate"], want.hashrate)
        assert close(got["best_share"], want.best_share), name
        assert close(got["avg_difficulty"], want.avg_pool_difficulty), name
    assert workers["w.one"]["hashrate"] == 0

    totals = reports.share_totals(list(stats.values()))
    farm_rate = _rows_of(store, _panel("Hashrate (period)")["targets"][0]["rawSql"])
    assert close(farm_rate[0]["hashrate"], totals["hashrate"])
    acceptance = _rows_of(store, _panel("Acceptance")["targets"][0]["rawSql"])
    assert close(acceptance[0]["acceptance"], totals["acceptance_pct"])

    api_pools = panels.parse_pools(store.query(panels.pools_sql(hours, TO)), None)
    pools = {r["pool"]: r for r in _rows_of(store, _panel("Pools")["targets"][0]["rawSql"])}
    assert set(pools) == {p["upstream"] for p in api_pools}
    for want in api_pools:
        got = pools[want["upstream"]]
        assert int(got["shares"]) == want["shares"]
        for key in ("acceptance_pct", "p50_ms", "p99_ms", "hashrate"):
            assert close(got[key], want[key]), (want["upstream"], key, got[key], want[key])

    kinds = panels.parse_reject_reasons(store.query(panels.reject_reasons_sql(hours, TO)))
    shown = {r["kind"]: int(r["shares"]) for r in _rows_of(
        store, _panel("Reject reasons")["targets"][0]["rawSql"])}  # fmt: skip
    assert shown == {k: n for k, n in kinds.items() if n} == {"low_difficulty": 1, "proxy": 1}

    # The one-worker graph, for the worker with the quote: its rows and only its rows.
    series = _rows_of(store, _panel("Hashrate of $worker")["targets"][0]["rawSql"], worker=odd)
    assert close(sum(r["hashrate"] * 60 for r in series), 2 * 8 * 2**32)


# --- Prometheus names ------------------------------------------------------------------------


def _exported_names(tmp_path: Path) -> set[str]:
    from prometheus_client.parser import text_string_to_metric_families

    # The statistics of a real (unstarted) pipeline, so the names follow its keys.  A
    # None (nothing written yet) exports no sample: give every key a number.
    settings = StoreSettings(url=f"chdb://{tmp_path}/db", spool_dir=tmp_path / "spool")
    statistics = SharePipeline(settings, proxy_id="deploy-test").statistics()
    pipeline = {k: NOW if v is None else v for k, v in statistics.items()}
    proxy = {"connections": 1, "uptime_s": 1.0, "pools": {"main": {"up": True}}}
    workers = WorkerStats()
    workers.add(rec())
    text = render(take_snapshot(proxy, pipeline, workers, {"connections": 1}), 100).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def _expressions() -> list[str]:
    rules = _yaml(DEPLOY / "prometheus" / "alerts.yml")
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    for _, panel in _panels():
        exprs += [t["expr"] for t in panel["targets"] if "expr" in t]
    return exprs


def test_alerts_and_panels_name_only_metrics_the_proxy_exports(tmp_path: Path) -> None:
    exported = _exported_names(tmp_path) | {"up"}
    named = {n for e in _expressions() for n in re.findall(r"\b(stratum_proxy_\w+|up)\b", e)}
    assert named and named <= exported, named - exported
    alerts = {
        rule["alert"] for g in _yaml(DEPLOY / "prometheus" / "alerts.yml")["groups"]
        for rule in g["rules"]
    }  # fmt: skip
    for needed in ("WorkerDown", "AcceptanceLow", "PoolDown", "SpoolGrowing", "RowsShed"):
        assert f"StratumProxy{needed}" in alerts


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt install prometheus)")
def test_promtool_accepts_the_rules_and_the_config(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    rules = subprocess.run(
        [PROMTOOL, "check", "rules", str(DEPLOY / "prometheus" / "alerts.yml")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert rules.returncode == 0, rules.stdout + rules.stderr
    # The config names container paths; check a copy pointing at local files.
    config = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    token = tmp_path / "metrics_token"
    token.write_text("t")
    shutil.copy(DEPLOY / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    local = config.replace("/run/secrets/metrics_token", str(token)).replace(
        "/etc/prometheus/alerts.yml", str(tmp_path / "alerts.yml")
    )
    (tmp_path / "prometheus.yml").write_text(local)
    checked = subprocess.run(
        [PROMTOOL, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_make_secrets_makes_two_tokens_once_in_a_closed_directory(tmp_path: Path) -> None:
    shutil.copy(DEPLOY / "make-secrets.sh", tmp_path / "make-secrets.sh")
    run = subprocess.run(["sh", str(tmp_path / "make-secrets.sh")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    secrets = tmp_path / "secrets"
    tokens = {p.name: p.read_text().strip() for p in secrets.iterdir()}
    assert set(tokens) == {"api_token", "metrics_token"}
    assert len(set(tokens.values())) == 2 and all(len(t) >= 40 for t in tokens.values())
    assert secrets.stat().st_mode & 0o777 == 0o700
    again = subprocess.run(
        ["sh", str(tmp_path / "make-secrets.sh")], capture_output=True, text=True
    )
    assert (
        again.stdout == "" and {p.name: p.read_text().strip() for p in secrets.iterdir()} == tokens
    )


def test_every_alert_has_a_duration_a_severity_and_words_for_the_operator() -> None:
    rules = [r for g in _yaml(DEPLOY / "prometheus" / "alerts.yml")["groups"] for r in g["rules"]]
    for rule in rules:
        assert "for" in rule, rule["alert"]  # explicit, even when 0m
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_the_clickhouse_healthcheck_logs_in_as_the_user_the_image_creates() -> None:
    clickhouse = _yaml(DEPLOY / "docker-compose.yml")["services"]["clickhouse"]
    check = " ".join(clickhouse["healthcheck"]["test"])
    # With CLICKHOUSE_USER set, the image's entrypoint removes the user "default": a
    # check without credentials would never pass and the proxy, waiting for a healthy
    # store, would never start.
    if clickhouse["environment"].get("CLICKHOUSE_USER", "default") != "default":
        assert "/ping" in check or '--user "$$CLICKHOUSE_USER"' in check, check
