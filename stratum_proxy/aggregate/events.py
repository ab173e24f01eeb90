"""What the aggregate core asks its asyncio shell to do, or to log."""

from __future__ import annotations

from dataclasses import dataclass

from stratum_proxy.store.record import ShareRecord


@dataclass(frozen=True, slots=True)
class SendToMiner:
    miner_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class SendToUpstream:
    upstream_id: int
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenUpstream:
    """Open a TCP connection to pool ``pool`` (index in priority order) for ``upstream_id``.

    The shell answers with ``upstream_connected`` or ``upstream_failed``.
    ``identity``: the user identity of the connection's channel on an SV2 pool
    (a worker's own channel); empty: the farm's ``pool_user``.
    """

    upstream_id: int
    pool: int
    identity: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseUpstream:
    upstream_id: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseMiner:
    miner_id: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ShareRecorded:
    miner_id: int
    record: ShareRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class MinersMoved:
    """A failover or fail-back: miners got work from another upstream, connections kept."""

    from_pool: str
    to_pool: str
    miners: int
    without_work_s: float  # the longest any of them waited for the new work


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice:
    level: str  # "info", "warning" or "error"
    event: str  # the log line's event name
    fields: tuple[tuple[str, object], ...] = ()
    miner_id: int | None = None


AggregateEvent = (
    SendToMiner
    | SendToUpstream
    | OpenUpstream
    | CloseUpstream
    | CloseMiner
    | ShareRecorded
    | MinersMoved
    | Notice
)
