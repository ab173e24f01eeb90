"""Parse one Stratum V1 line into a typed message (see ``messages``).

Tolerant where real peers differ (sv1_transcripts.md section 4: key order,
whitespace, string ids, non-null ids on notifications, 5- or 6-param submits,
integer or float difficulties), strict where a wrong type would make the
tracker compute garbage.  Every failure is an ``InvalidMessage`` (never fatal)
naming the method and the parameter that was wrong.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import orjson

from stratum_proxy.sv1.messages import (
    Authorize,
    ClientReconnect,
    Configure,
    ExtranonceSubscribe,
    GetVersion,
    InvalidMessage,
    Message,
    Notify,
    Ping,
    Response,
    RpcId,
    SetDifficulty,
    SetExtranonce,
    SetVersionMask,
    ShowMessage,
    Submit,
    Subscribe,
    SuggestDifficulty,
    UnknownMethod,
)
from stratum_proxy.sv1.params import (
    as_params,
    hex_bytes,
    hex_u32,
    opt_str,
    positive_number,
    req_str,
)

_ID_TYPES = (int, float, str)
_EMPTY: list[Any] = []


def parse_line(line: bytes) -> Message:
    """One line (no terminator) → a message; raises ``InvalidMessage``."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage(f"invalid JSON: {exc}") from None
    return parse_object(obj)


def parse_object(obj: Any) -> Message:
    """An already decoded JSON value → a message; raises ``InvalidMessage``."""
    if type(obj) is not dict:
        raise InvalidMessage(f"expected a JSON object, got {type(obj).__name__}")
    msg_id = obj.get("id")
    if msg_id is not None and (type(msg_id) is bool or not isinstance(msg_id, _ID_TYPES)):
        raise InvalidMessage(f"id must be a number, string or null, got {type(msg_id).__name__}")
    method = obj.get("method")
    if method is None:
        if "result" in obj or "error" in obj:
            return _response(msg_id, obj)
        raise InvalidMessage("object has neither a method nor a result/error")
    if type(method) is not str:
        raise InvalidMessage(f"method must be a string, got {type(method).__name__}")
    params = obj.get("params", _EMPTY)
    build = _BUILDERS.get(method)
    if build is None:
        return UnknownMethod(id=msg_id, method=method, params=params)
    try:
        return build(msg_id, as_params(params))
    except (ValueError, TypeError, IndexError) as exc:
        raise InvalidMessage(
            f"{method}: {exc}", method=method, msg_id=msg_id, params=params
        ) from None


def _response(msg_id: RpcId, obj: dict[str, Any]) -> Response:
    reason = obj.get("reject-reason")
    if reason is not None and type(reason) is not str:
        reason = orjson.dumps(reason).decode()
    return Response(
        id=msg_id, result=obj.get("result"), error=obj.get("error"), reject_reason=reason
    )


def _submit(msg_id: RpcId, p: list[Any]) -> Submit:
    if len(p) < 5:
        raise ValueError(f"expected 5 or 6 params, got {len(p)}")
    return Submit(
        id=msg_id,
        worker=req_str(p, 0, "worker"),
        job_id=req_str(p, 1, "job_id"),
        extranonce2=req_str(p, 2, "extranonce2"),
        ntime=req_str(p, 3, "ntime"),
        nonce=req_str(p, 4, "nonce"),
        version_bits=opt_str(p, 5, "version_bits"),
    )


def _notify(msg_id: RpcId, p: list[Any]) -> Notify:
    if len(p) < 9:
        raise ValueError(f"expected 9 params, got {len(p)}")
    job_id = p[0]
    if type(job_id) is int:  # seen as a bare number from some pools; the miner echoes text
        job_id = str(job_id)
    branch = p[4]
    if type(branch) is not list:
        raise TypeError(f"params[4] (merkle_branch) must be a list, got {type(branch).__name__}")
    clean = p[8]
    if type(clean) is not bool and clean not in (0, 1):
        raise TypeError(f"params[8] (clean_jobs) must be a boolean, got {clean!r}")
    return Notify(
        id=msg_id,
        job_id=req_str([job_id], 0, "job_id"),
        prevhash=hex_bytes(p, 1, "prevhash", size=32),
        coinb1=hex_bytes(p, 2, "coinb1"),
        coinb2=hex_bytes(p, 3, "coinb2"),
        merkle_branch=tuple(
            hex_bytes(branch, i, "merkle_branch", size=32) for i in range(len(branch))
        ),
        version=hex_u32(p, 5, "version"),
        nbits=hex_u32(p, 6, "nbits"),
        ntime=hex_u32(p, 7, "ntime"),
        clean_jobs=bool(clean),
    )


