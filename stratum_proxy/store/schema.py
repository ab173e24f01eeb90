"""The ClickHouse schema of the share store, and its forward migrations.

The same DDL runs on the embedded engine (chdb) and on a server.

Tables (database ``mining`` unless the URL names another):

* ``shares`` — one row per submitted share, every ``ShareRecord`` field in
  ``COLUMNS`` order.  Partitioned by day so retention drops whole parts;
  ``ORDER BY (worker, ts)`` because the questions asked are "this worker over
  this time range".  TTL ``retention_days`` with ``ttl_only_drop_parts=1``.
* ``mv_hash_rate_stats`` — the per-minute aggregate, keyed by
  ``(period_start, proxy_id, upstream, worker, channel_id)``.  It keeps the name
  and columns of the original design (``period_start``, ``channel_id``,
  ``share_count``, ``total_hashes``, ``min_timestamp``, ``max_timestamp``) so the
  DESIGN.md hashrate query runs as written, and adds what the per-worker
  dashboard needs (accepted/rejected/block counts, best share).  It is an
  ``AggregatingMergeTree`` of ``SimpleAggregateFunction`` columns whose ORDER BY
  equals the view's GROUP BY: a SummingMergeTree would sum the min/max
  timestamps on merge.  ``share_count`` counts every submitted share;
  ``total_hashes`` is sum(difficulty asked of the miner) * 2^32 over *accepted*
  shares only (``WORK_DIFFICULTY``: the pool's difficulty but in aggregate mode,
  where the proxy sets the miner's own): the expected work behind a share is
  its target difficulty times 2^32, while the share's own (computed) difficulty
  would bias the estimate upwards.  Manual rows (``manual``) are left out.
  Readers must aggregate (sum/min/max) since rows of one key merge lazily.
* ``schema_version`` — one row per applied migration.

The view ``mv_hash_rate_stats_feed`` fills the aggregate from every insert
into ``shares``.

Exactly once: every table, the view targets included, has
``non_replicated_deduplication_window`` (``replicated_deduplication_window`` in
a cluster), and inserts carry ``insert_deduplication_token`` with
``deduplicate_blocks_in_dependent_materialized_views=1``, so a retried batch
counts once in ``shares`` and once in each aggregate.

Late rows (a long outage replayed from the spool): each table keeps a row iff
the row is within *that table's* retention.  A row older than
``retention_days`` is dropped by ``shares``' TTL (its day's part expires at
once and is removed by the next TTL merge, which the engine schedules right
away; ``ttl_only_drop_parts`` means a row sharing a part with younger rows of
its day waits until the whole day has expired), but
it is still counted by the aggregates as long as it is younger than
``aggregate_retention_days``: the aggregates exist to keep history longer than
the raw rows, and a replayed share is real history.  Rows older than the
aggregate retention are removed by the aggregates' own TTL, which works row by
row (``ttl_only_drop_parts=0``; the aggregates are small).

Cluster (``settings.cluster`` set): all DDL is ``ON CLUSTER``, data lives in
``*_local`` Replicated tables, and ``shares`` and ``mv_hash_rate_stats`` are
``Distributed`` tables over them, so queries keep their
names.  The writer inserts into ``shares_local`` on the node it is connected
to, not into the Distributed table: an acknowledged insert is then committed
in a replicated part (a Distributed insert may be acknowledged while still
queued on the node), and the dedup token is checked by the replicated block-id
mechanism across the shard's replicas.  Spread proxies over shards to spread
the load.

Migrations (``MIGRATIONS``, applied by ``migrate.ensure_schema``) are numbered
and each statement is idempotent (IF NOT EXISTS), so a crash mid-migration is
repaired by the next start.  A view added by a migration only sees rows
inserted after it exists: aggregates do not cover rows written before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from stratum_proxy.store.record import COLUMN_SPECS, COLUMNS, columns_since

# Blocks whose hashes/tokens a table remembers.  One writer retries one batch
# (a batch over a day boundary is two blocks); several proxies may share a
# table, so keep far more than needed.
DEDUP_WINDOW = 1000

# (name, type with codec) of every column of ``shares``, from ``record.ShareRecord``.
SHARES_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (name, spec.ddl) for name, spec in zip(COLUMNS, COLUMN_SPECS, strict=True)
)
_SHARES_V1 = tuple((name, spec.ddl) for name, spec in columns_since(1))


@dataclass(frozen=True, slots=True, kw_only=True)
class SchemaConfig:
    """What the DDL depends on."""

    database: str = "mining"
    retention_days: int = 30
    aggregate_retention_days: int = 400
    cluster: str = ""

    def table(self, name: str) -> str:
        """Fully qualified name of a table as queried (Distributed in a cluster)."""
        return f"{self.database}.{name}"

    def local(self, name: str) -> str:
        """Fully qualified name of the table holding the data on this node."""
        return f"{self.database}.{name}_local" if self.cluster else f"{self.database}.{name}"

    @property
    def insert_table(self) -> str:
        """Where the writer inserts (see the module docstring for the cluster case)."""
        return self.local("shares")

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER {quote_ident(self.cluster)}" if self.cluster else ""

    def engine(self, family: str) -> str:
        if not self.cluster:
            return family
        # Server macros: one replication path per shard and table.
        path = "/clickhouse/tables/{shard}/{database}/{table}"
        return f"Replicated{family}('{path}', '{{replica}}')"

    @property
    def dedup_setting(self) -> str:
        name = "replicated" if self.cluster else "non_replicated"
        return f"{name}_deduplication_window = {DEDUP_WINDOW}"


def quote_ident(name: str) -> str:
    """A backquoted identifier (cluster and database names come from settings)."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def insert_settings(token: str) -> dict[str, object]:
    """Query settings every batch insert carries."""
    return {
        "insert_deduplicate": 1,
        "insert_deduplication_token": token,
        "deduplicate_blocks_in_dependent_materialized_views": 1,
    }


