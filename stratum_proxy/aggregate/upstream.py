"""One SV1 pool connection that carries many miners (aggregate mode).  Sans-I/O.

The proxy is the pool's only miner on this connection: it subscribes once,
asks for version rolling, authorizes the pool user and, with identity
pass-through, each miner's worker name, and submits its miners' shares with
ids of its own.  Those ids never repeat on the connection, so an answer is
paired with exactly the submit it answers, however late, and a miner that
reuses ids (cpuminer sends every submit as id 4) cannot shift a verdict.

Contract (as every protocol core): bytes and time in (``receive_data``,
``handle_timer``), a list of events out, ``get_timer()``; requests
(``submit``, ``authorize``) return their events too.  Bytes for the pool are
``SendToPool`` events.  ``now`` is the monotonic clock.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from stratum_proxy.sv1 import messages as m
from stratum_proxy.sv1.codec import LineBuffer
from stratum_proxy.sv1.params import maybe_mask
from stratum_proxy.sv1.parser import parse_line
from stratum_proxy.sv1.verdict import verdict

USER_AGENT = "stratum-proxy"
# Version-rolling bits the proxy asks the pool for (BIP310's general-purpose
# bits); miners are granted their own request intersected with what the pool grants.
REQUESTED_MASK = 0x1FFFE000
# Verdicts given up on but possibly still coming, kept to report them as late.
_LATE_KEEP = 4096
_EXCERPT = 120


# -- events ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendToPool:
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamReady:
    """Subscribed and the pool user authorized: miners may be placed here."""

    extranonce1: bytes
    extranonce2_size: int
    version_mask: int  # 0 when the pool granted no version rolling


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamRefused:
    """Subscribe or the pool user's authorization failed: this connection is useless."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolDifficulty:
    difficulty: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolJob:
    notify: m.Notify
    difficulty: float  # the pool's difficulty for shares on this job (set before it)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerAuthorized:
    worker: str
    accepted: bool
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ShareVerdict:
    """The pool's answer to a forwarded share (or ``no_response`` at its deadline)."""

    token: Any
    status: str  # "accepted", "rejected" or "no_response"
    reason: str
    submitted_at: float
    resolved_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class LateVerdict:
    """An answer to a share already recorded as no_response."""

    token: Any
    accepted: bool
    reason: str
    late_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolReconnect:
    host: str | None
    port: int | None
    wait_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtranonceChanged:
    """The pool changed this connection's extranonce: placed miners must be re-placed."""

    extranonce1: bytes
    extranonce2_size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolNotice:
    level: str  # "info" or "warning"
    text: str


UpstreamEvent = (
    SendToPool
    | UpstreamReady
    | UpstreamRefused
    | PoolDifficulty
    | PoolJob
    | WorkerAuthorized
    | ShareVerdict
    | LateVerdict
    | PoolReconnect
    | ExtranonceChanged
    | PoolNotice
)


class PoolClient(Protocol):
    """What the aggregate core needs of one pool connection (SV1 here, SV2 in sv2_pool.py)."""

    user: str
    # False: the pool has no per-worker authorization (an SV2 channel carries one
    # identity), so miners' worker names are never sent to it.
    worker_identities: bool

    @property
    def ready(self) -> bool: ...
    @property
    def extranonce2_size(self) -> int: ...
    @property
    def difficulty(self) -> float: ...
    def pending(self) -> int: ...
    def start(self, now: float) -> list[UpstreamEvent]: ...
    def authorize(self, worker: str, password: str, now: float) -> list[UpstreamEvent]: ...
    def submit(
        self,
        *,
        worker: str,
        job_id: str,
        extranonce2: str,
        ntime: str,
        nonce: str,
        version_bits: str | None,
        token: Any,
        now: float,
        version: int = 0,
    ) -> list[UpstreamEvent]: ...
    def receive_data(
        self, data: bytes, now: float, wall: float | None = None
    ) -> list[UpstreamEvent]: ...
    def get_timer(self) -> float | None: ...
    def handle_timer(self, now: float) -> list[UpstreamEvent]: ...
    def connection_lost(self, now: float, reason: str) -> list[UpstreamEvent]: ...


