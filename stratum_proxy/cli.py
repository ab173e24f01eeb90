"""The ``stratum-proxy`` command: run, query, stats, cleanup, spool, keys, demo.

Flags that override a setting default to None (unset means "as the settings
say"), so argparse cannot show their defaults; each such help text names the
setting's built-in default, read from the settings models.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stratum_proxy import __version__
from stratum_proxy.errors import ConfigError, StoreBusyError, StratumProxyError
from stratum_proxy.top import SORTS

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


# Defaults that depend on where the process runs, said in words.
_SPOOL_DIR_DEFAULT = "'spool' next to an embedded store's data directory, else ./data/spool"
_PROXY_ID_DEFAULT = "this host's name"


def setting_default(path: str) -> Any:
    """The built-in default of a setting (``"store.url"``), ignoring config files and env."""
    from stratum_proxy.settings import Settings

    model: Any = Settings
    value: Any = None
    for part in path.split("."):
        value = model.model_fields[part].get_default(call_default_factory=True)
        model = type(value)
    return value


def _with_default(help_: str, default: object) -> str:
    if isinstance(default, list):
        default = ", ".join(map(str, default)) or "none"
    text = "none" if default is None else ("'' (off)" if default == "" else str(default))
    # argparse %-formats help strings.
    return f"{help_} (default: {text})".replace("%", "%%")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML settings file (see config/stratum-proxy.toml)")


def _store_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        help=_with_default(
            "chdb:///path or clickhouse://user:pass@host:9000/mining",
            setting_default("store.url"),
        ),
    )


def _spool_dir_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--spool-dir",
        type=Path,
        help=_with_default("durable backup spool directory", _SPOOL_DIR_DEFAULT),
    )


def _api_client_flags(
    p: argparse.ArgumentParser,
    help_: str = "file holding the running daemon's API token "
    "(default: the api.token / api.token_file settings)",
) -> None:
    p.add_argument("--api-token-file", type=Path, help=help_.replace("%", "%%"))


def _token_overrides(args: argparse.Namespace) -> dict[str, Any]:
    if args.api_token_file is None:
        return {}
    # The flag replaces whatever token the file or the environment configured.
    return {"api.token_file": args.api_token_file, "api.token": ""}


def _client_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Settings for a command that may go through a running daemon's API."""
    return {"store.url": args.store, **_token_overrides(args)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stratum-proxy",
        description="Stratum mining proxy that records every share into ClickHouse.",
    )
    parser.add_argument("--version", action="version", version=f"stratum-proxy {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the proxy daemon")
    _common(run)
    run.add_argument(
        "--listen",
        action="append",
        help=_with_default("host:port for miners (repeatable)", setting_default("listen")),
    )
    run.add_argument(
        "--pool",
        action="append",
        help="pool URL, in failover order (repeatable; required unless pools are in --config)",
    )
    run.add_argument(
        "--mode",
        choices=["auto", "passthrough", "translate", "aggregate"],
        help=_with_default(
            "how miner connections are handled (a listen address may say its own, "
            "e.g. aggregate=0.0.0.0:3334)",
            setting_default("mode"),
        ),
    )
    run.add_argument(
        "--listen-sv2",
        action="append",
        metavar="HOST:PORT",
        help="also listen for SV2 miners here (the same as --listen sv2=HOST:PORT; needs "
        "--authority-key-file and an SV1 pool)",
    )
    run.add_argument(
        "--authority-key-file",
        type=Path,
        help="the proxy's own SV2 authority key (stratum-proxy keys generate), mode 600",
    )
    run.add_argument(
        "--pool-user", help="aggregate mode: the farm's account on the pools (aggregate.pool_user)"
    )
    run.add_argument(
        "--pool-password",
        help=_with_default("aggregate mode: its password", "x"),
    )
    _store_flags(run)
    _spool_dir_flag(run)
    run.add_argument(
        "--proxy-id",
        help=_with_default("this instance's name in the share rows", _PROXY_ID_DEFAULT),
    )
    run.add_argument(
        "--api-listen",
        help=_with_default(
            "host:port of the HTTP API ('' disables it); off loopback it needs a token",
            setting_default("api.listen"),
        ),
    )
    _api_client_flags(
        run,
        _with_default(
            "file holding the API's bearer token (api.token_file)",
            setting_default("api.token_file"),
        ),
    )
    run.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help=_with_default("log threshold", setting_default("log.level")),
    )
    run.add_argument(
        "--log-format",
        choices=["auto", "json", "console"],
        help=_with_default(
            "log lines as JSON or for reading (auto: console on a terminal, else JSON)",
            setting_default("log.format"),
        ),
    )

    query = sub.add_parser("query", help="run SQL on the share store, print ClickHouse's output")
    _common(query)
    _store_flags(query)
    _api_client_flags(query)
    query.add_argument("sql", help='e.g. "SELECT count() FROM mining.shares"')

    stats = sub.add_parser("stats", help="per-worker summary of the last hours")
    _common(stats)
    _store_flags(stats)
    _api_client_flags(stats)
    stats.add_argument(
        "--hours", type=float, default=24.0, help="how far back (default: %(default)s)"
    )
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")

    cleanup = sub.add_parser("cleanup", help="delete share rows older than N days, now")
    _common(cleanup)
    _store_flags(cleanup)
    _api_client_flags(cleanup)
    cleanup.add_argument("--days", type=int, required=True, help="keep this many days of rows")

    spool = sub.add_parser("spool", help="inspect, drain or replay the backup spool")
    spool_sub = spool.add_subparsers(dest="spool_command", required=True)
    status = spool_sub.add_parser("status", help="what the spool and its dead-letter file hold")
    _common(status)
    _spool_dir_flag(status)
    drain = spool_sub.add_parser("drain", help="write the spool into a store, then trim it")
    _common(drain)
    _spool_dir_flag(drain)
    _store_flags(drain)
    replay = spool_sub.add_parser(
        "replay-deadletter",
        help="insert the dead-lettered batches again (once their cause is fixed)",
        description="Insert every batch of <spool-dir>/deadletter.jsonl with its original "
        "dedup token, then move the file aside as deadletter.jsonl.replayed-<UTC time>. "
        "Batches the store refuses again, and damaged lines, stay in deadletter.jsonl. "
        "Not while a daemon uses the spool.",
    )
    _common(replay)
    _spool_dir_flag(replay)
    _store_flags(replay)

    dashboard = sub.add_parser(
        "dashboard",
        help="the dashboard over a store, without a daemon (a copy, or a ClickHouse server)",
        description="Serve the dashboard and the read-only API over the store at --store. "
        "No live figures: those come from a running daemon's own dashboard at its api.listen.",
    )
    _common(dashboard)
    _store_flags(dashboard)
    dashboard.add_argument(
        "--listen", default="127.0.0.1:8082", help="host:port to serve on (default: %(default)s)"
    )
    dashboard.add_argument(
        "--api-token-file",
        type=Path,
        help="file holding the token the page must send (required off loopback)",
    )

    top = sub.add_parser(
        "top",
        help="the farm and its workers, live in the terminal (reads the daemon's API)",
        description="Live worker table and farm totals from a running daemon's API "
        "(/api/farm and /api/workers). Keys: q quit, s next sort column, r reverse, "
        "d down workers only, / filter by name. Not on a terminal, or with --once: one "
        "plain frame.",
    )
    _common(top)
    _api_client_flags(top)
    top.add_argument(
        "--api",
        "--api-listen",  # the name `run` gives the same address
        metavar="HOST:PORT",
        help="the daemon's API (default: api.listen)",
    )
    top.add_argument("--hours", type=float, default=24.0, help="window (default: %(default)s)")
    top.add_argument(
        "--interval", type=float, default=2.0, help="seconds between refreshes (default: 2)"
    )
    top.add_argument("--sort", choices=SORTS, default="hashrate", help="sort column")
    top.add_argument("--filter", default="", help="only workers whose name contains this")
    top.add_argument("--down", action="store_true", help="only workers that are down")
    top.add_argument("--once", action="store_true", help="print one frame and exit")

    keys = sub.add_parser("keys", help="Stratum V2 authority keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    keys_sub.add_parser("generate", help="a new authority key pair (base58check)")
    show = keys_sub.add_parser("show", help="the public key of a secret key")
    show.add_argument("secret")

    demo = sub.add_parser("demo", help="test pool + simulated CPU miners + the proxy, live table")
    demo.add_argument(
        "--miners", type=int, default=4, help="simulated miners (default: %(default)s)"
    )
    demo.add_argument(
        "--seconds", type=float, default=20.0, help="how long to run (default: %(default)s)"
    )
    demo.add_argument("--store", help="store URL (default: a temporary embedded store)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except StoreBusyError as exc:
        print(f"stratum-proxy: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ConfigError as exc:
        print(f"stratum-proxy: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StratumProxyError as exc:
        print(f"stratum-proxy: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def _settings(args: argparse.Namespace, **overrides: Any) -> Any:
    from stratum_proxy.settings import load_settings

    return load_settings(getattr(args, "config", None), **overrides)


def _listen(args: argparse.Namespace) -> list[str] | None:
    """--listen and --listen-sv2 together; None leaves the settings' own."""
    listen: list[str] | None = args.listen
    sv2 = [f"sv2={address}" for address in args.listen_sv2 or []]
    if not sv2:
        return listen
    if listen is None:  # added to what the config file or the environment says
        from stratum_proxy.settings import load_settings

        listen = list(load_settings(getattr(args, "config", None)).listen)
    return [*listen, *sv2]


def _dispatch(args: argparse.Namespace) -> int:
    command = args.command
    if command == "run":
        from stratum_proxy.daemon import run_daemon

        settings = _settings(
            args,
            listen=_listen(args),
            pools=args.pool,
            proxy_id=args.proxy_id,
            mode=args.mode,
            **{
                "aggregate.pool_user": args.pool_user,
                "sv2.authority_key_file": args.authority_key_file,
                "aggregate.pool_password": args.pool_password,
                "store.url": args.store,
                "store.spool_dir": args.spool_dir,
                "api.listen": args.api_listen,
                **_token_overrides(args),
                "log.level": args.log_level,
                "log.format": args.log_format,
            },
        )
        if not settings.pools:
            raise ConfigError(
                "no pool configured: give --pool stratum+tcp://host:port (or pools in --config)"
            )
        return run_daemon(settings)
    if command == "query":
        from stratum_proxy.commands import run_query

        settings = _settings(args, **_client_overrides(args))
        sys.stdout.buffer.write(run_query(settings, args.sql))
        sys.stdout.flush()
        return EXIT_OK
    if command == "stats":
        from stratum_proxy.commands import run_stats

        settings = _settings(args, **_client_overrides(args))
        print(run_stats(settings, args.hours, as_json=args.json), end="")
        return EXIT_OK
    if command == "cleanup":
        from stratum_proxy.commands import run_cleanup

        settings = _settings(args, **_client_overrides(args))
        print(run_cleanup(settings, args.days))
        return EXIT_OK
    if command == "spool":
        from stratum_proxy.commands import run_spool

        overrides: dict[str, Any] = {"store.spool_dir": args.spool_dir}
        if args.spool_command in ("drain", "replay-deadletter"):
            overrides["store.url"] = args.store
        settings = _settings(args, **overrides)
        print(run_spool(settings, args.spool_command), end="")
        return EXIT_OK
    if command == "dashboard":
        import asyncio

        from stratum_proxy.logging import configure_logging, get_logger
        from stratum_proxy.web.browse import browse_store

        settings = _settings(args, **_client_overrides(args))
        configure_logging(settings.log.level, settings.log.format)
        return asyncio.run(browse_store(settings, args.listen, get_logger()))
    if command == "top":
        from stratum_proxy.commands import _api_token
        from stratum_proxy.top import View, run_top

        settings = _settings(args, **_token_overrides(args))
        address = args.api or settings.api.listen
        if not address:
            raise ConfigError("no API address: pass --api HOST:PORT or set [api] listen")
        if not 0 < args.hours <= 24 * 400 or args.interval < 0.2:
            raise ConfigError("--hours must be above 0 (at most 9600), --interval at least 0.2")
        view = View(sort=args.sort, filter=args.filter, down_only=args.down)
        return run_top(
            address,
            _api_token(settings),
            hours=args.hours,
            interval=args.interval,
            view=view,
            once=args.once,
        )
    if command == "keys":
        from stratum_proxy.commands import run_keys

        print(run_keys(args.keys_command, getattr(args, "secret", None)))
        return EXIT_OK
    if command == "demo":
        from stratum_proxy.demo import run_demo_command

        return run_demo_command(miners=args.miners, seconds=args.seconds, store=args.store)
    raise ConfigError(f"unknown command {command}")


if __name__ == "__main__":
    sys.exit(main())
