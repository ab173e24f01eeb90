"""Miner requests waiting for the pool's answer, matched the way pools answer.

Stratum V1 ids are not unique: cpuminer sends every submit with id 4 (see
tests/data/captures/*/stratum_transcript.log), bmminer uses string ids.  A pool
answers requests in the order it read them, so a response with id X belongs
to the *oldest* outstanding request with id X: one FIFO per id.  Ids compare
as JSON values (4 and "4" differ; 4 and 4.0 are the same number).

Every request is kept, not just submits, because an unanswered subscribe with
id 4 would otherwise steal the answer of a later submit with id 4.  The table
is bounded twice: by time (each entry has a deadline) and by count (the
oldest is evicted), so a miner that floods requests the pool never answers
cannot grow memory.

A submit given up on (timed out or evicted) still has its place in the pool's
queue: the pool answers it later, before the submits sent after it.  So it
stays in its id's FIFO as a ``GivenUp`` entry, and the answer that comes for
it is a late answer, never the answer of the next share with that id (which
is what shifted every later verdict by one on a pool that fell behind).
Given-up submits form a prefix of their id's FIFO (they arrived before every
request of that id still waiting), are bounded in number (``ghost_limit``,
oldest forgotten first) and forgotten ``ghost_ttl_s`` after they were given
up: a pool that never answers a submit at all would otherwise hold the
pairing one answer behind for good.  Other requests are not kept once given
up: pools do leave some unanswered (``mining.multi_version``,
``mining.extranonce.subscribe``), and they must not swallow a later answer.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import NamedTuple

from stratum_proxy.sv1.messages import RpcId
from stratum_proxy.sv1.records import ShareDraft

# Far above any honest miner: a farm ASIC submits a few shares per second and
# a pool answers within a second.  The relay stops reading a miner with 512
# submits unanswered (backpressure, see proxy/passthrough.py), but what one
# read already brought in (up to 256 KiB, some 2,500 submit lines) was
# forwarded and must be tracked: 4096 leaves room for that, so a flood is
# slowed, not evicted.
DEFAULT_MAX_OUTSTANDING = 4096
# A pool that answers a submit later than this after we gave up has dropped it.
DEFAULT_GHOST_TTL_S = 300.0


class PendingRequest(NamedTuple):
    """One request the miner sent and the pool has not answered yet.

    A tuple: one is made per share, and a tuple costs a third of a slotted
    object's ``__init__``.  ``seq`` orders requests by arrival (given by
    ``OutstandingRequests.add``).
    """

    seq: int
    key: RpcId
    method: str
    sent_at: float
    deadline: float
    draft: ShareDraft | None = None  # the share row being built (submits only)
    worker: str = ""  # mining.authorize: the worker being authorized
    requested_mask: int | None = None  # mining.configure: the miner's mask


class GivenUp(NamedTuple):
    """A submit recorded as no_response whose answer the pool still owes."""

    seq: int
    key: RpcId
    sent_at: float
    given_up_at: float
    request: PendingRequest


_new_entry = tuple.__new__
# Shared and never written to: the tables of a connection with nothing given up.
_NO_GHOSTS: dict[RpcId, deque[GivenUp]] = {}
_NO_GHOST_ORDER: OrderedDict[int, GivenUp] = OrderedDict()


class OutstandingRequests:
    """Per-id FIFOs plus one arrival-ordered index for expiry and eviction.

    An id with one request waiting (nearly always) maps to the entry itself;
    a deque is made only when a miner reuses an id before it was answered.
    """

    __slots__ = (
        "_by_id",
        "_ghost_limit",
        "_ghost_order",
        "_ghost_ttl_s",
        "_ghosts",
        "_limit",
        "_next_seq",
        "_order",
        "forgotten",
    )

    def __init__(
        self,
        limit: int = DEFAULT_MAX_OUTSTANDING,
        *,
        ghost_ttl_s: float = DEFAULT_GHOST_TTL_S,
        ghost_limit: int | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError(f"the outstanding-request limit must be positive, got {limit}")
        self._limit = limit
        self._by_id: dict[RpcId, PendingRequest | deque[PendingRequest]] = {}
        self._order: OrderedDict[int, PendingRequest] = OrderedDict()
        self._next_seq = 0
        # Given-up submits still owed an answer: per id (oldest first) and by seq.
        # Made on the first give-up: most connections never have one, and
        # thousands of idle connections should not pay for two empty tables.
        self._ghosts: dict[RpcId, deque[GivenUp]] = _NO_GHOSTS
        self._ghost_order: OrderedDict[int, GivenUp] = _NO_GHOST_ORDER
        self._ghost_ttl_s = ghost_ttl_s
        self._ghost_limit = 4 * limit if ghost_limit is None else ghost_limit
        self.forgotten = 0  # given-up submits whose answer never came (pairing may slip)

    def __len__(self) -> int:
        return len(self._order)

    def add(
        self,
        key: RpcId,
        method: str,
        sent_at: float,
        deadline: float,
        draft: ShareDraft | None = None,
        worker: str = "",
        requested_mask: int | None = None,
    ) -> PendingRequest | None:
        """Track a request; return the oldest entry if it had to be evicted."""
        seq = self._next_seq
        self._next_seq = seq + 1
        entry = _new_entry(
            PendingRequest, (seq, key, method, sent_at, deadline, draft, worker, requested_mask)
        )
        by_id = self._by_id
        waiting = by_id.get(key)
        if waiting is None:
            by_id[key] = entry
        elif isinstance(waiting, deque):
            waiting.append(entry)
        else:
            by_id[key] = deque((waiting, entry))
        order = self._order
        order[seq] = entry
        if len(order) > self._limit:
            return self._give_up_oldest(sent_at)
        return None

    def pop_answered(self, key: RpcId) -> PendingRequest | GivenUp | None:
        """The oldest request with this id still owed an answer, removed; None if none.

        A ``GivenUp`` means the answer is late: its share was already recorded.
        """
        if self._ghosts:  # rare: only after a submit was given up
            owed = self._ghosts.get(key)
            if owed:
                ghost = owed.popleft()
                if not owed:
                    del self._ghosts[key]
                del self._ghost_order[ghost.seq]
                return ghost
        by_id = self._by_id
        waiting = by_id.get(key)
        if waiting is None:
            return None
        if isinstance(waiting, deque):
            entry = waiting.popleft()
            if not waiting:
                del by_id[key]
        else:
            entry = waiting
            del by_id[key]
        del self._order[entry.seq]
        return entry

    def next_deadline(self) -> float | None:
        """Deadline of the oldest entry.

        Entries share one timeout, so arrival order is deadline order (up to a
        wall clock stepping back, which only delays expiry a little).
        """
        if not self._order:
            return None
        return next(iter(self._order.values())).deadline

    def pop_expired(self, now: float) -> list[PendingRequest]:
        """Every entry whose deadline has passed, oldest first."""
        expired: list[PendingRequest] = []
        while self._order and next(iter(self._order.values())).deadline <= now:
            expired.append(self._give_up_oldest(now))
        if self._ghost_order:
            self._forget_ghosts(now)
        return expired

    def pop_all(self) -> list[PendingRequest]:
        """Everything, oldest first (the connection is gone)."""
        entries = list(self._order.values())
        self._order.clear()
        self._by_id.clear()
        self._ghosts, self._ghost_order = _NO_GHOSTS, _NO_GHOST_ORDER
        return entries

    def owed(self) -> int:
        """Given-up submits whose late answer is still expected."""
        return len(self._ghost_order)

    def _give_up_oldest(self, now: float) -> PendingRequest:
        entry = self._pop_oldest()
        if entry.method == "mining.submit":
            if self._ghost_order is _NO_GHOST_ORDER:
                self._ghosts, self._ghost_order = {}, OrderedDict()
            ghost = GivenUp(entry.seq, entry.key, entry.sent_at, now, entry)
            owed = self._ghosts.get(entry.key)
            if owed is None:
                self._ghosts[entry.key] = deque((ghost,))
            else:
                owed.append(ghost)  # newer than every given-up one before it
            self._ghost_order[entry.seq] = ghost
            if len(self._ghost_order) > self._ghost_limit:
                self._forget_ghosts(now)
        return entry

    def _forget_ghosts(self, now: float) -> None:
        """Drop given-up submits past their time, or the oldest past the count limit."""
        order = self._ghost_order
        while order:
            ghost = next(iter(order.values()))
            if len(order) <= self._ghost_limit and ghost.given_up_at + self._ghost_ttl_s > now:
                return
            order.popitem(last=False)
            # The oldest given-up submit overall is the oldest of its own id.
            owed = self._ghosts[ghost.key]
            owed.popleft()
            if not owed:
                del self._ghosts[ghost.key]
            self.forgotten += 1

    def _pop_oldest(self) -> PendingRequest:
        _, entry = self._order.popitem(last=False)
        # The globally oldest entry is also the oldest of its own id.
        waiting = self._by_id[entry.key]
        if isinstance(waiting, deque):
            waiting.popleft()
            if not waiting:
                del self._by_id[entry.key]
        else:
            del self._by_id[entry.key]
        return entry
