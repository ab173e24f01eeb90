"""The one-shot CLI commands (everything but ``run`` and ``demo``).

Each returns the text to print; errors are StratumProxyError subclasses that
the CLI turns into a message and an exit code.
"""

from __future__ import annotations

import os
from typing import Any


def run_keys(command: str, secret: str | None) -> str:
    """``keys generate`` / ``keys show SECRET`` in the spec's base58check text form."""
    from stratum_proxy.sv2.keys import generate_keypair, public_from_secret

    if command == "generate":
        secret_text, public_text = generate_keypair(os.urandom)
        return (
            f"secret: {secret_text}\n"
            f"public: {public_text}\n"
            "# Keep the secret on the pool/proxy that signs certificates; "
            "give miners and proxies the public key."
        )
    assert secret is not None
    return public_from_secret(secret.strip())


def _open(settings: Any) -> Any:
    from stratum_proxy.store.backend import open_store

    return open_store(settings.store.url, settings.store)


def _held_by_daemon(settings: Any) -> Any:
    """The running daemon holding this embedded store, if any (its lock names its API)."""
    from stratum_proxy.store.lock import read_lock_holder
    from stratum_proxy.store.url import ChdbUrl, parse_store_url

    parsed = parse_store_url(settings.store.url)
    if not isinstance(parsed, ChdbUrl):
        return None
    return read_lock_holder(parsed.path)


def query_via_api(api_address: str, sql: str, timeout_s: float = 60.0) -> bytes:
    """Run ``sql`` through a running daemon's /api/query (it holds the embedded store)."""
    import urllib.error
    import urllib.request

    from stratum_proxy.errors import StoreError

    request = urllib.request.Request(
        f"http://{api_address}/api/query", data=sql.encode(), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace").strip()
        raise StoreError(detail or f"HTTP {exc.code}", retryable=False) from None
    except (urllib.error.URLError, OSError) as exc:
        raise StoreError(
            f"the store is held by a running stratum-proxy whose API at {api_address} "
            f"did not answer ({exc}); stop that process or check its [api] listen setting",
            retryable=True,
        ) from None


def run_query(settings: Any, sql: str) -> bytes:
    """``stratum-proxy query``: ClickHouse's own output for ``sql``.

    An embedded store held by a running daemon is queried through that daemon's
    local API; without an API the error says so and how to fix it.
    """
    from stratum_proxy.errors import StoreBusyError
    from stratum_proxy.store.lock import busy_message
    from stratum_proxy.store.url import ChdbUrl, parse_store_url

    holder = _held_by_daemon(settings)
    if holder is not None:
        if holder.api_address:
            return query_via_api(holder.api_address, sql)
        path = parse_store_url(settings.store.url)
        assert isinstance(path, ChdbUrl)
        raise StoreBusyError(busy_message(path.path, holder))
    store = _open(settings)
    try:
        store.ensure_schema()  # idempotent: a fresh store answers with empty tables, not errors
        return bytes(store.query(sql))
    finally:
        store.close()


class _ApiStore:
    """Just enough of a Store to run read-side reports through a daemon's API."""

    def __init__(self, api_address: str) -> None:
        self.api_address = api_address

    def query(self, sql: str) -> bytes:
        return query_via_api(self.api_address, sql)

    def close(self) -> None:
        return None


def _reporting_store(settings: Any) -> Any:
    holder = _held_by_daemon(settings)
    if holder is not None and holder.api_address:
        return _ApiStore(holder.api_address)
    store = _open(settings)
    store.ensure_schema()
    return store


def _schema(settings: Any) -> Any:
    from stratum_proxy.store.backend import schema_for

    return schema_for(settings.store.url, settings.store)


def run_stats(settings: Any, hours: float, *, as_json: bool) -> str:
    import time

    from stratum_proxy.store.reports import stats_report

    store = _reporting_store(settings)
    try:
        return str(
            stats_report(store, hours, time.time(), as_json=as_json, schema=_schema(settings))
        )
    finally:
        store.close()


def run_cleanup(settings: Any, days: int) -> str:
    import time

    from stratum_proxy.store.reports import cleanup

    store = _reporting_store(settings)
    try:
        deleted = cleanup(store, days, time.time(), schema=_schema(settings))
    finally:
        store.close()
    return f"deleted {deleted} share rows older than {days} days"


def run_spool(settings: Any, command: str) -> str:
    import orjson

    from stratum_proxy.store.settings import resolve_spool_dir
    from stratum_proxy.store.spool_admin import drain_spool, spool_status

    spool_dir = resolve_spool_dir(settings.store)
    if command == "status":
        status = spool_status(spool_dir)
        return orjson.dumps(status, option=orjson.OPT_INDENT_2, default=str).decode() + "\n"
    store = _open(settings)
    try:
        store.ensure_schema()
        written = drain_spool(spool_dir, store, batch_rows=settings.store.batch_rows)
    finally:
        store.close()
    return f"drained {written} rows from {spool_dir} into {store_display(settings)}\n"


def store_display(settings: Any) -> str:
    from stratum_proxy.store.url import redact_url

    return str(redact_url(settings.store.url))
