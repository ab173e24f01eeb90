"""The client's table of open extended channels and the pool messages addressed to them.

``ChannelTable`` is owned by ``Sv2Client``: the client adds a channel when the
pool opened it and removes it when we close it; the table handles every
channel-addressed message.  Jobs, prev_hash, targets and extranonce prefixes may
be addressed to a group channel and then apply to every member (spec §5.3,
notes §4.3); verdicts, closes and endpoint changes resolve the channel's
pending submits.  Handlers take ``(msg, now, events)`` and append what happened.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from stratum_proxy.sv2 import client_events as ev
from stratum_proxy.sv2.channel import ClientChannel
from stratum_proxy.sv2.jobs import target_to_int
from stratum_proxy.sv2.messages import (
    ChannelEndpointChanged,
    CloseChannel,
    NewExtendedMiningJob,
    SetExtranoncePrefix,
    SetGroupChannel,
    SetNewPrevHash,
    SetTarget,
    SubmitSharesError,
    SubmitSharesSuccess,
)

Events = list[ev.ClientEvent]
MAX_EXTRANONCE = 32  # prefix + rollable part: a B0_32 (SRI MAX_EXTRANONCE_LEN)


class ChannelTable(Mapping[int, ClientChannel]):
    """Open channels by id (read-only to everyone but its owner), and their groups."""

    def __init__(self) -> None:
        self._channels: dict[int, ClientChannel] = {}
        self._groups: dict[int, set[int]] = {}

    # --- the table --------------------------------------------------------------

    def __getitem__(self, channel_id: int) -> ClientChannel:
        return self._channels[channel_id]

    def get(  # type: ignore[override]  # Mapping.get's overloads, one shape used here
        self, channel_id: int, default: ClientChannel | None = None
    ) -> ClientChannel | None:
        # The dict's own get: Mapping.get goes through __getitem__ and a try (per share).
        return self._channels.get(channel_id, default)

    def __contains__(self, channel_id: object) -> bool:
        return channel_id in self._channels

    def __iter__(self) -> Iterator[int]:
        return iter(self._channels)

    def __len__(self) -> int:
        return len(self._channels)

    def add(self, channel: ClientChannel) -> None:
        self._channels[channel.channel_id] = channel
        if channel.group_channel_id is not None:
            self._groups.setdefault(channel.group_channel_id, set()).add(channel.channel_id)

    def remove(self, channel_id: int) -> ClientChannel | None:
        channel = self._channels.pop(channel_id, None)
        if channel is not None and channel.group_channel_id is not None:
            self._groups.get(channel.group_channel_id, set()).discard(channel_id)
        return channel

    # --- pending submits ----------------------------------------------------------

    def pending_count(self) -> int:
        return sum(len(c.pending) for c in self._channels.values())

    def oldest_pending(self) -> float | None:
        oldest = [t for c in self._channels.values() if (t := c.oldest_pending()) is not None]
        return min(oldest) if oldest else None

    def expire(self, deadline: float, now: float, reason: str, events: Events) -> None:
        """Submits sent at or before ``deadline`` become no_response."""
        for channel in self._channels.values():
            events.extend(channel.expire(deadline, now, reason))

    def drop_all_pending(self, now: float, reason: str, events: Events) -> None:
        for channel in self._channels.values():
            events.extend(channel.drop_pending(now, reason))

    # --- pool messages --------------------------------------------------------------

    def _members(self, channel_id: int, what: str, events: Events) -> list[ClientChannel]:
        """The channels a message addresses: the channel itself or a group's members."""
        channel = self._channels.get(channel_id)
        if channel is not None:
            return [channel]
        members = self._groups.get(channel_id)
        if members is None:
            events.append(ev.ProtocolNotice(text=f"{what} for unknown channel {channel_id}"))
            return []
        return [self._channels[c] for c in sorted(members) if c in self._channels]

    def on_job(self, msg: NewExtendedMiningJob, now: float, events: Events) -> None:
        for channel in self._members(msg.channel_id, "NewExtendedMiningJob", events):
            outcome = channel.on_job(msg)
            if isinstance(outcome, str):
                events.append(ev.ProtocolNotice(text=outcome))
            elif outcome is not None:
                events.append(outcome)

    def on_prev_hash(self, msg: SetNewPrevHash, now: float, events: Events) -> None:
        for channel in self._members(msg.channel_id, "SetNewPrevHash", events):
            outcome = channel.on_prev_hash(msg)
            events.append(ev.ProtocolNotice(text=outcome) if isinstance(outcome, str) else outcome)

    def on_target(self, msg: SetTarget, now: float, events: Events) -> None:
        target = target_to_int(msg.maximum_target)
        for channel in self._members(msg.channel_id, "SetTarget", events):
            channel.target = target
            events.append(ev.TargetChanged(channel_id=channel.channel_id, target=target))

    def on_prefix(self, msg: SetExtranoncePrefix, now: float, events: Events) -> None:
        for channel in self._members(msg.channel_id, "SetExtranoncePrefix", events):
            if len(msg.extranonce_prefix) + channel.extranonce_size > MAX_EXTRANONCE:
                events.append(ev.ProtocolNotice(text="SetExtranoncePrefix over 32 bytes ignored"))
                continue
            channel.extranonce_prefix = msg.extranonce_prefix
            events.append(
                ev.ExtranoncePrefixChanged(
                    channel_id=channel.channel_id, extranonce_prefix=msg.extranonce_prefix
                )
            )

    def on_success(self, msg: SubmitSharesSuccess, now: float, events: Events) -> None:
        self.success(
            msg.channel_id, msg.last_sequence_number, msg.new_submits_accepted_count, now, events
        )

    def success(
        self, channel_id: int, last_seq: int, count: int, now: float, events: Events
    ) -> None:
        """SubmitShares.Success, from its fields (the client's per-share path has no message)."""
        channel = self._channels.get(channel_id)
        if channel is None:
            events.append(ev.ProtocolNotice(text=f"share verdict for unknown channel {channel_id}"))
            return
        notice = channel.on_success(last_seq, count, now, events)
        if notice:
            events.append(ev.ProtocolNotice(text=notice))

    def on_error(self, msg: SubmitSharesError, now: float, events: Events) -> None:
        self.error(msg.channel_id, msg.sequence_number, msg.error_code, now, events)

    def error(self, channel_id: int, seq: int, code: str, now: float, events: Events) -> None:
        """SubmitShares.Error, from its fields (see ``success``)."""
        channel = self._channels.get(channel_id)
        verdict = None if channel is None else channel.on_error(seq, code, now)
        if verdict is None:
            events.append(
                ev.ProtocolNotice(
                    text=f"SubmitShares.Error {code!r} for channel {channel_id} "
                    f"sequence {seq}, which is not waiting (late or unknown)"
                )
            )
            return
        events.append(verdict)

    def on_close(self, msg: CloseChannel, now: float, events: Events) -> None:
        for channel in self._members(msg.channel_id, "CloseChannel", events):
            self.remove(channel.channel_id)
            events.extend(channel.drop_pending(now, f"pool closed the channel: {msg.reason_code}"))
            events.append(
                ev.ChannelClosed(channel_id=channel.channel_id, reason_code=msg.reason_code)
            )

    def on_endpoint_changed(self, msg: ChannelEndpointChanged, now: float, events: Events) -> None:
        for channel in self._members(msg.channel_id, "ChannelEndpointChanged", events):
            events.extend(channel.drop_pending(now, "pool changed the channel's endpoint"))
            events.append(ev.EndpointChanged(channel_id=channel.channel_id))

    def on_group(self, msg: SetGroupChannel, now: float, events: Events) -> None:
        self._groups[msg.group_channel_id] = set(msg.channel_ids)
        for channel_id in msg.channel_ids:
            if channel_id in self._channels:
                self._channels[channel_id].group_channel_id = msg.group_channel_id