def _subscribe(msg_id: RpcId, p: list[Any]) -> Subscribe:
    # params: [], [agent], [agent, session_id] or bmminer's [agent, session_id, n]
    return Subscribe(
        id=msg_id,
        user_agent=opt_str(p, 0, "user_agent"),
        session_id=opt_str(p, 1, "session_id"),
    )


def _authorize(msg_id: RpcId, p: list[Any]) -> Authorize:
    return Authorize(id=msg_id, worker=req_str(p, 0, "worker"))


def _configure(msg_id: RpcId, p: list[Any]) -> Configure:
    codes = p[0] if p else []
    if type(codes) is not list or not all(type(c) is str for c in codes):
        raise TypeError("params[0] (extensions) must be a list of strings")
    values = p[1] if len(p) > 1 else {}
    if type(values) is not dict:
        raise TypeError(f"params[1] (extension parameters) must be an object, got {values!r}")
    return Configure(id=msg_id, extensions=tuple(codes), parameters=values)


def _set_extranonce(msg_id: RpcId, p: list[Any]) -> SetExtranonce:
    extranonce1 = req_str(p, 0, "extranonce1")
    hex_bytes(p, 0, "extranonce1")  # validate only; kept as text for the record
    size = p[1] if len(p) > 1 else None
    if size is not None and (type(size) is not int or not 0 <= size <= 32):
        raise ValueError(f"params[1] (extranonce2_size) must be an integer 0..32, got {size!r}")
    return SetExtranonce(id=msg_id, extranonce1=extranonce1.lower(), extranonce2_size=size)


def _reconnect(msg_id: RpcId, p: list[Any]) -> ClientReconnect:
    host = opt_str(p, 0, "host") or None
    port = p[1] if len(p) > 1 else None
    if type(port) is str and port.isdigit():  # some pools quote the port
        port = int(port)
    if port is not None and (type(port) is not int or not 0 < port < 65536):
        raise ValueError(f"params[1] (port) must be a TCP port, got {port!r}")
    wait = p[2] if len(p) > 2 else 0
    if type(wait) is bool or not isinstance(wait, int | float) or not 0 <= wait < math.inf:
        raise ValueError(f"params[2] (wait seconds) must be a non-negative number, got {wait!r}")
    return ClientReconnect(id=msg_id, host=host, port=port, wait_s=float(wait))


def _show_message(msg_id: RpcId, p: list[Any]) -> ShowMessage:
    return ShowMessage(id=msg_id, text=req_str(p, 0, "message"))


_BUILDERS: dict[str, Callable[[RpcId, list[Any]], Message]] = {
    "mining.submit": _submit,
    "mining.notify": _notify,
    "mining.set_difficulty": lambda i, p: SetDifficulty(
        id=i, difficulty=positive_number(p, 0, "difficulty")
    ),
    "mining.subscribe": _subscribe,
    "mining.authorize": _authorize,
    "mining.configure": _configure,
    "mining.suggest_difficulty": lambda i, p: SuggestDifficulty(
        id=i, difficulty=positive_number(p, 0, "difficulty", allow_zero=True)
    ),
    "mining.extranonce.subscribe": lambda i, p: ExtranonceSubscribe(id=i),
    "mining.set_extranonce": _set_extranonce,
    "mining.set_version_mask": lambda i, p: SetVersionMask(id=i, mask=hex_u32(p, 0, "mask")),
    "client.reconnect": _reconnect,
    "client.show_message": _show_message,
    "mining.ping": lambda i, p: Ping(id=i),
    "client.get_version": lambda i, p: GetVersion(id=i),
}
