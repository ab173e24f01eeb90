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
