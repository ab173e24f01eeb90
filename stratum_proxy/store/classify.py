"""Which store failures are worth retrying: the one table of ClickHouse error codes.

Retryable means "the same batch can succeed later": the network, the server's
load, its memory, its disk or its replication are the problem, not the batch.
Not retryable means the batch itself or the schema is wrong (bad data, a
missing column or table, a syntax error): retrying the identical batch would
fail forever, so the writer dead-letters it.

clickhouse-driver errors carry ``.code``; chdb raises ``ChdbError`` (a
RuntimeError) whose text reads ``Code: 252. DB::Exception: ... (TOO_MANY_PARTS)``.
Codes come from ClickHouse ``src/Common/ErrorCodes.cpp``.
"""

from __future__ import annotations

import re
import socket

from stratum_proxy.errors import StoreError

RETRYABLE_CODES: dict[int, str] = {
    3: "UNEXPECTED_END_OF_FILE",
    23: "CANNOT_READ_FROM_ISTREAM",
    24: "CANNOT_WRITE_TO_OSTREAM",
    32: "ATTEMPT_TO_READ_AFTER_EOF",
    159: "TIMEOUT_EXCEEDED",
    160: "TOO_SLOW",
    164: "READONLY",
    173: "CANNOT_ALLOCATE_MEMORY",
    # Credentials and grants are the store's configuration, not the batch's
    # fault: keep the rows (spooled) until the operator fixes them.
    192: "UNKNOWN_USER",
    194: "REQUIRED_PASSWORD",
    202: "TOO_MANY_SIMULTANEOUS_QUERIES",
    203: "NO_FREE_CONNECTION",
    209: "SOCKET_TIMEOUT",
    210: "NETWORK_ERROR",
    236: "ABORTED",
    241: "MEMORY_LIMIT_EXCEEDED",
    242: "TABLE_IS_READ_ONLY",
    243: "NOT_ENOUGH_SPACE",
    252: "TOO_MANY_PARTS",
    285: "TOO_FEW_LIVE_REPLICAS",
    286: "UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE",
    319: "UNKNOWN_STATUS_OF_INSERT",
    394: "QUERY_WAS_CANCELLED",
    425: "SYSTEM_ERROR",
    439: "CANNOT_SCHEDULE_TASK",
    497: "ACCESS_DENIED",
    516: "AUTHENTICATION_FAILED",
    999: "KEEPER_EXCEPTION",
    1000: "POCO_EXCEPTION",
}

# Listed for the reader; any code not in RETRYABLE_CODES is permanent.
PERMANENT_CODES: dict[int, str] = {
    6: "CANNOT_PARSE_TEXT",
    8: "THERE_IS_NO_COLUMN",
    16: "NO_SUCH_COLUMN_IN_TABLE",
    20: "NUMBER_OF_COLUMNS_DOESNT_MATCH",
    27: "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
    33: "CANNOT_READ_ALL_DATA",
    36: "BAD_ARGUMENTS",
    41: "CANNOT_PARSE_DATETIME",
    47: "UNKNOWN_IDENTIFIER",
    53: "TYPE_MISMATCH",
    60: "UNKNOWN_TABLE",
    62: "SYNTAX_ERROR",
    70: "CANNOT_CONVERT_TYPE",
    81: "UNKNOWN_DATABASE",
    117: "INCORRECT_DATA",
}

_NAME_TO_CODE = {name: code for code, name in (RETRYABLE_CODES | PERMANENT_CODES).items()}
_CODE_RE = re.compile(r"Code:\s*(\d+)")
_NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]+)\)")

# Python-level failures of the connection itself.
_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    socket.timeout,
    socket.gaierror,
    EOFError,
    OSError,
)


def error_code(exc: BaseException) -> int | None:
    """The ClickHouse error code of ``exc``, from ``.code`` or the message text."""
    code = getattr(exc, "code", None)
    if isinstance(code, int) and code > 0:
        return code
    text = str(exc)
    match = _CODE_RE.search(text)
    if match:
        return int(match.group(1))
    for name in _NAME_RE.findall(text):
        if name in _NAME_TO_CODE:
            return _NAME_TO_CODE[name]
    return None


def is_retryable(exc: BaseException) -> bool:
    """Whether retrying the same batch later can succeed."""
    if isinstance(exc, StoreError):
        return exc.retryable
    code = error_code(exc)
    if code is not None:
        return code in RETRYABLE_CODES
    return isinstance(exc, _TRANSIENT_TYPES)


def is_known_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure stores report (a StoreError, a ClickHouse error
    code, a broken connection), rather than a bug."""
    known = isinstance(exc, (StoreError, *_TRANSIENT_TYPES))
    return known or error_code(exc) is not None


def classify(exc: BaseException, *, doing: str, where: str) -> StoreError:
    """A StoreError saying what failed, where, and whether to retry."""
    if isinstance(exc, StoreError):
        return exc
    retryable = is_retryable(exc)
    code = error_code(exc)
    name = RETRYABLE_CODES.get(code or 0) or PERMANENT_CODES.get(code or 0)
    label = f"{type(exc).__name__}" + (f" {code} {name}" if name else f" {code}" if code else "")
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    hint = "will retry" if retryable else "not retryable"
    return StoreError(
        f"{doing} on {where} failed ({label}, {hint}): {message}", retryable=retryable
    )