@dataclass(slots=True)
class _Request:
    kind: str  # "subscribe", "configure", "authorize", "submit"
    sent_at: float
    deadline: float
    token: Any = None
    worker: str = ""


@dataclass(slots=True)
class _Given:
    token: Any
    given_up_at: float


@dataclass(slots=True)
class _Session:
    extranonce1: bytes | None = None
    extranonce2_size: int = 0
    version_mask: int = 0
    difficulty: float = 1.0  # Stratum's default before any set_difficulty
    subscribed: bool = False
    authorized: bool = False
    ready: bool = False
    # Requests by our id, oldest first.  Two tables, each with one timeout, so
    # the first entry of each holds its earliest deadline (get_timer is O(1)).
    submits: OrderedDict[int, _Request] = field(default_factory=OrderedDict)
    setup: OrderedDict[int, _Request] = field(default_factory=OrderedDict)


class Sv1Upstream:
    """The client side of one aggregated SV1 pool connection."""

    worker_identities = True

    def __init__(
        self,
        *,
        user: str,
        password: str,
        submit_timeout_s: float,
        setup_timeout_s: float = 10.0,
        max_line_bytes: int = 65536,
    ) -> None:
        self.user = user
        self._password = password
        self._timeout = submit_timeout_s
        self._setup_timeout = setup_timeout_s
        self._buffer = LineBuffer(max_line_bytes)
        self._session = _Session()
        self._next_id = 1
        self._given_up: OrderedDict[int, _Given] = OrderedDict()
        self._early_jobs: list[PoolJob] = []  # notified before the setup finished

    # -- state -----------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._session.ready

    @property
    def extranonce2_size(self) -> int:
        return self._session.extranonce2_size

    @property
    def difficulty(self) -> float:
        return self._session.difficulty

    def pending(self) -> int:
        """Submits sent and not yet answered (nor given up)."""
        return len(self._session.submits)

    # -- requests --------------------------------------------------------------------

    def start(self, now: float) -> list[UpstreamEvent]:
        """The TCP connection is up: subscribe, ask for version rolling, authorize."""
        events: list[UpstreamEvent] = []
        self._request("subscribe", "mining.subscribe", [USER_AGENT], now, events)
        self._request(
            "configure",
            "mining.configure",
            [["version-rolling"], {"version-rolling.mask": f"{REQUESTED_MASK:08x}",
                                   "version-rolling.min-bit-count": 2}],
            now,
            events,
        )  # fmt: skip
        self._request(
            "authorize", "mining.authorize", [self.user, self._password], now, events,
            worker=self.user,
        )  # fmt: skip
        return events

    def authorize(self, worker: str, password: str, now: float) -> list[UpstreamEvent]:
        """Authorize a miner's own worker name (identity pass-through)."""
        events: list[UpstreamEvent] = []
        self._request(
            "authorize", "mining.authorize", [worker, password], now, events, worker=worker
        )
        return events

    def submit(
        self,
        *,
        worker: str,
        job_id: str,
        extranonce2: str,
        ntime: str,
        nonce: str,
        version_bits: str | None,
        token: Any,
        now: float,
        version: int = 0,
    ) -> list[UpstreamEvent]:
        """Forward one share; its ``ShareVerdict`` carries ``token``.

        ``version`` (the header's) is for SV2 pools; SV1 sends ``version_bits``.
        """
        params: list[Any] = [worker, job_id, extranonce2, ntime, nonce]
        if version_bits is not None:
            params.append(version_bits)
        events: list[UpstreamEvent] = []
        self._request("submit", "mining.submit", params, now, events, token=token)
        return events

    def _request(
        self,
        kind: str,
        method: str,
        params: list[Any],
        now: float,
        events: list[UpstreamEvent],
        *,
        token: Any = None,
        worker: str = "",
    ) -> None:
        msg_id = self._next_id
        self._next_id += 1
        if kind == "submit":
            table, timeout = self._session.submits, self._timeout
        else:
            table, timeout = self._session.setup, self._setup_timeout
        table[msg_id] = _Request(
            kind=kind, sent_at=now, deadline=now + timeout, token=token, worker=worker
        )
        line = orjson.dumps({"id": msg_id, "method": method, "params": params}) + b"\n"
        events.append(SendToPool(line))

    # -- input -----------------------------------------------------------------------

    def receive_data(
        self, data: bytes, now: float, wall: float | None = None
    ) -> list[UpstreamEvent]:
        """Bytes from the pool.  Raises LineTooLongError (fatal) on an overlong line."""
        events: list[UpstreamEvent] = []
        for line in self._buffer.feed(data):
            try:
                msg = parse_line(line)
            except m.InvalidMessage as exc:
                excerpt = line[:_EXCERPT].decode("utf-8", "replace")
                events.append(PoolNotice(level="warning", text=f"line skipped ({exc}): {excerpt}"))
                continue
            self._on_message(msg, now, events)
        return events

    def get_timer(self) -> float | None:
        firsts = [
            next(iter(table.values())).deadline
            for table in (self._session.submits, self._session.setup)
            if table
        ]
        return min(firsts) if firsts else None

    def handle_timer(self, now: float) -> list[UpstreamEvent]:
        events: list[UpstreamEvent] = []
        submits, setup = self._session.submits, self._session.setup
        while submits:
            msg_id, request = next(iter(submits.items()))
            if request.deadline > now:
                break
            del submits[msg_id]
            self._give_up(msg_id, request, now, events)
        while setup:
            msg_id, request = next(iter(setup.items()))
            if request.deadline > now:
                break
            del setup[msg_id]
            if request.kind == "configure":
                # Some pools ignore methods they do not know: no version rolling then.
                self._maybe_ready(events)
            elif not self._session.ready and (
                request.kind == "subscribe" or request.worker == self.user
            ):
                events.append(UpstreamRefused(reason=f"no answer to {request.kind}"))
            elif request.kind == "authorize":
                events.append(
                    WorkerAuthorized(worker=request.worker, accepted=False, reason="no answer")
                )
        return events

    def connection_lost(self, now: float, reason: str) -> list[UpstreamEvent]:
        """Every submit still owed becomes no_response with ``reason``."""
        events: list[UpstreamEvent] = [
            ShareVerdict(
                token=request.token,
                status="no_response",
                reason=reason,
                submitted_at=request.sent_at,
                resolved_at=now,
            )
            for request in self._session.submits.values()
        ]
        self._session.submits.clear()
        self._session.setup.clear()
        return events

    # -- messages --------------------------------------------------------------------

    def _on_message(self, msg: m.Message, now: float, events: list[UpstreamEvent]) -> None:
        session = self._session
        if isinstance(msg, m.Response):
            self._on_response(msg, now, events)
        elif isinstance(msg, m.SetDifficulty):
            if msg.difficulty > 0:
                session.difficulty = msg.difficulty
                events.append(PoolDifficulty(difficulty=msg.difficulty))
        elif isinstance(msg, m.Notify):
            job = PoolJob(notify=msg, difficulty=session.difficulty)
            if session.ready:
                events.append(job)
            else:
                # Pools send work right after the subscribe answer, before the
                # authorization is through: kept, and handed on once ready.
                if msg.clean_jobs:
                    self._early_jobs.clear()
                self._early_jobs.append(job)
        elif isinstance(msg, m.SetExtranonce):
            self._on_set_extranonce(msg, events)
        elif isinstance(msg, m.SetVersionMask):
            session.version_mask = msg.mask
        elif isinstance(msg, m.ClientReconnect):
            events.append(PoolReconnect(host=msg.host, port=msg.port, wait_s=msg.wait_s))
        elif isinstance(msg, m.ShowMessage):
            events.append(PoolNotice(level="info", text=f"pool message: {msg.text[:200]}"))
        elif isinstance(msg, m.Ping):
            events.append(
                SendToPool(orjson.dumps({"id": msg.id, "result": "pong", "error": None}) + b"\n")
            )
        elif isinstance(msg, m.GetVersion):
            answer = {"id": msg.id, "result": USER_AGENT, "error": None}
            events.append(SendToPool(orjson.dumps(answer) + b"\n"))
        else:
            events.append(
                PoolNotice(level="warning", text=f"unexpected from the pool: {msg!r}"[:200])
            )

    def _on_response(self, msg: m.Response, now: float, events: list[UpstreamEvent]) -> None:
        msg_id = msg.id if type(msg.id) is int else -1
        request = self._session.submits.pop(msg_id, None) or self._session.setup.pop(msg_id, None)
        if request is None:
            given = self._given_up.pop(msg_id, None)
            if given is not None:
                accepted, reason = verdict(msg.result, msg.error, msg.reject_reason)
                events.append(
                    LateVerdict(
                        token=given.token,
                        accepted=accepted,
                        reason=reason,
                        late_s=now - given.given_up_at,
                    )
                )
            else:
                events.append(PoolNotice(level="warning", text=f"answer to unknown id {msg.id!r}"))
            return
        if request.kind == "submit":
            accepted, reason = verdict(msg.result, msg.error, msg.reject_reason)
            events.append(
                ShareVerdict(
                    token=request.token,
                    status="accepted" if accepted else "rejected",
                    reason=reason,
                    submitted_at=request.sent_at,
                    resolved_at=now,
                )
            )
        elif request.kind == "subscribe":
            self._on_subscribed(msg, events)
        elif request.kind == "configure":
            result = msg.result if isinstance(msg.result, dict) else {}
            if result.get("version-rolling") is True:
                mask = maybe_mask(result.get("version-rolling.mask"))
                self._session.version_mask = mask if mask is not None else 0
            self._maybe_ready(events)  # an error answer just means no version rolling
        elif request.kind == "authorize":
            accepted, reason = verdict(msg.result, msg.error)
            if request.worker == self.user and not self._session.authorized:
                if not accepted:
                    events.append(UpstreamRefused(reason=f"pool user refused: {reason}"))
                    return
                self._session.authorized = True
                self._maybe_ready(events)
            else:
                events.append(
                    WorkerAuthorized(worker=request.worker, accepted=accepted, reason=reason)
                )

    def _on_subscribed(self, msg: m.Response, events: list[UpstreamEvent]) -> None:
        result = msg.result
        try:
            if msg.error or type(result) is not list or len(result) < 3:
                raise ValueError(f"unexpected answer {str(result)[:80]}")
            extranonce1 = bytes.fromhex(result[1])
            size = result[2]
            if type(size) is not int or not 0 <= size <= 32:
                raise ValueError(f"extranonce2_size {size!r}")
        except (ValueError, TypeError) as exc:
            events.append(UpstreamRefused(reason=f"subscribe failed: {exc}"))
            return
        session = self._session
        session.extranonce1, session.extranonce2_size = extranonce1, size
        session.subscribed = True
        self._maybe_ready(events)

    def _maybe_ready(self, events: list[UpstreamEvent]) -> None:
        session = self._session
        if session.ready or not (session.subscribed and session.authorized):
            return
        if any(r.kind == "configure" for r in session.setup.values()):
            return  # the version mask decides what miners are granted: wait for it
        session.ready = True
        assert session.extranonce1 is not None
        events.append(
            UpstreamReady(
                extranonce1=session.extranonce1,
                extranonce2_size=session.extranonce2_size,
                version_mask=session.version_mask,
            )
        )
        events.extend(self._early_jobs)
        self._early_jobs.clear()

    def _on_set_extranonce(self, msg: m.SetExtranonce, events: list[UpstreamEvent]) -> None:
        try:
            extranonce1 = bytes.fromhex(msg.extranonce1)
        except ValueError:
            events.append(PoolNotice(level="warning", text="set_extranonce with a bad extranonce1"))
            return
        session = self._session
        session.extranonce1 = extranonce1
        if msg.extranonce2_size is not None:
            session.extranonce2_size = msg.extranonce2_size
        events.append(
            ExtranonceChanged(extranonce1=extranonce1, extranonce2_size=session.extranonce2_size)
        )

    def _give_up(
        self, msg_id: int, request: _Request, now: float, events: list[UpstreamEvent]
    ) -> None:
        events.append(
            ShareVerdict(
                token=request.token,
                status="no_response",
                reason=f"no answer from the pool within {self._timeout:g} s",
                submitted_at=request.sent_at,
                resolved_at=now,
            )
        )
        self._given_up[msg_id] = _Given(token=request.token, given_up_at=now)
        while len(self._given_up) > _LATE_KEEP:
            self._given_up.popitem(last=False)
