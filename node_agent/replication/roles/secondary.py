"""One module's secondary role on one node: what the node's StreamReceiver talks to.

``become`` / ``leave`` (quick: fine on the event loop); the receiver calls ``applier()``
(resolve: a fresh CopyApplier while SECOND here, else None) and ``handle_request(payload)``
(the resync requests, in its apply thread). An applier handed out earlier refuses every
op once the role has moved on (the epoch changed), so a lingering stream applies nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from node_agent.replication.local.apply import Applier
from node_agent.replication.resync import requests as rq
from node_agent.replication.resync.server import CopyApplier, ResyncServer
from node_agent.replication.tracking.activity_log import ActivityLog
from node_agent.replication.tracking.bitmap import ZoneBitmap


class SecondarySide:
    def __init__(
        self, copy_root: Path, tops: Sequence[str], bitmap: ZoneBitmap, activity: ActivityLog,
        on_done: Callable[[rq.Done], None], kernel: str | None, early_flush: bool = True,
    ) -> None:  # fmt: skip
        self.copy_root, self.tops = copy_root, list(tops)
        self._early_flush = early_flush
        self._on_done = on_done
        self._mu = threading.Lock()
        self.active = False
        self.history: tuple[str, ...] = ()
        self._epoch = 0
        self._server = ResyncServer(
            copy_root, tops, bitmap, activity, on_done=self._done, kernel=kernel,
            generation=lambda: self.history[-1] if self.history else None,
        )  # fmt: skip

    def become(self, history: tuple[str, ...]) -> None:
        with self._mu:
            self.history, self.active = tuple(history), True
            self._epoch += 1

    def leave(self) -> None:
        with self._mu:
            self.active = False
            self._epoch += 1

    def applier(self) -> Applier | None:
        with self._mu:
            if not self.active:
                return None
            epoch = self._epoch
        live = lambda: self.active and self._epoch == epoch  # noqa: E731
        return CopyApplier(self.copy_root, self.tops, live, self._early_flush)

    def handle_request(self, payload: bytes) -> bytes:
        if not self.active:
            raise RuntimeError("this node is not SECOND for the module")
        return self._server.handle(payload)

    def _done(self, done: rq.Done) -> None:
        with self._mu:
            self.history = done.history
        self._on_done(done)
