"""Passthrough observer of one miner↔pool Stratum V1 connection pair (sans-I/O).

The session forwards every byte first, then hands the same bytes to
``Sv1Tracker``; the tracker never produces bytes.  It follows the connection
state (extranonce, difficulty, version mask, jobs), rebuilds every submitted
share and pairs it with the pool's verdict, yielding one ``ShareResolved`` per
submit, whatever happens to it.

Rules (each is a decision the records depend on):

* **Pool difficulty of a share.**  Slush's Stratum documentation says of
  ``mining.set_difficulty``: "The miner should begin enforcing the new
  difficulty on the next job received", and ckpool judges a share by the
  difficulty in force when its job was generated.  So each job captures the
  difficulty (and the extranonce1) at notify time; a share's pool_difficulty is
  its job's, or the difficulty in force now when the job is unknown.  Before
  any ``set_difficulty`` the difficulty is 1, Stratum's default.
* **Version rolling (BIP310).**  The mask is the last one the pool sent, in
  the ``mining.configure`` result or a ``mining.set_version_mask`` ("valid
  immediately", BIP310), applied at submit time.  Header version =
  (job & ~mask) | (bits & mask).  With no mask negotiated the mask is 0: BIP310
  forbids bits outside the mask, so a 6th param then changes nothing; it is
  still stored as ``version_bits``.
* **Jobs and answers.**  Bounded job table, clean_jobs drops nothing, unknown
  job → row with share_hash '' (see ``state``); per-id FIFO of every miner
  request, bounded by time and count, unanswered submit → no_response (see
  ``outstanding``).  ESP-Miner's ``{"method": "pong"}`` answers a ping in
  request form and is not tracked: the pool never answers it.

The contract every protocol core follows: bytes and time in (``miner_data``,
``pool_data``), events out, and ``get_timer()`` / ``handle_timer(now)`` for
deadlines, which the shell arms as a timer.  ``now`` is the monotonic clock
(deadlines, round trips); rows are stamped with the wall clock passed as
``wall``, so a clock step moves no deadline.

Framing failures (a line over ``max_line_bytes``) raise a fatal
``RemoteProtocolError``; events of the lines before it are kept and returned
by the next call (normally ``connection_lost``).  A bad line is a
``LineSkipped`` event and never stops the stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orjson import JSONDecodeError
from orjson import loads as _loads

from stratum_proxy.store.record import (
    STATUS_ACCEPTED,
    STATUS_NO_RESPONSE,
    STATUS_REJECTED,
    ShareRecord,
)
from stratum_proxy.sv1 import events as ev
from stratum_proxy.sv1 import messages as m
from stratum_proxy.sv1.codec import LineBuffer, LineTooLongError
from stratum_proxy.sv1.events import (
    Event,
    LineSkipped,
    ShareResolved,
    Side,
    WorkerAuthorized,
)
from stratum_proxy.sv1.outstanding import (
    DEFAULT_MAX_OUTSTANDING,
    GivenUp,
    OutstandingRequests,
    PendingRequest,
)
from stratum_proxy.sv1.params import maybe_mask
from stratum_proxy.sv1.parser import parse_object
from stratum_proxy.sv1.records import (
    FORWARDED_AT,
    HASH_AT,
    IS_BLOCK_AT,
    ShareContext,
    ShareDraft,
    draft_share_row,
    finish_row,
    salvage_submit,
    share_record,
)
from stratum_proxy.sv1.state import ConnectionState
from stratum_proxy.sv1.verdict import verdict

_Handler = Callable[[Any, float, list[Event]], None]
_FastPath = Callable[[dict[str, Any], float, list[Event]], bool]
_SideParts = tuple[Side, LineBuffer, _FastPath, str]
_new_event = tuple.__new__  # ShareResolved(record) without its Python-level __new__
_EXCERPT_BYTES = 80
# JSON-RPC ids the fast paths take as they are (bool is excluded: type(True) is bool).
_FAST_IDS = (int, str)
# Answers that change the connection state (see ConnectionState.apply_result).
_STATE_RESULTS = frozenset(("mining.subscribe", "mining.configure"))
_STAT_KEYS = (
    "lines_from_miner", "lines_from_pool", "skipped_from_miner", "skipped_from_pool",
    "submits", "accepted", "rejected", "no_response", "blocks", "uncomputable_shares",
    "unknown_job_shares", "jobs", "unmatched_responses", "unanswered_requests",
    "evicted_requests", "unknown_methods", "unexpected_messages", "framing_errors",
    "late_answers",
)  # fmt: skip


class Sv1Tracker:
    """One per miner↔pool connection pair; feed it both directions."""

    def __init__(
        self,
        *,
        context: ShareContext,
        max_line_bytes: int = 65536,
        submit_timeout_s: float = 30.0,
        max_jobs: int = 64,
        max_outstanding: int = DEFAULT_MAX_OUTSTANDING,
    ) -> None:
        if submit_timeout_s <= 0:
            raise ValueError(f"submit_timeout_s must be positive, got {submit_timeout_s}")
        self._context = context
        self._upstream = context.upstream
        self._timeout = submit_timeout_s
        self._miner_buffer = LineBuffer(max_line_bytes)
        self._pool_buffer = LineBuffer(max_line_bytes)
        self._outstanding = OutstandingRequests(max_outstanding)
        self._state = ConnectionState(max_jobs)
        self._stats = dict.fromkeys(_STAT_KEYS, 0)
        self._stashed: list[Event] = []
        self._unsent: str | None = None  # set by stop_forwarding
        self._wall = 0.0  # wall time of the bytes being read: their rows' ts
        # Per direction: name, line buffer, fast path, line counter (bound once).
        self._miner_side: _SideParts = (
            "miner",
            self._miner_buffer,
            self._fast_submit,
            "lines_from_miner",
        )
        self._pool_side: _SideParts = (
            "pool",
            self._pool_buffer,
            self._fast_response,
            "lines_from_pool",
        )
        self._miner_handlers: dict[type, _Handler] = {
            m.Submit: self._on_submit,
            m.UnknownMethod: self._on_miner_unknown,
            m.Response: self._ignore,  # the miner answering client.get_version
            m.ExtranonceSubscribe: self._on_request,
        }
        for request in (m.Subscribe, m.Authorize, m.Configure, m.SuggestDifficulty):
            self._miner_handlers[request] = self._on_request
        self._pool_handlers: dict[type, _Handler] = {
            m.Response: self._on_response,
            m.Ping: self._ignore,
            m.GetVersion: self._ignore,
            m.UnknownMethod: self._on_pool_unknown,
        }
        for notification in ConnectionState.NOTIFICATIONS:
            self._pool_handlers[notification] = self._on_pool_notification

    # -- public API ----------------------------------------------------------------

    def miner_data(self, data: bytes, now: float, wall: float | None = None) -> list[Event]:
        """Bytes the miner sent (already forwarded to the pool).

        ``now`` is the monotonic clock (deadlines, round trips); ``wall`` the
        wall clock that stamps the rows of these bytes' submits (None: ``now``).
        """
        self._wall = now if wall is None else wall
        return self._feed(self._miner_side, data, now)

    def pool_data(self, data: bytes, now: float, wall: float | None = None) -> list[Event]:
        """Bytes the pool sent (already forwarded to the miner); clocks as ``miner_data``."""
        self._wall = now if wall is None else wall
        return self._feed(self._pool_side, data, now)

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must next be called (oldest request's deadline)."""
        return self._outstanding.next_deadline()

    def handle_timer(self, now: float) -> list[Event]:
        """Requests past their deadline: unanswered submits become no_response."""
        events = self._take_stashed()
        reason = f"no answer from the pool within {self._timeout:g} s"
        for entry in self._outstanding.pop_expired(now):
            self._give_up(entry, reason, events)
        return events

    def connection_lost(
        self, now: float, reason: str = "connection closed before the pool answered"
    ) -> list[Event]:
        """Either side closed (or the proxy stops): every outstanding submit becomes
        no_response with ``reason``."""
        events = self._take_stashed()
        for entry in self._outstanding.pop_all():
            self._give_up(entry, reason, events)
        return events

    def outstanding(self) -> int:
        """Requests the miner sent that wait for the pool's answer (given-up ones aside)."""
        return len(self._outstanding)

    def stop_forwarding(self, reason: str) -> None:
        """From now on the shell does not forward what the miner sends: each submit
        becomes a no_response row with ``reason`` as soon as it is read.  What the
        pool still owes stays owed (its answers may still come)."""
        self._unsent = reason

    def set_upstream(self, name: str) -> None:
        """The session now talks to another pool; later shares carry its name."""
        self._upstream = name

    def statistics(self) -> dict[str, int]:
        """Counters since the connection opened."""
        stats = dict(self._stats)
        stats["outstanding_requests"] = len(self._outstanding)
        stats["jobs_known"] = len(self._state.jobs)
        return stats

    # -- line loop -----------------------------------------------------------------

    def _take_stashed(self) -> list[Event]:
        events, self._stashed = self._stashed, []
        return events

    def _feed(self, side: _SideParts, data: bytes, now: float) -> list[Event]:
        name, buffer, fast, counter = side
        events = self._take_stashed()
        framing_error = None
        try:
            lines = buffer.feed(data)
        except LineTooLongError as exc:
            # The lines before the overlong one were forwarded: analyse them, and
            # keep their events for the next call (normally connection_lost).
            self._stats["framing_errors"] += 1
            framing_error, lines = exc, exc.lines_before
        if lines:
            self._stats[counter] += len(lines)
            for line in lines:
                try:
                    obj = _loads(line)
                except JSONDecodeError as json_exc:
                    self._skip(
                        name, repr(line[:_EXCERPT_BYTES]), f"invalid JSON: {json_exc}", events
                    )
                    continue
                # Submits and their answers are nearly all the traffic: well-formed ones
                # skip the message objects; anything unusual takes the general path.
                if not (type(obj) is dict and fast(obj, now, events)):
                    self._general_line(name, line, obj, now, events)
        if framing_error is not None:
            self._stashed = events
            raise framing_error
        return events

    def _general_line(
        self, side: Side, line: bytes, obj: Any, now: float, events: list[Event]
    ) -> None:
        """Any line the fast paths declined: validated into a message object."""
        try:
            msg = parse_object(obj)
        except m.InvalidMessage as exc:
            self._skip(side, repr(line[:_EXCERPT_BYTES]), str(exc), events)
            if side == "miner":
                self._track_invalid(exc, now, events)
            return
        handlers = self._miner_handlers if side == "miner" else self._pool_handlers
        handler = handlers.get(type(msg))
        if handler is None:
            self._stats["unexpected_messages"] += 1  # e.g. a notify sent by a miner
        else:
            handler(msg, now, events)

    def _skip(self, side: Side, excerpt: str, reason: str, events: list[Event]) -> None:
        self._stats["skipped_from_" + side] += 1
        events.append(LineSkipped(side=side, reason=reason, excerpt=excerpt))

    # -- miner → pool ----------------------------------------------------------------

    def _evicted(self, entry: PendingRequest, events: list[Event]) -> None:
        self._stats["evicted_requests"] += 1
        self._give_up(entry, "evicted: too many requests without an answer", events)
        events.append(ev.RequestsEvicted(method=entry.method, outstanding=len(self._outstanding)))

    def _track_request(
        self,
        key: m.RpcId,
        method: str,
        now: float,
        events: list[Event],
        *,
        worker: str = "",
        requested_mask: int | None = None,
    ) -> None:
        evicted = self._outstanding.add(
            key, method, now, now + self._timeout, None, worker, requested_mask
        )
        if evicted is not None:
            self._evicted(evicted, events)

    def _on_request(self, msg: Any, now: float, events: list[Event]) -> None:
        if type(msg) is m.Authorize:  # the worker is reported with the pool's answer
            self._track_request(msg.id, msg.method, now, events, worker=msg.worker)
        elif type(msg) is m.Configure:
            mask = maybe_mask(msg.parameters.get("version-rolling.mask"))
            self._track_request(msg.id, msg.method, now, events, requested_mask=mask)
        else:
            self._track_request(msg.id, msg.method, now, events)

    def _on_submit(self, msg: m.Submit, now: float, events: list[Event]) -> None:
        state = self._state
        job = state.jobs.get(msg.job_id)
        draft = share_record(
            msg,
            job,
            context=self._context,
            upstream=self._upstream,
            mask=state.mask,
            difficulty_now=state.difficulty,
            now=self._wall,
        )
        self._track_share(msg.id, job, draft, now, events)

    def _fast_submit(self, obj: dict[str, Any], now: float, events: list[Event]) -> bool:
        """A well-formed mining.submit straight from its JSON; False: use the general path."""
        if obj.get("method") != "mining.submit":
            return False
        p = obj.get("params")
        msg_id = obj.get("id")
        if type(p) is not list or len(p) < 5:
            return False
        if msg_id is not None and type(msg_id) not in _FAST_IDS:
            return False
        worker, job_id, extranonce2, ntime, nonce = p[0], p[1], p[2], p[3], p[4]
        bits = p[5] if len(p) > 5 else None
        if not (
            type(worker) is str
            and type(job_id) is str
            and type(extranonce2) is str
            and type(ntime) is str
            and type(nonce) is str
            and (bits is None or type(bits) is str)
        ):
            return False
        state = self._state
        job = state.jobs.get(job_id)
        draft = draft_share_row(
            worker, job_id, extranonce2, ntime, nonce, bits, job,
            self._context, self._upstream, state.mask, state.difficulty, self._wall,
        )  # fmt: skip
        self._track_share(msg_id, job, draft, now, events)
        return True

    def _track_share(
        self, key: m.RpcId, job: Any, draft: ShareDraft, now: float, events: list[Event]
    ) -> None:
        stats = self._stats
        stats["submits"] += 1
        if job is None:
            stats["unknown_job_shares"] += 1
        if not draft[HASH_AT]:
            stats["uncomputable_shares"] += 1
        if self._unsent is not None:  # the shell no longer forwards: a row, not a wait
            stats["no_response"] += 1
            draft[FORWARDED_AT] = False
            events.append(ShareResolved(finish_row(draft, STATUS_NO_RESPONSE, self._unsent, 0.0)))
            return
        evicted = self._outstanding.add(key, "mining.submit", now, now + self._timeout, draft)
        if evicted is not None:
            self._evicted(evicted, events)

    def _track_invalid(self, exc: m.InvalidMessage, now: float, events: list[Event]) -> None:
        # The pool still answers a request we could not validate: track it so
        # the per-id FIFO stays aligned, and keep a malformed submit as a row.
        if exc.method is None:
            return
        if exc.method == "mining.submit":
            self._on_submit(salvage_submit(exc.msg_id, exc.params), now, events)
        else:
            self._track_request(exc.msg_id, exc.method, now, events)

    def _on_miner_unknown(self, msg: m.UnknownMethod, now: float, events: list[Event]) -> None:
        self._stats["unknown_methods"] += 1
        if msg.method != "pong":
            self._on_request(msg, now, events)

    # -- pool → miner ----------------------------------------------------------------

    def _fast_response(self, obj: dict[str, Any], now: float, events: list[Event]) -> bool:
        """A pool answer straight from its JSON; False: use the general path."""
        if obj.get("method") is not None or ("result" not in obj and "error" not in obj):
            return False
        msg_id = obj.get("id")
        reason = obj.get("reject-reason")
        if (msg_id is not None and type(msg_id) not in _FAST_IDS) or (
            reason is not None and type(reason) is not str
        ):
            return False
        self._answer(msg_id, obj.get("result"), obj.get("error"), reason, now, events)
        return True

    def _on_response(self, msg: m.Response, now: float, events: list[Event]) -> None:
        self._answer(msg.id, msg.result, msg.error, msg.reject_reason, now, events)

    def _answer(
        self,
        key: m.RpcId,
        result: Any,
        error: Any,
        reject_reason: str | None,
        now: float,
        events: list[Event],
    ) -> None:
        entry = self._outstanding.pop_answered(key)
        if entry is None:
            self._stats["unmatched_responses"] += 1
            events.append(ev.UnmatchedAnswer(id=repr(key)))
        elif isinstance(entry, GivenUp):
            self._late_answer(entry, result, error, reject_reason, now, events)
        elif entry.draft is None:
            self._answer_request(entry, result, error, reject_reason, events)
        elif result is True and not error and not reject_reason:
            # A plainly accepted share (nearly every answer): verdict() would say the same.
            self._resolve_share(entry, True, "", now, events)
        else:
            accepted, why = verdict(result, error, reject_reason)
            self._resolve_share(entry, accepted, why, now, events)

    def _late_answer(
        self,
        ghost: GivenUp,
        result: Any,
        error: Any,
        reject_reason: str | None,
        now: float,
        events: list[Event],
    ) -> None:
        """The answer to a submit already recorded no_response: counted, reported, kept apart."""
        self._stats["late_answers"] += 1
        draft = ghost.request.draft
        assert draft is not None  # only submits are kept once given up
        share = ShareRecord._make(draft)
        accepted, why = verdict(result, error, reject_reason)
        events.append(
            ev.LateAnswer(
                worker=share.worker,
                job_id=share.job_id,
                nonce=share.nonce,
                accepted=accepted,
                reason=why,
                late_ms=max(0.0, (now - ghost.given_up_at) * 1000.0),
                is_block=share.is_block,
            )
        )

    def _answer_request(
        self,
        entry: PendingRequest,
        result: Any,
        error: Any,
        reject_reason: str | None,
        events: list[Event],
    ) -> None:
        """The pool answered a request other than a submit."""
        if entry.method == "mining.authorize":
            accepted, reason = verdict(result, error, reject_reason)
            events.append(WorkerAuthorized(worker=entry.worker, accepted=accepted, reason=reason))
        elif not error and entry.method in _STATE_RESULTS:
            try:
                event = self._state.apply_result(entry.method, result, entry.requested_mask)
            except m.InvalidMessage as exc:
                self._skip("pool", repr(result)[:_EXCERPT_BYTES], str(exc), events)
                return
            if event is not None:
                events.append(event)

    def _resolve_share(
        self, entry: PendingRequest, accepted: bool, reason: str, now: float, events: list[Event]
    ) -> None:
        draft = entry.draft
        assert draft is not None
        ms = (now - entry.sent_at) * 1000.0
        record = finish_row(
            draft, STATUS_ACCEPTED if accepted else STATUS_REJECTED, reason, ms if ms > 0.0 else 0.0
        )
        stats = self._stats
        if accepted:
            stats["accepted"] += 1
        else:
            stats["rejected"] += 1
        if draft[IS_BLOCK_AT]:
            stats["blocks"] += 1
        events.append(_new_event(ShareResolved, (record,)))

    def _give_up(self, entry: PendingRequest, reason: str, events: list[Event]) -> None:
        draft = entry.draft
        if draft is None:
            self._stats["unanswered_requests"] += 1
            return
        record = finish_row(draft, STATUS_NO_RESPONSE, reason, 0.0)
        self._stats["no_response"] += 1
        if record.is_block:
            self._stats["blocks"] += 1
        events.append(ShareResolved(record))

    def _on_pool_notification(self, msg: Any, now: float, events: list[Event]) -> None:
        event = self._state.apply(msg)
        if event is not None:
            events.append(event)
        if type(msg) is m.Notify:
            self._stats["jobs"] += 1

    def _on_pool_unknown(self, msg: m.UnknownMethod, now: float, events: list[Event]) -> None:
        self._stats["unknown_methods"] += 1

    def _ignore(self, msg: Any, now: float, events: list[Event]) -> None:
        pass  # nothing to learn from it
