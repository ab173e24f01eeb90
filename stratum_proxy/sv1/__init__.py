"""Stratum V1, sans-I/O: framing, typed messages, verdicts and the passthrough tracker.

The session owns the sockets; this package only turns bytes into events::

    tracker = Sv1Tracker(context=ShareContext(proxy_id=..., upstream=..., channel_id=...,
                                              miner_addr=...))
    events = tracker.miner_data(data, time.time())   # after forwarding data to the pool
    events = tracker.pool_data(data, time.time())    # after forwarding data to the miner
    # wake at tracker.get_timer() and call tracker.handle_timer(now);
    # on close (or a fatal RemoteProtocolError) call tracker.connection_lost(now).
"""

from stratum_proxy.sv1.codec import LineBuffer, LineTooLongError
from stratum_proxy.sv1.events import (
    DifficultySet,
    Event,
    ExtranonceChanged,
    LineSkipped,
    PoolMessage,
    PoolReconnectRequested,
    ShareResolved,
    Subscribed,
    VersionMaskSet,
    WorkerAuthorized,
)
from stratum_proxy.sv1.messages import InvalidMessage, Message
from stratum_proxy.sv1.parser import parse_line
from stratum_proxy.sv1.records import ShareContext
from stratum_proxy.sv1.tracker import Sv1Tracker
from stratum_proxy.sv1.verdict import verdict

__all__ = [
    "DifficultySet",
    "Event",
    "ExtranonceChanged",
    "InvalidMessage",
    "LineBuffer",
    "LineSkipped",
    "LineTooLongError",
    "Message",
    "PoolMessage",
    "PoolReconnectRequested",
    "ShareContext",
    "ShareResolved",
    "Subscribed",
    "Sv1Tracker",
    "VersionMaskSet",
    "WorkerAuthorized",
    "parse_line",
    "verdict",
]
