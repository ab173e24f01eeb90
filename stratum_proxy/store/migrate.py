"""Creating the schema and migrating it forward, on any store.

``ensure_schema`` reads the highest version recorded in ``schema_version``,
runs the statements of every later migration (each idempotent), records each
one, then brings the tables' TTLs in line with the retention settings.  It
runs on every start, so it must be cheap when nothing changes: two small
SELECTs per table checked, and one listing of the database.

The version table only says which migrations ran, not that their tables still
exist: after ``DROP TABLE mining.shares`` every insert fails while the version
says current.  So each start also compares the tables and views the applied
migrations create with those present and, when any is missing, runs those
migrations' statements again.  They are idempotent, so what exists (and its
rows) is left alone; the missing objects come back empty.  A recreated
aggregate only counts shares inserted after it is back.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import structlog

from stratum_proxy.store.schema import (
    LATEST_VERSION,
    MIGRATIONS,
    Migration,
    SchemaConfig,
    aggregate_ttl,
    shares_ttl,
    sql_string,
)

# Runs one statement and returns ClickHouse's TabSeparated output.
Execute = Callable[[str], str]

# The object a CREATE statement makes (``db.name``); ALTERs and the database are not objects.
_CREATED = re.compile(r"^CREATE (?:TABLE|MATERIALIZED VIEW) IF NOT EXISTS (\S+?)(?:\s|$)")


def current_version(execute: Execute, cfg: SchemaConfig) -> int:
    """The highest applied migration; 0 when the store is empty."""
    exists = execute(
        "SELECT count() FROM system.tables "
        f"WHERE database = {sql_string(cfg.database)} AND name = 'schema_version'"
    )
    if int(exists.strip() or 0) == 0:
        return 0
    return int(execute(f"SELECT max(version) FROM {cfg.database}.schema_version").strip() or 0)


def ensure_schema(
    execute: Execute, cfg: SchemaConfig, *, target: int = LATEST_VERSION, log: Any = None
) -> int:
    """Create, repair or migrate the schema up to ``target``; idempotent.  Returns the version."""
    version = current_version(execute, cfg)
    if version:
        repair_schema(execute, cfg, version, log=log)
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


def expected_objects(cfg: SchemaConfig, version: int) -> list[str]:
    """Names (without the database) of the tables and views migrations up to ``version`` create."""
    names: list[str] = []
    for migration in _applied(version):
        for statement in migration.statements(cfg):
            match = _CREATED.match(statement)
            name = match.group(1).split(".", 1)[1] if match else None
            if name is not None and name not in names:
                names.append(name)
    return names


def missing_objects(execute: Execute, cfg: SchemaConfig, version: int) -> list[str]:
    """The tables and views of schema ``version`` that the database lacks."""
    present = set(
        execute(
            f"SELECT name FROM system.tables WHERE database = {sql_string(cfg.database)}"
        ).splitlines()
    )
    return [name for name in expected_objects(cfg, version) if name not in present]


def repair_schema(
    execute: Execute, cfg: SchemaConfig, version: int, *, log: Any = None
) -> list[str]:
    """Recreate the missing tables and views of schema ``version``; returns their names.

    Every statement of the applied migrations runs again, in order: a recreated
    ``shares`` gets its later columns from the ALTERs of migration 2, and the
    existing objects are untouched (IF NOT EXISTS).  The feed view follows its
    source and target by name, so a recreated ``shares`` or aggregate is fed
    again without touching the view.
    """
    missing = missing_objects(execute, cfg, version)
    if not missing:
        return []
    log = log if log is not None else structlog.get_logger("stratum_proxy.store")
    log.warning(
        "schema_repair",
        database=cfg.database,
        version=version,
        missing=missing,
        note="recreated empty: rows a dropped table held are gone",
    )
    for migration in _applied(version):
        for statement in migration.statements(cfg):
            execute(statement)
    still = missing_objects(execute, cfg, version)
    if still:
        log.error("schema_repair_incomplete", database=cfg.database, missing=still)
    else:
        log.info("schema_repaired", database=cfg.database, recreated=missing)
    return [name for name in missing if name not in still]


def _applied(version: int) -> list[Migration]:
    return [m for m in MIGRATIONS if m.version <= version]


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
