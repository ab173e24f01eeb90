"""How the translator follows its SV2 channels (split out of core.py).

Channel opened -> miners get their extranonce space; job -> notify; target ->
set_difficulty plus the current job again (SV1 difficulty applies to the next
notify); prefix change -> set_extranonce where the miner subscribed to it,
else the miner is closed so it reconnects with its new extranonce1.
"""

from __future__ import annotations

from collections.abc import Callable

from stratum_proxy.sv2 import client_events as cev
from stratum_proxy.sv2.client import Sv2Client
from stratum_proxy.sv2.jobs import InvalidJobError
from stratum_proxy.sv2.settings import Sv2Settings
from stratum_proxy.translate import events as tev
from stratum_proxy.translate.channels import Channel, Miner
from stratum_proxy.translate.jobs import translate_job
from stratum_proxy.translate.sv1_downstream import Sv1Downstream


class PoolEventHandlers:
    """Mixed into Translator, which owns the state declared here."""

    client: Sv2Client
    settings: Sv2Settings
    aggregated: bool
    max_jobs: int
    miners: dict[int, Miner]
    channels: dict[int, Channel]
    _opening: dict[int, list[int]]
    _aggregate_request: int | None
    _orphan_channels: set[int]
    _events: list[tev.TranslateEvent]
    _dirty: set[int]

    def _on_opened(self, event: cev.ChannelOpened, now: float) -> None:
        waiting = self._opening.pop(event.request_id, [])
        wanted = self.settings.extranonce2_size
        local_size = event.extranonce_size - wanted
        if self.aggregated:
            self._aggregate_request = None
        need = self.settings.aggregated_local_bytes if self.aggregated else 0
        if local_size < need:
            reason = (
                f"pool granted {event.extranonce_size} extranonce bytes, {wanted + need} needed"
            )
            self.client.close_channel(event.channel_id, "extranonce too small", now)
            self._fail_waiting(waiting, reason)
            return
        channel = Channel(
            channel_id=event.channel_id,
            prefix=event.extranonce_prefix,
            extranonce_size=event.extranonce_size,
            local_size=local_size,
            target=event.target,
            max_jobs=self.max_jobs,
        )
        self.channels[event.channel_id] = channel
        for miner_id in waiting:
            miner = self.miners.get(miner_id)
            if miner is not None:
                self._attach(miner, channel)
        if not self.aggregated and not waiting:
            self._orphan_channels.add(event.channel_id)

    def _fail_waiting(self, miner_ids: list[int], reason: str) -> None:
        self._events.append(tev.Notice(level="error", text=reason))
        for miner_id in miner_ids:
            self._events.append(tev.CloseMiner(miner_id=miner_id, reason=reason))

    def _attach(self, miner: Miner, channel: Channel) -> None:
        local = channel.attach(miner, aggregated=self.aggregated)
        if local is None:
            reason = f"aggregated channel {channel.channel_id} has no free extranonce slot"
            self._events.append(tev.CloseMiner(miner_id=miner.miner_id, reason=reason))
            return
        subscribed = miner.session.assign(channel.prefix + local, self.settings.extranonce2_size)
        self._dirty.add(miner.miner_id)
        if subscribed is not None:
            self._welcome(miner)

    def _welcome(self, miner: Miner) -> None:
        """After the subscribe answer: the channel's difficulty, then its current job."""
        channel = self.channels.get(miner.channel_id) if miner.channel_id is not None else None
        if channel is None:
            return
        miner.session.send_difficulty(channel.difficulty)
        if channel.current is not None:
            miner.session.send_notify(channel.current.notify_params(clean=True))
        self._dirty.add(miner.miner_id)

    def _on_job(self, event: cev.JobActivated) -> None:
        channel = self.channels.get(event.channel_id)
        if channel is None:
            return
        try:
            job = translate_job(event.job, event.prev_hash, channel.prefix, channel.target)
        except InvalidJobError as exc:
            self._events.append(tev.Notice(level="warning", text=f"unusable job: {exc}"))
            return
        channel.add_job(job)
        self._broadcast(channel, lambda s: s.send_notify(job.notify_params(event.clean)))

    def _on_target(self, event: cev.TargetChanged) -> None:
        channel = self.channels.get(event.channel_id)
        if channel is None:
            return
        channel.target = event.target
        current = channel.retarget_current()
        self._broadcast(channel, lambda s: s.send_difficulty(channel.difficulty))
        if current is not None:
            # SV1 difficulty applies to the next notify: resend the job under it.
            self._broadcast(channel, lambda s: s.send_notify(current.notify_params(False)))

    def _on_prefix(self, event: cev.ExtranoncePrefixChanged) -> None:
        channel = self.channels.get(event.channel_id)
        if channel is None:
            return
        channel.prefix = event.extranonce_prefix
        for miner_id in list(channel.miners):
            miner = self.miners[miner_id]
            if miner.session.extranonce_subscribed:
                size = self.settings.extranonce2_size
                miner.session.send_set_extranonce(channel.prefix + miner.local, size)
                self._dirty.add(miner_id)
            else:
                reason = "pool changed the extranonce prefix and the miner cannot follow"
                self._events.append(tev.CloseMiner(miner_id=miner_id, reason=reason))

    def _on_channel_closed(self, event: cev.ChannelClosed) -> None:
        channel = self.channels.pop(event.channel_id, None)
        self._orphan_channels.discard(event.channel_id)
        if channel is None:
            return
        reason = f"pool closed channel {event.channel_id}: {event.reason_code}"
        for miner_id in list(channel.miners):
            self._events.append(tev.CloseMiner(miner_id=miner_id, reason=reason))

    def _broadcast(self, channel: Channel, send: Callable[[Sv1Downstream], None]) -> None:
        for miner_id in channel.miners:
            miner = self.miners.get(miner_id)
            if miner is not None and miner.session.subscribed:
                send(miner.session)
                self._dirty.add(miner_id)