def shares_ttl(cfg: SchemaConfig) -> str:
    return f"toDateTime(ts) + toIntervalDay({cfg.retention_days})"


def aggregate_ttl(cfg: SchemaConfig) -> str:
    return f"period_start + toIntervalDay({cfg.aggregate_retention_days})"


def _column_list(columns: tuple[tuple[str, str], ...]) -> str:
    return ",\n    ".join(f"{name} {ctype}" for name, ctype in columns)


def _distributed(cfg: SchemaConfig, name: str, sharding_key: str) -> list[str]:
    """The Distributed front of a ``*_local`` table (cluster only)."""
    if not cfg.cluster:
        return []
    return [
        f"CREATE TABLE IF NOT EXISTS {cfg.table(name)}{cfg.on_cluster} AS {cfg.local(name)}\n"
        f"ENGINE = Distributed({quote_ident(cfg.cluster)}, {quote_ident(cfg.database)}, "
        f"{quote_ident(name + '_local')}, {sharding_key})"
    ]


def _v1_shares(cfg: SchemaConfig) -> list[str]:
    create = (
        f"CREATE TABLE IF NOT EXISTS {cfg.local('shares')}{cfg.on_cluster} (\n"
        f"    {_column_list(_SHARES_V1)}\n)\n"
        f"ENGINE = {cfg.engine('MergeTree')}\n"
        "PARTITION BY toDate(ts)\n"
        "ORDER BY (worker, ts)\n"
        f"TTL {shares_ttl(cfg)}\n"
        f"SETTINGS ttl_only_drop_parts = 1, {cfg.dedup_setting}"
    )
    return [
        f"CREATE DATABASE IF NOT EXISTS {quote_ident(cfg.database)}{cfg.on_cluster}",
        _schema_version_table(cfg),
        create,
        *_distributed(cfg, "shares", "rand()"),
    ]


def _schema_version_table(cfg: SchemaConfig) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {cfg.database}.schema_version{cfg.on_cluster} (\n"
        "    version UInt32,\n    description String,\n"
        "    applied_at DateTime('UTC') DEFAULT now()\n)\n"
        f"ENGINE = {cfg.engine('ReplacingMergeTree')}\nORDER BY version"
    )


def _added_columns(migration: int) -> Callable[[SchemaConfig], list[str]]:
    """The ALTERs that add the columns ``migration`` introduced, each after its predecessor."""

    def statements(cfg: SchemaConfig) -> list[str]:
        tables = [cfg.local("shares")] + ([cfg.table("shares")] if cfg.cluster else [])
        out = []
        for table in tables:
            for name, spec in columns_since(migration):
                after = COLUMNS[COLUMNS.index(name) - 1]
                # A Distributed table takes no codecs.
                col_type = spec.ddl if table == cfg.local("shares") else spec.type
                out.append(
                    f"ALTER TABLE {table}{cfg.on_cluster} "
                    f"ADD COLUMN IF NOT EXISTS {name} {col_type} AFTER {after}"
                )
        return out

    return statements


def _aggregate_table(cfg: SchemaConfig, name: str, columns: str, order_by: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {cfg.local(name)}{cfg.on_cluster} (\n    {columns}\n)\n"
        f"ENGINE = {cfg.engine('AggregatingMergeTree')}\n"
        "PARTITION BY toYYYYMM(period_start)\n"
        f"ORDER BY ({order_by})\n"
        f"TTL {aggregate_ttl(cfg)}\n"
        f"SETTINGS ttl_only_drop_parts = 0, {cfg.dedup_setting}"
    )


