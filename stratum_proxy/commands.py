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


def _api_url(api_address: str, path: str) -> str:
    """``http://host:port/path`` for the daemon's API; a wildcard bind is reached on loopback."""
    from stratum_proxy.proxy.endpoints import parse_listen

    host, port = parse_listen(api_address)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}{path}" if ":" in host else f"http://{host}:{port}{path}"


def _api_token(settings: Any) -> str | None:
    """The bearer token for a running daemon (api.token, api.token_file, --api-token-file)."""
    from stratum_proxy.web.tokens import client_token

    return client_token(settings.api)


def token_refused(api_address: str, token: str | None) -> Exception:
    """The error for a 401 from a running daemon's API: which setting to fill in."""
    from stratum_proxy.errors import ConfigError

    what = "refused the token it was sent" if token else "needs a token"
    return ConfigError(
        f"the daemon's API at {api_address} {what}: set api.token_file or "
        "STRATUM_PROXY_API__TOKEN to the daemon's token, or pass --api-token-file"
    )


def _call_api(
    api_address: str,
    path: str,
    body: bytes,
    *,
    token: str | None,
    content_type: str = "text/plain; charset=utf-8",
    timeout_s: float = 60.0,
) -> bytes:
    """POST ``body`` to a running daemon's API; HTTP errors become our errors."""
    import urllib.error
    import urllib.request

    from stratum_proxy.errors import QueryRefused, StoreError

    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        _api_url(api_address, path), data=body, method="POST", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace").strip() or f"HTTP {exc.code}"
        if exc.code == 401:
            raise token_refused(api_address, token) from None
        if exc.code == 403:
            raise QueryRefused(f"the daemon's API at {api_address} refused: {detail}") from None
        raise StoreError(detail, retryable=exc.code in (503, 504)) from None
    except (urllib.error.URLError, OSError) as exc:
        raise StoreError(
            f"the store is held by a running stratum-proxy whose API at {api_address} "
            f"did not answer ({exc}); stop that process or check its [api] listen setting",
            retryable=True,
        ) from None


def query_via_api(
    api_address: str, sql: str, timeout_s: float = 60.0, *, token: str | None = None
) -> bytes:
    """Run ``sql`` through a running daemon's /api/query (it holds the embedded store)."""
    return _call_api(api_address, "/api/query", sql.encode(), token=token, timeout_s=timeout_s)


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
            return query_via_api(holder.api_address, sql, token=_api_token(settings))
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

    def __init__(self, api_address: str, token: str | None) -> None:
        self.api_address = api_address
        self._token = token

    def query(self, sql: str) -> bytes:
        return query_via_api(self.api_address, sql, token=self._token)

    def close(self) -> None:
        return None


def _reporting_store(settings: Any) -> Any:
    holder = _held_by_daemon(settings)
    if holder is not None and holder.api_address:
        return _ApiStore(holder.api_address, _api_token(settings))
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
    """Delete old share rows: through a running daemon's POST /api/cleanup, or directly."""
    import time

    import orjson

    from stratum_proxy.errors import ConfigError
    from stratum_proxy.store.reports import cleanup

    if days < 1:
        raise ConfigError(f"cleanup --days must be a whole number of days, at least 1 (got {days})")
    holder = _held_by_daemon(settings)
    if holder is not None and holder.api_address:
        answer = _call_api(
            holder.api_address,
            "/api/cleanup",
            orjson.dumps({"days": days}),
            token=_api_token(settings),
            content_type="application/json",
            timeout_s=600.0,  # a DELETE mutation rewrites a partition
        )
        deleted = int(orjson.loads(answer)["deleted"])
    else:
        store = _reporting_store(settings)
        try:
            deleted = cleanup(store, days, time.time(), schema=_schema(settings))
        finally:
            store.close()
    return f"deleted {deleted} share rows older than {days} days"


def run_spool(settings: Any, command: str) -> str:
    """``spool status`` / ``drain`` / ``replay-deadletter``.

    A replay that left batches dead-lettered raises StoreError with its summary,
    so the command exits non-zero.
    """
    import orjson

    from stratum_proxy.store.settings import resolve_spool_dir
    from stratum_proxy.store.spool_admin import drain_spool, spool_status

    spool_dir = resolve_spool_dir(settings.store)
    if command == "status":
        status = spool_status(spool_dir)
        return orjson.dumps(status, option=orjson.OPT_INDENT_2, default=str).decode() + "\n"
    if command == "replay-deadletter":
        return _replay_dead_letters(settings, spool_dir)
    store = _open(settings)
    try:
        store.ensure_schema()
        written = drain_spool(spool_dir, store, batch_rows=settings.store.batch_rows)
    finally:
        store.close()
    return f"drained {written} rows from {spool_dir} into {store_display(settings)}\n"


def _replay_dead_letters(settings: Any, spool_dir: Any) -> str:
    import time

    from stratum_proxy.errors import StoreError
    from stratum_proxy.store.spool_admin import replay_dead_letters

    store = _open(settings)
    try:
        store.ensure_schema()
        report = replay_dead_letters(spool_dir, store, now=time.time())
    finally:
        store.close()
    text = (
        f"replayed {report['rows_replayed']} rows in {report['batches_replayed']} batches "
        f"from {spool_dir} into {store_display(settings)} (batches the store already held "
        f"were deduplicated by their tokens)\n"
    )
    if report["archive"]:
        text += f"moved the replayed file to {report['archive']}\n"
    if report["malformed_lines"]:
        text += f"skipped {report['malformed_lines']} damaged lines (kept in the file)\n"
    if report["batches_failed"]:
        why = (
            f"the store is unavailable ({report['stopped_by']}); run it again later"
            if report["stopped_by"]
            else "see their errors in deadletter.jsonl"
        )
        raise StoreError(
            f"{text}{report['batches_failed']} batches ({report['rows_failed']} rows) "
            f"are still dead-lettered: {why}",
            retryable=bool(report["stopped_by"]),
        )
    return text


def store_display(settings: Any) -> str:
    from stratum_proxy.store.url import redact_url

    return str(redact_url(settings.store.url))
