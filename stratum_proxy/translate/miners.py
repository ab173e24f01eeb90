"""The SV1 miners of one translator, and which of them are owed bytes.

Every part of the translator that writes to a miner's session calls ``owe``;
the translator collects those bytes once per input with ``take_output``, so a
miner gets one write per input however many lines it was sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from stratum_proxy.sv1.downstream import Sv1Downstream
from stratum_proxy.translate import events as tev
from stratum_proxy.translate.channels import Channel, Miner


class Miners:
    def __init__(self) -> None:
        self._by_id: dict[int, Miner] = {}
        self._owed: set[int] = set()

    def __contains__(self, miner_id: object) -> bool:
        return miner_id in self._by_id

    def __iter__(self) -> Iterator[int]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, miner_id: int) -> Miner | None:
        return self._by_id.get(miner_id)

    def add(self, miner: Miner) -> None:
        self._by_id[miner.miner_id] = miner

    def pop(self, miner_id: int) -> Miner | None:
        return self._by_id.pop(miner_id, None)

    def owe(self, miner_id: int) -> None:
        """The miner's session has (or may have) bytes to send."""
        self._owed.add(miner_id)

    def broadcast(self, channel: Channel, send: Callable[[Sv1Downstream], None]) -> None:
        """Write to every subscribed miner on ``channel``."""
        for miner_id in channel.miners:
            miner = self._by_id.get(miner_id)
            if miner is not None and miner.session.subscribed:
                send(miner.session)
                self._owed.add(miner_id)

    def take_output(self, out: list[tev.TranslateEvent]) -> None:
        """Append one SendToMiner per miner owed bytes; a miner that left gets nothing."""
        for miner_id in self._owed:
            miner = self._by_id.get(miner_id)
            if miner is not None:
                data = miner.session.data_to_send()
                if data:
                    out.append(tev.SendToMiner(miner_id=miner_id, data=data))
        self._owed.clear()
