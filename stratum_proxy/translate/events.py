"""What the translation core asks its asyncio shell to do or to log."""

from __future__ import annotations

from dataclasses import dataclass

from stratum_proxy.store.record import ShareRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class ShareRecorded:
    """One submit's final row (the miner got its answer at the same time)."""

    miner_id: int
    record: ShareRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseMiner:
    """This miner cannot go on (channel closed, pool gone, no extranonce space)."""

    miner_id: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerAuthorized:
    miner_id: int
    worker: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MinerLineIgnored:
    miner_id: int
    reason: str
    excerpt: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolReconnect:
    """The pool sent Reconnect; empty host / port 0 mean the current ones."""

    host: str
    port: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice:
    level: str  # "info", "warning" or "error"
    text: str


TranslateEvent = (
    ShareRecorded | CloseMiner | WorkerAuthorized | MinerLineIgnored | PoolReconnect | Notice
)
