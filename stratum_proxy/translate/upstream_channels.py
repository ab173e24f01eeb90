"""The translator's extended channels: which miner mines where, and what pool events mean.

Placing miners (README, translate mode): ``per_miner`` opens one channel per
miner (extranonce1 = the channel's prefix, padded with zero bytes if the pool
granted more than ``extranonce2_size``); ``aggregated`` opens one channel for
all miners and gives each ``prefix ‖ local index`` (``aggregated_local_bytes``
wide), telling the pool the channel's hash rate when miners come and go.

Following the pool: channel opened -> the waiting miners get their extranonce
space; job -> notify; target -> set_difficulty plus the current job again (SV1
difficulty applies to the next notify); prefix change -> set_extranonce where
the miner subscribed to it, else the miner is closed so it reconnects with its
new extranonce1; channel closed -> its miners are closed.

Methods append what happened to ``out``; bytes for miners go through
``Miners.owe`` and bytes for the pool through the client.
"""

from __future__ import annotations

from stratum_proxy.sv2 import client_events as cev
from stratum_proxy.sv2.client import Sv2Client
from stratum_proxy.sv2.jobs import InvalidJobError
from stratum_proxy.sv2.settings import Sv2Settings
from stratum_proxy.translate import events as tev
from stratum_proxy.translate.channels import Channel, Miner
from stratum_proxy.translate.jobs import translate_job
from stratum_proxy.translate.miners import Miners

Out = list[tev.TranslateEvent]

# Aggregated mode tells the pool the channel's hash rate when miners come and
# go, at most this often (spec: UpdateChannel debounced to about 1/s).
_UPDATE_INTERVAL_S = 1.0


