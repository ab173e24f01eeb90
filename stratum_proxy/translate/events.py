"""What the translation core asks its asyncio shell to do or to log.

Every input of the Translator returns a list of these.  Within one list the
bytes come first (``SendToPool``, then one ``SendToMiner`` per miner owed
bytes), then what happened, in the order it happened: so a miner's answers are
written before a ``CloseMiner`` for it is acted on.

``SendToPool``, ``SendToMiner`` and ``ShareRecorded`` come once per share or
more, so they are not frozen: a frozen dataclass's __init__ sets each field
through object.__setattr__, about twice the cost.  Treat them as read-only.
"""

from __future__ import annotations

from dataclasses import dataclass

from stratum_proxy.store.record import ShareRecord


@dataclass(slots=True, kw_only=True)
class SendToPool:
    """Bytes for the SV2 pool connection (handshake, setup, channel requests, submits)."""

    data: bytes


@dataclass(slots=True, kw_only=True)
class SendToMiner:
    """Bytes (whole SV1 lines) for one miner's connection."""

    miner_id: int
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolReady:
    """SetupConnection.Success: the connection is usable, channels are being opened."""

    used_version: int
    flags: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SetupRefused:
    """SetupConnection.Error: the pool refused us; the connection is over."""

    error_code: str


@dataclass(slots=True, kw_only=True)
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
    SendToPool
    | SendToMiner
    | PoolReady
    | SetupRefused
    | ShareRecorded
    | CloseMiner
    | WorkerAuthorized
    | MinerLineIgnored
    | PoolReconnect
    | Notice
)
