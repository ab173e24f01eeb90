"""The pool's verdict on a request: accepted, or rejected with the pool's reason.

Shapes seen in the wild (sv1_transcripts.md section 3.5):

* ``"result": true, "error": null`` — accepted.  Nothing else is: a share is
  accepted only on a literal ``true`` with no error, never by default.
* ``"error": [code, message, data]`` (data null, "" or text) — reason
  ``"<code> <message>"``, plus ``" (<data>)"`` when data carries text
  (public-pool puts validation details there).  The code is kept because it is
  the classification pools agree on (20 other, 21 stale, 22 duplicate,
  23 low difficulty, 24 unauthorized, 25 not subscribed); the message is the
  pool's own text, unchanged.
* ``"error": "Stale"`` — the bare string.
* ``"error": {"code": 22, "message": "duplicate share"}`` (JSON-RPC 2.0) —
  ``"22 duplicate share"``.
* ``"result": false, "error": null, "reject-reason": "Above target 2"`` (ckpool)
  — the reject-reason.  With both an error and a reject-reason, both are kept.
* ``"result": false`` (or null) and no reason at all — rejected, with a reason
  that says the pool gave none.

Reasons are capped so that a hostile pool cannot blow up a column.
"""

from __future__ import annotations

from typing import Any

import orjson

# The reason goes into a String column and a log line; the longest real reason
# is a few dozen characters.
MAX_REASON_CHARS = 256
NO_REASON_FALSE = "rejected; the pool gave no reason"
NO_REASON_NULL = "no result and no error; the pool gave no reason"


def verdict(result: Any, error: Any, reject_reason: str | None = None) -> tuple[bool, str]:
    """(accepted, reason); reason is '' exactly when accepted."""
    # null, "", false, [] and {} all mean "no error" in the wild.
    has_error = bool(error)
    if result is True and not has_error and not reject_reason:
        return True, ""
    parts: list[str] = []
    if has_error:
        parts.append(error_text(error))
    if reject_reason and reject_reason not in parts:
        parts.append(reject_reason)
    if not parts:
        if result is False:
            parts.append(NO_REASON_FALSE)
        elif result is None:
            parts.append(NO_REASON_NULL)
        else:
            parts.append(f"unexpected result {_compact(result)}")
    return False, _cap("; ".join(parts))


def error_text(error: Any) -> str:
    """Human text of one JSON-RPC error value, in any of the shapes above."""
    if type(error) is str:
        return error
    if type(error) is list and error:
        code = error[0]
        message = error[1] if len(error) > 1 else None
        data = error[2] if len(error) > 2 else None
        return _code_message(code, message, data)
    if type(error) is dict and ("code" in error or "message" in error):
        return _code_message(error.get("code"), error.get("message"), error.get("data"))
    return _compact(error)


def _code_message(code: Any, message: Any, data: Any) -> str:
    words = [str(w) if type(w) is str else _compact(w) for w in (code, message) if w is not None]
    text = " ".join(words) if words else "error without code or message"
    if data is not None and data != "":
        text += f" ({data if type(data) is str else _compact(data)})"
    return text


def _compact(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return repr(value)


def _cap(text: str) -> str:
    if len(text) <= MAX_REASON_CHARS:
        return text
    return text[: MAX_REASON_CHARS - 1] + "…"
