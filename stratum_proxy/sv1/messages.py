"""Typed Stratum V1 messages: one frozen dataclass per known method.

Stratum V1 is JSON-RPC 1.0-ish: a request is ``{"id", "method", "params"}``, a
response ``{"id", "result", "error"}``.  Notifications are requests whose id is
null, but real pools also send notifications with a non-null id (see
shared/docs/sv1_transcripts.md section 4.1), so the class is chosen by method,
never by id.  Methods we do not know become ``UnknownMethod``: they are still
forwarded untouched by the session.

Hex fields of ``mining.submit`` stay strings (the record stores them as the miner
sent them; the tracker converts them on the hot path).  ``mining.notify`` is
converted here once per job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias

from stratum_proxy.errors import RemoteProtocolError

# JSON-RPC ids are numbers, strings or null; "4" and 4 are different ids.
RpcId: TypeAlias = int | float | str | None


class InvalidMessage(RemoteProtocolError):
    """One line could not be understood; the line is skipped (never fatal).

    ``method``, ``msg_id`` and ``params`` are what could be read before the
    failure, so that a malformed ``mining.submit`` can still become a record.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        msg_id: RpcId = None,
        params: Any = None,
    ) -> None:
        super().__init__(message, fatal=False)
        self.method = method
        self.msg_id = msg_id
        self.params = params


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """An answer to a request.  ``reject_reason`` is ckpool's "reject-reason"."""

    id: RpcId
    result: Any
    error: Any
    reject_reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownMethod:
    """A request or notification whose method we do not interpret."""

    id: RpcId
    method: str
    params: Any


# -- miner -> pool ---------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Subscribe:
    method: ClassVar[str] = "mining.subscribe"
    id: RpcId
    user_agent: str | None = None
    session_id: str | None = None  # resume request (cgminer/bmminer 2nd param)


@dataclass(frozen=True, slots=True, kw_only=True)
class Authorize:
    """The password is deliberately not kept: events end up in logs."""

    method: ClassVar[str] = "mining.authorize"
    id: RpcId
    worker: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Configure:
    """BIP310 ``mining.configure``: extension codes and their parameters."""

    method: ClassVar[str] = "mining.configure"
    id: RpcId
    extensions: tuple[str, ...]
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Submit:
    """``mining.submit``; ``version_bits`` is the BIP310 6th param (None if absent)."""

    method: ClassVar[str] = "mining.submit"
    id: RpcId
    worker: str
    job_id: str
    extranonce2: str
    ntime: str
    nonce: str
    version_bits: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SuggestDifficulty:
    method: ClassVar[str] = "mining.suggest_difficulty"
    id: RpcId
    difficulty: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtranonceSubscribe:
    method: ClassVar[str] = "mining.extranonce.subscribe"
    id: RpcId


# -- pool -> miner ---------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SetDifficulty:
    method: ClassVar[str] = "mining.set_difficulty"
    id: RpcId
    difficulty: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Notify:
    """``mining.notify``.  ``prevhash`` is in stratum order (words swapped)."""

    method: ClassVar[str] = "mining.notify"
    id: RpcId
    job_id: str
    prevhash: bytes
    coinb1: bytes
    coinb2: bytes
    merkle_branch: tuple[bytes, ...]
    version: int
    nbits: int
    ntime: int
    clean_jobs: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class SetExtranonce:
    """Applies to jobs notified after it; size None when the pool omits it."""

    method: ClassVar[str] = "mining.set_extranonce"
    id: RpcId
    extranonce1: str
    extranonce2_size: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SetVersionMask:
    method: ClassVar[str] = "mining.set_version_mask"
    id: RpcId
    mask: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientReconnect:
    """``client.reconnect``; empty params mean "reconnect to the same pool"."""

    method: ClassVar[str] = "client.reconnect"
    id: RpcId
    host: str | None = None
    port: int | None = None
    wait_s: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ShowMessage:
    method: ClassVar[str] = "client.show_message"
    id: RpcId
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping:
    method: ClassVar[str] = "mining.ping"
    id: RpcId


@dataclass(frozen=True, slots=True, kw_only=True)
class GetVersion:
    method: ClassVar[str] = "client.get_version"
    id: RpcId


Message: TypeAlias = (
    Response
    | UnknownMethod
    | Subscribe
    | Authorize
    | Configure
    | Submit
    | SuggestDifficulty
    | ExtranonceSubscribe
    | SetDifficulty
    | Notify
    | SetExtranonce
    | SetVersionMask
    | ClientReconnect
    | ShowMessage
    | Ping
    | GetVersion
)
