"""The pool side of one SV1 miner connection, where the proxy is the miner's pool. Sans-I/O.

Used by translate mode (jobs from an SV2 pool) and aggregate mode (jobs from
shared SV1 pool connections): the proxy answers subscribe, configure and
authorize itself and sends set_difficulty / notify.  Only submits go
further: they surface as events and are answered later with the pool's real
verdict, or the proxy's own (``answer_submit``).

A subscribe that arrives before the upstream channel is open is held and
answered by ``assign`` (miners wait for that answer before anything else).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from stratum_proxy.sv1 import messages as m
from stratum_proxy.sv1.codec import LineBuffer
from stratum_proxy.sv1.codes import OTHER as SV1_OTHER
from stratum_proxy.sv1.params import maybe_mask
from stratum_proxy.sv1.parser import parse_line
from stratum_proxy.sv1.records import salvage_submit

# Subscription ids in the subscribe answer; miners only echo them back.
_SUBSCRIPTION_ID = "7374726174756d2d70726f7879"  # "stratum-proxy" in hex


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitReceived:
    submit: m.Submit


@dataclass(frozen=True, slots=True, kw_only=True)
class MalformedSubmit:
    """A mining.submit whose params were wrong; ``submit`` holds them as text."""

    submit: m.Submit
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MinerAuthorized:
    worker: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MinerSubscribed:
    """The subscribe answer went out: the miner now wants a difficulty and a job."""

    extranonce1: bytes
    extranonce2_size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SuggestedDifficulty:
    """``mining.suggest_difficulty``: honoured where the proxy sets the difficulty itself."""

    difficulty: float


@dataclass(frozen=True, slots=True, kw_only=True)
class LineIgnored:
    reason: str
    excerpt: str


DownstreamEvent = (
    SubmitReceived
    | MalformedSubmit
    | MinerAuthorized
    | MinerSubscribed
    | SuggestedDifficulty
    | LineIgnored
)


class Sv1Downstream:
    """Feed miner bytes with ``receive_data``; send ``data_to_send()`` to the miner."""

    protocol = "sv1"  # the rows' protocol column
    difficulty_at_once = False  # suggest_difficulty: from the next job (aggregate core)
    channel_id = None  # no channels in SV1: the rows' channel_id is the connection's id

    def __init__(self, *, max_line_bytes: int, version_mask: int) -> None:
        self._lines = LineBuffer(max_line_bytes)
        self._offer_mask = version_mask
        self._out = bytearray()
        self._held_subscribes: list[m.RpcId] = []
        self.extranonce1: bytes | None = None
        self.extranonce2_size = 0
        self.version_mask = 0  # 0 until mining.configure granted rolling
        self.subscribed = False
        self.extranonce_subscribed = False
        self.workers: list[str] = []

    # --- output -----------------------------------------------------------------

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def _send(self, message: dict[str, Any]) -> None:
        self._out += orjson.dumps(message) + b"\n"

    def _reply(self, msg_id: m.RpcId, result: Any) -> None:
        self._send({"id": msg_id, "result": result, "error": None})

    def answer_submit(self, msg_id: m.RpcId, code: int | None, message: str = "") -> None:
        """``code`` None: accepted (result true); else error [code, message, null]."""
        if code is None:
            self._reply(msg_id, True)
        else:
            self._send({"id": msg_id, "result": None, "error": [code, message, None]})

    def send_difficulty(self, difficulty: float) -> None:
        self._send({"id": None, "method": "mining.set_difficulty", "params": [difficulty]})

    def send_notify(self, params: list[Any]) -> None:
        self._send({"id": None, "method": "mining.notify", "params": params})

    def send_set_extranonce(self, extranonce1: bytes, extranonce2_size: int) -> None:
        self.extranonce1, self.extranonce2_size = extranonce1, extranonce2_size
        params = [extranonce1.hex(), extranonce2_size]
        self._send({"id": None, "method": "mining.set_extranonce", "params": params})

    def send_version_mask(self, mask: int) -> None:
        """BIP310 ``mining.set_version_mask``: the bits the miner may roll from now on."""
        self.version_mask = mask
        self._send({"id": None, "method": "mining.set_version_mask", "params": [f"{mask:08x}"]})

    def send_reconnect(self) -> None:
        """client.reconnect without params: "reconnect to the same host", i.e. this proxy."""
        self._send({"id": None, "method": "client.reconnect", "params": []})

    def assign(self, extranonce1: bytes, extranonce2_size: int) -> MinerSubscribed | None:
        """The miner's extranonce space; answers a held subscribe (event if it did)."""
        self.extranonce1, self.extranonce2_size = extranonce1, extranonce2_size
        held, self._held_subscribes = self._held_subscribes, []
        for msg_id in held:
            self._answer_subscribe(msg_id)
        if not held:
            return None
        return MinerSubscribed(extranonce1=extranonce1, extranonce2_size=extranonce2_size)

    def _answer_subscribe(self, msg_id: m.RpcId) -> None:
        assert self.extranonce1 is not None
        subscriptions = [
            ["mining.set_difficulty", _SUBSCRIPTION_ID],
            ["mining.notify", _SUBSCRIPTION_ID],
        ]
        self._reply(msg_id, [subscriptions, self.extranonce1.hex(), self.extranonce2_size])
        self.subscribed = True

    # --- input ------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[DownstreamEvent]:
        """Raises LineTooLongError (fatal) when the miner loses framing."""
        events: list[DownstreamEvent] = []
        for line in self._lines.feed(data):
            try:
                msg = parse_line(line)
            except m.InvalidMessage as exc:
                self._on_invalid(exc, line, events)
                continue
            self._on_message(msg, events)
        return events

    def _on_invalid(
        self, exc: m.InvalidMessage, line: bytes, events: list[DownstreamEvent]
    ) -> None:
        if exc.method == "mining.submit":
            events.append(
                MalformedSubmit(submit=salvage_submit(exc.msg_id, exc.params), error=str(exc))
            )
            return
        if exc.msg_id is not None:
            self._send({"id": exc.msg_id, "result": None, "error": [SV1_OTHER, str(exc), None]})
        events.append(LineIgnored(reason=str(exc), excerpt=repr(line[:120])))

    def _on_message(self, msg: m.Message, events: list[DownstreamEvent]) -> None:
        if isinstance(msg, m.Submit):
            events.append(SubmitReceived(submit=msg))
        elif isinstance(msg, m.Subscribe):
            if self.extranonce1 is None:
                self._held_subscribes.append(msg.id)
                return
            self._answer_subscribe(msg.id)
            events.append(
                MinerSubscribed(
                    extranonce1=self.extranonce1, extranonce2_size=self.extranonce2_size
                )
            )
        elif isinstance(msg, m.Authorize):
            # The SV2 channel is already authorised by its user_identity; the
            # worker name is what the farm wants on its rows.
            self.workers.append(msg.worker)
            self._reply(msg.id, True)
            events.append(MinerAuthorized(worker=msg.worker))
        elif isinstance(msg, m.Configure):
            self._reply(msg.id, self._configure(msg.extensions, msg.parameters))
        elif isinstance(msg, m.ExtranonceSubscribe):
            self.extranonce_subscribed = True
            self._reply(msg.id, True)
        elif isinstance(msg, m.SuggestDifficulty):
            # Translate mode works at the pool's channel target and ignores the
            # event; aggregate mode sets the difficulty itself and honours it.
            if msg.id is not None:
                self._reply(msg.id, True)
            events.append(SuggestedDifficulty(difficulty=msg.difficulty))
        elif isinstance(msg, m.Response):
            return  # an answer to nothing we asked: ignore
        elif msg.id is not None:
            error = [SV1_OTHER, f"method {msg.method} not supported", None]
            self._send({"id": msg.id, "result": None, "error": error})

    def _configure(self, extensions: tuple[str, ...], params: Mapping[str, Any]) -> dict[str, Any]:
        """BIP310: grant version rolling with requested ∩ offered mask; nothing else."""
        result: dict[str, Any] = {}
        for name in extensions:
            if name != "version-rolling":
                result[name] = False
                continue
            requested = maybe_mask(params.get("version-rolling.mask", "ffffffff"))
            granted = (0xFFFFFFFF if requested is None else requested) & self._offer_mask
            if not granted:
                result[name] = False
                continue
            self.version_mask = granted
            result[name] = True
            result["version-rolling.mask"] = f"{granted:08x}"
        return result
