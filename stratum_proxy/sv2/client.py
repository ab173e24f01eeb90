"""Sans-I/O Stratum V2 mining client: Noise initiator, setup, extended channels, shares.

    client = Sv2Client(authority_pubkey=key, now=wall_time, rng=os.urandom, ...)
    sock.send(client.data_to_send())                 # act 1 of the handshake
    events = client.receive_data(sock.recv(), now, wall=wall_time)  # Sv2ProtocolError: close
    client.open_extended_channel(...); client.submit_share(...)
    sock.send(client.data_to_send())
    # wake at client.get_timer(), call client.handle_timer(now);
    # on EOF or error call client.connection_lost(now, reason) for the last verdicts.

Clocks: ``now`` is monotonic (submit deadlines, round trips); the pool's
certificate is checked against the wall clock (the constructor's ``now``, then
``wall`` of the call that completes the handshake; None means "same as now").

Order on the wire (spec §4.5, §5.3.1): handshake, SetupConnection (mining,
REQUIRES_VERSION_ROLLING so the pool never sends jobs we cannot roll), then
OpenExtendedMiningChannel; requests made earlier are queued until the pool
accepted the setup.  Group channels (spec §5.3.x SetGroupChannel, notes §4.3):
a job, prev_hash or target sent to a group id applies to every member.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from stratum_proxy.errors import LocalProtocolError
from stratum_proxy.sv2 import client_events as ev
from stratum_proxy.sv2.cert import TIME_LEEWAY_S
from stratum_proxy.sv2.channel import ClientChannel
from stratum_proxy.sv2.client_channels import ChannelTable, Events
from stratum_proxy.sv2.crypto import Rng
from stratum_proxy.sv2.framing import encode_header
from stratum_proxy.sv2.jobs import MAX_TARGET, int_to_target, target_to_int
from stratum_proxy.sv2.messages import (
    PROTOCOL_MINING,
    PROTOCOL_VERSION,
    REQUIRES_VERSION_ROLLING,
    AnyMessage,
    ChannelEndpointChanged,
    CloseChannel,
    Message,
    NewExtendedMiningJob,
    OpenExtendedMiningChannel,
    OpenExtendedMiningChannelSuccess,
    OpenMiningChannelError,
    Reconnect,
    SetExtranoncePrefix,
    SetGroupChannel,
    SetNewPrevHash,
    SetTarget,
    SetupConnection,
    SetupConnectionError,
    SetupConnectionSuccess,
    SubmitSharesError,
    SubmitSharesExtended,
    SubmitSharesSuccess,
    UnknownMessage,
    UpdateChannel,
)
from stratum_proxy.sv2.messages.base import EXTENSION_CORE, decode_frame
from stratum_proxy.sv2.messages.mining import (
    decode_submit_shares_error,
    decode_submit_shares_success,
    encode_submit_shares_extended,
)
from stratum_proxy.sv2.noise import NoiseInitiator
from stratum_proxy.sv2.transport import NoiseTransport, take_chunks
from stratum_proxy.sv2.types import truncate_utf8

# The frame header of a SubmitSharesExtended up to its U24 length (channel_msg set).
_SUBMIT_HEADER = encode_header(EXTENSION_CORE, SubmitSharesExtended.MSG_TYPE, 0, True)[:3]
_SUCCESS_TYPE = SubmitSharesSuccess.MSG_TYPE
_ERROR_TYPE = SubmitSharesError.MSG_TYPE


class Sv2Client:
    """One connection to an SV2 pool, from the first handshake byte to the close."""

    def __init__(
        self,
        *,
        authority_pubkey: bytes,
        now: float,
        rng: Rng,
        endpoint_host: str,
        endpoint_port: int,
        vendor: str = "stratum-proxy",
        leeway_s: float = TIME_LEEWAY_S,
        submit_timeout_s: float = 30.0,
    ) -> None:
        self._noise = NoiseInitiator(authority_pubkey, now, rng, leeway_s=leeway_s)
        self._transport: NoiseTransport | None = None
        # Wire bytes to send, as the pieces they were made in (joined once per read).
        self._out: list[bytes] = [self._noise.first_message()]
        self._setup = SetupConnection(
            protocol=PROTOCOL_MINING,
            min_version=PROTOCOL_VERSION,
            max_version=PROTOCOL_VERSION,
            flags=REQUIRES_VERSION_ROLLING,
            endpoint_host=truncate_utf8(endpoint_host),
            endpoint_port=endpoint_port,
            vendor=truncate_utf8(vendor),
            hardware_version="",
            firmware="",
            device_id="",
        )
        self.submit_timeout_s = submit_timeout_s
        self.state = "handshake"  # -> "setup" -> "ready" -> "closed"
        self._channels = ChannelTable()
        self._opening: dict[int, OpenExtendedMiningChannel] = {}
        self._queued: list[Message] = []
        self._next_request_id = 1
        # Never later than the oldest pending submit's time (None: nothing pending).
        # A verdict leaves it as it is: finding the new oldest costs a pass over
        # every channel, so handle_timer does that pass, about once per timeout.
        self._oldest_submit: float | None = None
        # One dispatch table: the client's own messages, then the channel table's.
        self._handlers: dict[type[Any], Callable[[Any, float, Events], None]] = {
            SetupConnectionSuccess: self._on_setup_success,
            SetupConnectionError: self._on_setup_error,
            OpenExtendedMiningChannelSuccess: self._on_open_success,
            OpenMiningChannelError: self._on_open_error,
            Reconnect: self._on_reconnect,
            NewExtendedMiningJob: self._channels.on_job,
            SetNewPrevHash: self._channels.on_prev_hash,
            SetTarget: self._channels.on_target,
            SetExtranoncePrefix: self._channels.on_prefix,
            SubmitSharesSuccess: self._channels.on_success,
            SubmitSharesError: self._channels.on_error,
            CloseChannel: self._channels.on_close,
            ChannelEndpointChanged: self._channels.on_endpoint_changed,
            SetGroupChannel: self._channels.on_group,
        }

    @property
    def channels(self) -> Mapping[int, ClientChannel]:
        """Open channels by id; only the client changes them."""
        return self._channels

    # --- output -----------------------------------------------------------------

    def data_to_send(self) -> bytes:
        return take_chunks(self._out)

    def _send(self, msg: Message) -> None:
        if self.state == "closed":
            return
        if self.state != "ready" and not isinstance(msg, SetupConnection):
            self._queued.append(msg)
            return
        assert self._transport is not None
        payload = msg.encode()
        header = encode_header(msg.EXTENSION_TYPE, msg.MSG_TYPE, len(payload), msg.CHANNEL_MSG)
        self._out.append(self._transport.encrypt_parts(header, payload))

    # --- requests ---------------------------------------------------------------

    def open_extended_channel(
        self,
        *,
        user_identity: str,
        nominal_hash_rate: float,
        min_extranonce_size: int,
        max_target: int = MAX_TARGET,
    ) -> int:
        """Ask for a channel; returns the request id its ChannelOpened will carry."""
        request_id = self._next_request_id
        self._next_request_id = (request_id + 1) % (1 << 32)
        msg = OpenExtendedMiningChannel(
            request_id=request_id,
            user_identity=truncate_utf8(user_identity),
            nominal_hash_rate=nominal_hash_rate,
            max_target=int_to_target(max_target),
            min_extranonce_size=min_extranonce_size,
        )
        self._opening[request_id] = msg
        self._send(msg)
        return request_id

    def submit_share(
        self,
        *,
        channel_id: int,
        job_id: int,
        nonce: int,
        ntime: int,
        version: int,
        extranonce: bytes,
        now: float,
        token: object,
    ) -> int:
        """Send SubmitSharesExtended; returns its sequence number."""
        channel = self._channels.get(channel_id)
        if channel is None or self.state != "ready":
            raise LocalProtocolError(f"channel {channel_id} is not open")
        if len(extranonce) != channel.extranonce_size:
            raise LocalProtocolError(
                f"extranonce of {len(extranonce)} bytes, channel {channel_id} rolls "
                f"{channel.extranonce_size}"
            )
        seq = channel.add_pending(token, now)
        if self._oldest_submit is None:
            self._oldest_submit = now
        # Once per share: the payload straight from the values (no message object);
        # a value that does not fit goes the generic way, which says which one.
        payload = encode_submit_shares_extended(
            channel_id, seq, job_id, nonce, ntime, version, extranonce
        )
        if payload is None:
            self._send(
                SubmitSharesExtended(
                    channel_id=channel_id,
                    sequence_number=seq,
                    job_id=job_id,
                    nonce=nonce,
                    ntime=ntime,
                    version=version,
                    extranonce=extranonce,
                )
            )
            return seq
        assert self._transport is not None  # state "ready"
        header = _SUBMIT_HEADER + len(payload).to_bytes(3, "little")
        self._out.append(self._transport.encrypt_parts(header, payload))
        return seq

    def update_channel(self, channel_id: int, nominal_hash_rate: float) -> None:
        if channel_id in self._channels:
            self._send(
                UpdateChannel(
                    channel_id=channel_id,
                    nominal_hash_rate=nominal_hash_rate,
                    maximum_target=int_to_target(MAX_TARGET),
                )
            )

    def close_channel(self, channel_id: int, reason: str, now: float) -> Events:
        """Close one of our channels; still-pending submits become no_response."""
        channel = self._channels.remove(channel_id)
        if channel is None:
            return []
        self._send(CloseChannel(channel_id=channel_id, reason_code=truncate_utf8(reason)))
        return list(channel.drop_pending(now, f"channel closed: {reason}"))

    # --- input ------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float, *, wall: float | None = None) -> Events:
        """Feed bytes from the pool; raises Sv2ProtocolError (fatal) on any breach."""
        if self.state == "closed":
            return []
        if self._transport is None:
            transport = self._noise.receive(data, now=now if wall is None else wall)
            if transport is None:
                return []
            self._transport = transport
            self.state = "setup"
            self._send(self._setup)
            data = b""  # bytes after act 2 were handed to the transport
        events: Events = []
        channels = self._channels
        for header, payload in self._transport.feed_parts(data):
            # The verdicts, one per share, go to their channel straight from the
            # payload; everything else (and a malformed verdict) is decoded as a
            # message and dispatched by its type.  Bytes 0-1 of the header hold
            # the extension type (0: core) beside the channel_msg bit.
            if header[0] == 0 and header[1] & 0x7F == 0:
                if header[2] == _SUCCESS_TYPE:
                    success = decode_submit_shares_success(payload)
                    if success is not None:
                        channel_id, last_seq, count, _ = success
                        channels.success(channel_id, last_seq, count, now, events)
                        continue
                elif header[2] == _ERROR_TYPE:
                    error = decode_submit_shares_error(payload)
                    if error is not None:
                        channels.error(*error, now, events)
                        continue
            self._dispatch(decode_frame(header, payload), now, events)
        return events

    def receive_eof(self) -> None:
        """The pool closed the stream; raises if that cut the handshake short."""
        if self._transport is None:
            self._noise.receive_eof()

    def connection_lost(self, now: float, reason: str) -> Events:
        """The connection is gone: every pending submit becomes no_response."""
        self.state = "closed"
        self._oldest_submit = None
        events: Events = []
        self._channels.drop_all_pending(now, reason, events)
        return events

    # --- timers -----------------------------------------------------------------

    def get_timer(self) -> float | None:
        """Never later than the next submit deadline, possibly earlier (see handle_timer)."""
        oldest = self._oldest_submit
        return None if oldest is None else oldest + self.submit_timeout_s

    def handle_timer(self, now: float) -> Events:
        """Expire submits older than the timeout; get_timer is exact again afterwards."""
        reason = f"no answer from the pool within {self.submit_timeout_s:g} s"
        events: Events = []
        self._channels.expire(now - self.submit_timeout_s, now, reason, events)
        self._oldest_submit = self._channels.oldest_pending()
        return events

    def pending_count(self) -> int:
        return self._channels.pending_count()

    # --- dispatch ---------------------------------------------------------------

    def _dispatch(self, msg: AnyMessage, now: float, events: Events) -> None:
        handler = self._handlers.get(type(msg))
        if handler is not None:
            handler(msg, now, events)
        elif not isinstance(msg, UnknownMessage):
            events.append(ev.ProtocolNotice(text=f"ignored {type(msg).__name__} from the pool"))

    def _on_setup_success(self, msg: SetupConnectionSuccess, now: float, events: Events) -> None:
        if self.state != "setup":
            events.append(ev.ProtocolNotice(text="SetupConnection.Success out of order"))
            return
        self.state = "ready"
        queued, self._queued = self._queued, []
        for item in queued:
            self._send(item)
        events.append(ev.ConnectionReady(used_version=msg.used_version, flags=msg.flags))

    def _on_setup_error(self, msg: SetupConnectionError, now: float, events: Events) -> None:
        events.extend(self.connection_lost(now, f"pool refused setup: {msg.error_code}"))
        events.append(ev.SetupFailed(error_code=msg.error_code, flags=msg.flags))

    def _on_open_success(
        self, msg: OpenExtendedMiningChannelSuccess, now: float, events: Events
    ) -> None:
        if self._opening.pop(msg.request_id, None) is None:
            events.append(
                ev.ProtocolNotice(text=f"channel opened for unknown request {msg.request_id}")
            )
            return
        group = msg.group_channel_id or None  # 0 / absent (old shape): no group
        self._channels.add(
            ClientChannel(
                channel_id=msg.channel_id,
                target=target_to_int(msg.target),
                extranonce_prefix=msg.extranonce_prefix,
                extranonce_size=msg.extranonce_size,
                group_channel_id=group,
            )
        )
        events.append(
            ev.ChannelOpened(
                request_id=msg.request_id,
                channel_id=msg.channel_id,
                target=target_to_int(msg.target),
                extranonce_prefix=msg.extranonce_prefix,
                extranonce_size=msg.extranonce_size,
                group_channel_id=group,
            )
        )

    def _on_open_error(self, msg: OpenMiningChannelError, now: float, events: Events) -> None:
        self._opening.pop(msg.request_id, None)
        events.append(ev.ChannelOpenFailed(request_id=msg.request_id, error_code=msg.error_code))

    def _on_reconnect(self, msg: Reconnect, now: float, events: Events) -> None:
        events.append(ev.ReconnectRequested(host=msg.new_host, port=msg.new_port))
