"""Creating the schema and migrating it forward, on any store.

``ensure_schema`` reads the highest version recorded in ``schema_version``,
runs the statements of every later migration (each idempotent), records each
one, then brings the tables' TTLs in line with the retention settings.  It
runs on every start, so it must be cheap when nothing changes: two small
SELECTs per table checked.
"""

from __future__ import annotations

from collections.abc import Callable

from stratum_proxy.store.schema import (
    LATEST_VERSION,
    MIGRATIONS,
    SchemaConfig,
    aggregate_ttl,
    shares_ttl,
    sql_string,
)

# Runs one statement and returns ClickHouse's TabSeparated output.
Execute = Callable[[str], str]


def current_version(execute: Execute, cfg: SchemaConfig) -> int:
    """The highest applied migration; 0 when the store is empty."""
    exists = execute(
        "SELECT count() FROM system.tables "
        f"WHERE database = {sql_string(cfg.database)} AND name = 'schema_version'"
    )
    if int(exists.strip() or 0) == 0:
        return 0
    return int(execute(f"SELECT max(version) FROM {cfg.database}.schema_version").strip() or 0)


def ensure_schema(execute: Execute, cfg: SchemaConfig, *, target: int = LATEST_VERSION) -> int:
    """Create or migrate the schema up to ``target``; idempotent.  Returns the version."""
    version = current_version(execute, cfg)
    for migration in MIGRATIONS:
        if version < migration.version <= target:
            for statement in migration.statements(cfg):
                execute(statement)
            execute(
                f"INSERT INTO {cfg.database}.schema_version (version, description) "
                f"VALUES ({migration.version}, {sql_string(migration.description)})"
            )
            version = migration.version
    if version >= 1:
        _sync_ttl(execute, cfg, "shares", shares_ttl(cfg))
    if version >= 3:
        _sync_ttl(execute, cfg, "mv_hash_rate_stats", aggregate_ttl(cfg))
    return version


def _sync_ttl(execute: Execute, cfg: SchemaConfig, name: str, ttl: str) -> None:
    """Apply a changed retention setting to an existing table."""
    table = cfg.local(name).split(".", 1)[1]
    engine = execute(
        "SELECT engine_full FROM system.tables "
        f"WHERE database = {sql_string(cfg.database)} AND name = {sql_string(table)}"
    )
    if f"TTL {ttl}" in engine.replace("\\'", "'"):
        return
    # Not materialised now: rewriting every part would stall the writer; the
    # new TTL applies as parts merge and to every new part.
    execute(
        f"ALTER TABLE {cfg.local(name)}{cfg.on_cluster} MODIFY TTL {ttl} "
        "SETTINGS materialize_ttl_after_modify = 0"
    )