_MINUTE = "toStartOfMinute(toDateTime(ts, 'UTC'))"
_AGGREGATE_KEY = "period_start, proxy_id, upstream, worker, channel_id"
_AGGREGATE_COLUMNS = (
    "period_start DateTime('UTC') CODEC(Delta, ZSTD(1))",
    "proxy_id LowCardinality(String)",
    "upstream LowCardinality(String)",
    "worker LowCardinality(String)",
    "channel_id UInt32",
    "share_count SimpleAggregateFunction(sum, UInt64)",
    "accepted_count SimpleAggregateFunction(sum, UInt64)",
    "rejected_count SimpleAggregateFunction(sum, UInt64)",
    "block_count SimpleAggregateFunction(sum, UInt64)",
    "total_hashes SimpleAggregateFunction(sum, Float64)",
    "best_share SimpleAggregateFunction(max, Float64)",
    "min_timestamp SimpleAggregateFunction(min, DateTime64(3, 'UTC'))",
    "max_timestamp SimpleAggregateFunction(max, DateTime64(3, 'UTC'))",
)
# 4294967296 = 2^32 hashes per unit of difficulty; the product is exact in Float64.
# {work} is the difficulty the miner was asked for (the view of migration 3 used
# pool_difficulty; migration 6 the miner's own difficulty, see ``_v6_manual``).
_AGGREGATE_SELECT = """SELECT {minute} AS period_start, proxy_id, upstream, worker, channel_id,
    count() AS share_count,
    countIf(status = 'accepted') AS accepted_count,
    countIf(status = 'rejected') AS rejected_count,
    countIf(is_block) AS block_count,
    sumIf({work}, status = 'accepted') * 4294967296 AS total_hashes,
    max(share_difficulty) AS best_share,
    min(ts) AS min_timestamp,
    max(ts) AS max_timestamp"""
# The difficulty a share was worked at: the proxy's own (vardiff) in aggregate
# mode, the pool's otherwise; rows older than migration 5 hold 0 there.
WORK_DIFFICULTY = "if(miner_difficulty > 0, miner_difficulty, pool_difficulty)"


def _aggregate_select(cfg: SchemaConfig, work: str = "pool_difficulty", where: str = "") -> str:
    select = _AGGREGATE_SELECT.format(minute=_MINUTE, work=work)
    return f"{select}\nFROM {cfg.local('shares')}\n{where}GROUP BY {_AGGREGATE_KEY}"


def _v3_aggregates(cfg: SchemaConfig) -> list[str]:
    # One aggregate serves both the DESIGN.md per-channel hashrate query and the
    # per-worker dashboard: every view costs a part write per insert, and an SV1
    # channel carries one worker, so the extra key columns add few rows.
    select = _aggregate_select(cfg)
    return [
        _aggregate_table(
            cfg, "mv_hash_rate_stats", ",\n    ".join(_AGGREGATE_COLUMNS), _AGGREGATE_KEY
        ),
        _view(cfg, "mv_hash_rate_stats", select),
        *_distributed(cfg, "mv_hash_rate_stats", "rand()"),
    ]


def _view(cfg: SchemaConfig, target: str, select: str) -> str:
    return (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {cfg.database}.{target}_feed{cfg.on_cluster}\n"
        f"TO {cfg.local(target)} AS\n{select}"
    )


def _v6_manual(cfg: SchemaConfig) -> list[str]:
    # The aggregate counts measured shares only: a manual row (POST /api/shares)
    # carries no hash and a difficulty nobody checked.  Its work is the miner's
    # difficulty: in aggregate mode a share the proxy accepted below the pool's
    # difficulty is not worth the pool's.  MODIFY QUERY swaps the view's query
    # in place, so no insert runs unfed in between (a DROP and CREATE would
    # leave a gap for a second proxy writing to the same server).
    return [
        *_added_columns(6)(cfg),
        f"ALTER TABLE {cfg.database}.mv_hash_rate_stats_feed{cfg.on_cluster} MODIFY QUERY\n"
        + _aggregate_select(cfg, WORK_DIFFICULTY, "WHERE NOT manual\n"),
    ]


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: Callable[[SchemaConfig], list[str]]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "shares table with the DESIGN.md record columns", _v1_shares),
    Migration(2, "shares: version_bits and extranonce1 columns", _added_columns(2)),
    Migration(3, "per-minute aggregate mv_hash_rate_stats", _v3_aggregates),
    Migration(4, "shares: connection_id column", _added_columns(4)),
    Migration(5, "shares: miner_difficulty, forwarded, verdict_by columns", _added_columns(5)),
    Migration(6, "shares: manual column; the aggregate leaves manual rows out", _v6_manual),
)
LATEST_VERSION = MIGRATIONS[-1].version


def all_statements(cfg: SchemaConfig) -> list[str]:
    """Every DDL statement of the latest schema, in order (for review and tests)."""
    return [stmt for m in MIGRATIONS for stmt in m.statements(cfg)]


def sql_string(value: str) -> str:
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
