"""Events the sans-I/O SV2 mining client (client.py) hands to its user.

One event per thing that happened on the connection, in the order it happened.
Share verdicts carry back the ``token`` the caller gave ``submit_share`` so the
caller can find its own bookkeeping without a second lookup table.
"""

from __future__ import annotations

from dataclasses import dataclass

from stratum_proxy.sv2.messages import NewExtendedMiningJob, SetNewPrevHash

STATUS_ACCEPTED = "accepted"
STATUS_REJECTED = "rejected"
STATUS_NO_RESPONSE = "no_response"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionReady:
    """SetupConnection.Success: channels can be opened."""

    used_version: int
    flags: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SetupFailed:
    """SetupConnection.Error: the pool refused us; the connection is over."""

    error_code: str
    flags: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelOpened:
    request_id: int
    channel_id: int
    target: int
    extranonce_prefix: bytes
    extranonce_size: int
    group_channel_id: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelOpenFailed:
    request_id: int
    error_code: str


@dataclass(frozen=True, slots=True, kw_only=True)
class JobActivated:
    """A job miners should work on now; ``clean`` when a new prev_hash came with it."""

    channel_id: int
    job: NewExtendedMiningJob
    prev_hash: SetNewPrevHash
    clean: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetChanged:
    channel_id: int
    target: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtranoncePrefixChanged:
    channel_id: int
    extranonce_prefix: bytes


# Not frozen: one is made per share, and a frozen dataclass's __init__ sets each
# field through object.__setattr__, which costs about twice as much.  Treat it as
# read-only all the same.
@dataclass(slots=True, kw_only=True)
class ShareVerdict:
    """The pool's answer (or its absence) for one SubmitSharesExtended."""

    channel_id: int
    sequence_number: int
    token: object
    status: str  # STATUS_ACCEPTED / STATUS_REJECTED / STATUS_NO_RESPONSE
    error_code: str  # the pool's code when rejected, our reason when no_response
    submitted_at: float
    resolved_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelClosed:
    """The pool closed a channel (CloseChannel); its pending shares were resolved first."""

    channel_id: int
    reason_code: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointChanged:
    """ChannelEndpointChanged: in-flight submits of the channel will not be answered."""

    channel_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconnectRequested:
    """Reconnect (spec §3.6.5): empty host / port 0 mean the current ones."""

    host: str
    port: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtocolNotice:
    """Something odd but survivable the pool did (logged, counted)."""

    text: str


ClientEvent = (
    ConnectionReady
    | SetupFailed
    | ChannelOpened
    | ChannelOpenFailed
    | JobActivated
    | TargetChanged
    | ExtranoncePrefixChanged
    | ShareVerdict
    | ChannelClosed
    | EndpointChanged
    | ReconnectRequested
    | ProtocolNotice
)