class UpstreamChannels:
    """Owned by the Translator; shares its ``Miners`` and its SV2 client."""

    def __init__(
        self, *, client: Sv2Client, settings: Sv2Settings, miners: Miners, max_jobs: int
    ) -> None:
        self._client = client
        self._settings = settings
        self._miners = miners
        self._max_jobs = max_jobs
        self._aggregated = settings.extranonce_mode == "aggregated"
        self._channels: dict[int, Channel] = {}
        self._opening: dict[int, list[int]] = {}  # request id -> miner ids waiting
        self._aggregate_request: int | None = None
        self._orphans: set[int] = set()  # per-miner channels whose miner left
        self._update_due: float | None = None

    def channel_of(self, miner: Miner) -> Channel | None:
        return None if miner.channel_id is None else self._channels.get(miner.channel_id)

    # --- miners coming and going ----------------------------------------------------

    def place(self, miner: Miner, now: float, out: Out) -> None:
        """Open the new miner's channel, or attach it to the aggregated one."""
        settings = self._settings
        if not self._aggregated:
            identity = f"{settings.user_identity or 'stratum-proxy'}.miner{miner.miner_id}"
            self._opening[self._open(identity, settings.extranonce2_size)] = [miner.miner_id]
            return
        channel = next(iter(self._channels.values()), None)
        if channel is not None:
            self._attach(miner, channel, out)
            self._update_due = self._update_due or now + _UPDATE_INTERVAL_S
            return
        if self._aggregate_request is None:
            identity = settings.user_identity or "stratum-proxy"
            size = settings.extranonce2_size + settings.aggregated_local_bytes
            self._aggregate_request = self._open(identity, size)
            self._opening[self._aggregate_request] = []
        self._opening[self._aggregate_request].append(miner.miner_id)

    def release(self, miner: Miner, now: float) -> None:
        """The miner left; its per-miner channel closes once its submits are answered."""
        channel = self.channel_of(miner)
        if channel is None:
            return
        channel.detach(miner)
        if self._aggregated:
            self._update_due = self._update_due or now + _UPDATE_INTERVAL_S
        else:
            self._orphans.add(channel.channel_id)
            self.close_drained(now)

    def welcome(self, miner: Miner) -> None:
        """After the subscribe answer: the channel's difficulty, then its current job."""
        channel = self.channel_of(miner)
        if channel is None:
            return
        miner.session.send_difficulty(channel.difficulty)
        if channel.current is not None:
            miner.session.send_notify(channel.current.notify_params(clean=True))
        self._miners.owe(miner.miner_id)

    def _open(self, identity: str, min_extranonce_size: int) -> int:
        return self._client.open_extended_channel(
            user_identity=identity,
            nominal_hash_rate=self._settings.nominal_hashrate_hs,
            min_extranonce_size=min_extranonce_size,
        )

    def _attach(self, miner: Miner, channel: Channel, out: Out) -> None:
        local = channel.attach(miner, aggregated=self._aggregated)
        if local is None:
            reason = f"aggregated channel {channel.channel_id} has no free extranonce slot"
            out.append(tev.CloseMiner(miner_id=miner.miner_id, reason=reason))
            return
        subscribed = miner.session.assign(channel.prefix + local, self._settings.extranonce2_size)
        self._miners.owe(miner.miner_id)
        if subscribed is not None:
            self.welcome(miner)

    # --- timers -------------------------------------------------------------------

    def next_update(self) -> float | None:
        return self._update_due

    def handle_timer(self, now: float) -> None:
        if self._update_due is None or self._update_due > now:
            return
        self._update_due = None
        for channel in self._channels.values():
            rate = max(1, len(channel.miners)) * self._settings.nominal_hashrate_hs
            self._client.update_channel(channel.channel_id, rate)

    def close_drained(self, now: float) -> None:
        """Close the channels of miners that left, once no submit on them waits."""
        for channel_id in list(self._orphans):
            client_channel = self._client.channels.get(channel_id)
            if client_channel is None or not client_channel.pending:
                self._orphans.discard(channel_id)
                self._channels.pop(channel_id, None)
                self._client.close_channel(channel_id, "miner disconnected", now)

    # --- pool events ------------------------------------------------------------------

    def on_opened(self, event: cev.ChannelOpened, now: float, out: Out) -> None:
        waiting = self._opening.pop(event.request_id, [])
        wanted = self._settings.extranonce2_size
        local_size = event.extranonce_size - wanted
        if self._aggregated:
            self._aggregate_request = None
        need = self._settings.aggregated_local_bytes if self._aggregated else 0
        if local_size < need:
            reason = (
                f"pool granted {event.extranonce_size} extranonce bytes, {wanted + need} needed"
            )
            self._client.close_channel(event.channel_id, "extranonce too small", now)
            self._fail_waiting(waiting, reason, out)
            return
        channel = Channel(
            channel_id=event.channel_id,
            prefix=event.extranonce_prefix,
            extranonce_size=event.extranonce_size,
            local_size=local_size,
            target=event.target,
            max_jobs=self._max_jobs,
        )
        self._channels[event.channel_id] = channel
        for miner_id in waiting:
            miner = self._miners.get(miner_id)
            if miner is not None:
                self._attach(miner, channel, out)
        if not self._aggregated and not waiting:
            self._orphans.add(event.channel_id)

    def on_open_failed(self, event: cev.ChannelOpenFailed, now: float, out: Out) -> None:
        reason = f"pool refused to open a channel: {event.error_code}"
        self._fail_waiting(self._opening.pop(event.request_id, []), reason, out)
        if event.request_id == self._aggregate_request:
            self._aggregate_request = None

    def _fail_waiting(self, miner_ids: list[int], reason: str, out: Out) -> None:
        out.append(tev.Notice(level="error", text=reason))
        for miner_id in miner_ids:
            out.append(tev.CloseMiner(miner_id=miner_id, reason=reason))

    def on_job(self, event: cev.JobActivated, now: float, out: Out) -> None:
        channel = self._channels.get(event.channel_id)
        if channel is None:
            return
        try:
            job = translate_job(event.job, event.prev_hash, channel.prefix, channel.target)
        except InvalidJobError as exc:
            out.append(tev.Notice(level="warning", text=f"unusable job: {exc}"))
            return
        channel.add_job(job)
        self._miners.broadcast(channel, lambda s: s.send_notify(job.notify_params(event.clean)))

    def on_target(self, event: cev.TargetChanged, now: float, out: Out) -> None:
        channel = self._channels.get(event.channel_id)
        if channel is None:
            return
        channel.target = event.target
        current = channel.retarget_current()
        self._miners.broadcast(channel, lambda s: s.send_difficulty(channel.difficulty))
        if current is not None:
            # SV1 difficulty applies to the next notify: resend the job under it.
            self._miners.broadcast(channel, lambda s: s.send_notify(current.notify_params(False)))

    def on_prefix(self, event: cev.ExtranoncePrefixChanged, now: float, out: Out) -> None:
        channel = self._channels.get(event.channel_id)
        if channel is None:
            return
        channel.prefix = event.extranonce_prefix
        for miner_id in list(channel.miners):
            miner = self._miners.get(miner_id)
            if miner is None:
                continue
            if miner.session.extranonce_subscribed:
                size = self._settings.extranonce2_size
                miner.session.send_set_extranonce(channel.prefix + miner.local, size)
                self._miners.owe(miner_id)
            else:
                reason = "pool changed the extranonce prefix and the miner cannot follow"
                out.append(tev.CloseMiner(miner_id=miner_id, reason=reason))

    def on_closed(self, event: cev.ChannelClosed, now: float, out: Out) -> None:
        channel = self._channels.pop(event.channel_id, None)
        self._orphans.discard(event.channel_id)
        if channel is None:
            return
        reason = f"pool closed channel {event.channel_id}: {event.reason_code}"
        for miner_id in list(channel.miners):
            out.append(tev.CloseMiner(miner_id=miner_id, reason=reason))
