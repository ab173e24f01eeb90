"""The project's exception hierarchy.

Errors say whose fault they are and what happens next:

* ``RemoteProtocolError`` — the peer (a miner or a pool) sent something we cannot
  accept.  ``fatal`` says whether the connection must be closed (a line too long,
  a broken frame, a failed handshake) or the offending message is merely skipped
  (one line of invalid JSON).
* ``LocalProtocolError`` — our own code asked a protocol object to do something
  illegal; a bug, never caused by the network.
* ``ConfigError`` — the operator's settings are wrong; the message says which one.
* ``StoreError`` — the share store failed; ``retryable`` tells the writer whether
  to back off and retry the same batch or to dead-letter it.
* ``QueryRefused`` / ``QueryInvalid`` / ``QueryBusy`` — an API query is not
  allowed (HTTP 403), is not valid SQL or failed in the engine (400), or found
  every query slot taken or ran past its time limit (503 / 504).
"""

from __future__ import annotations


class StratumProxyError(Exception):
    """Base of every error this package raises on purpose."""


class RemoteProtocolError(StratumProxyError):
    """The peer violated the protocol.

    ``fatal`` is True when the connection cannot continue (framing lost, handshake
    failed, limits exceeded); False when only the current message is skipped.
    """

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


class LocalProtocolError(StratumProxyError):
    """We tried to do something the protocol does not allow (a bug on our side)."""


class ConfigError(StratumProxyError):
    """The settings are invalid; the message names the setting and the fix."""


class StoreError(StratumProxyError):
    """The share store failed.

    ``retryable`` errors (connection refused/reset, timeouts, too many parts,
    overload) are retried with the same batch; the others (schema mismatch, bad
    data) are dead-lettered with the error text.
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class StoreBusyError(StratumProxyError):
    """An embedded store path is held by another running process."""


class QueryRefused(StratumProxyError):
    """The query is valid SQL but not a read of the project's own tables (HTTP 403)."""


class QueryInvalid(StratumProxyError):
    """The engine could not parse or run the query; the message is the engine's (HTTP 400)."""


class QueryBusy(StratumProxyError):
    """Every query slot is taken, or the store is not open yet (HTTP 503)."""


class QuerySlotsBusy(QueryBusy):
    """Every query slot is taken right now: worth trying again in a moment."""


class QueryTimeout(StratumProxyError):
    """The query ran past ``api.query_timeout_s`` and was cancelled (HTTP 504)."""
