"""One module's secondary role on one node: what the node's StreamReceiver talks to.

``become`` / ``leave`` (quick: fine on the event loop); the receiver calls ``applier()``
(resolve: a fresh CopyApplier while SECOND here, else None) and ``handle_request(payload)``
(the resync requests, in its apply thread). An applier handed out earlier refuses every
op once the role has moved on (the epoch changed), so a lingering stream applies nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from node_agent.replication import ops
from node_agent.replication.local.apply import NEEDS_NAME, Applier, NotServing, UnsafePath
from node_agent.replication.ops import Op, op_paths
from node_agent.replication.resync import requests as rq
from node_agent.replication.resync.server import ResyncServer
from node_agent.replication.tracking.activity_log import ActivityLog
from node_agent.replication.tracking.bitmap import ZoneBitmap


class CopyApplier(Applier):
    """The Applier the receiver gets for a module's copy root, whose paths are "I/...": on
    top of the Applier's checks, the first component must be one of the module's
    directories, which themselves are never written, created, removed or renamed; and once
    the module has left SECOND here (``live()`` false) it refuses every op, so a lingering
    stream applies nothing."""

    def __init__(
        self, root: Path, tops: Iterable[str], live: Callable[[], bool], early_flush: bool = True
    ) -> None:
        super().__init__(root, early_flush=early_flush)
        self._tops, self._live = frozenset(tops), live

    def validate(self, op: Op) -> None:
        if not self._live():
            raise NotServing("the module is no longer SECOND on this node")
        super().validate(op)
        for path in op_paths(op):
            if isinstance(op, ops.Fsync) and path == "":
                continue  # syncfs of the copy's filesystem
            top = path.split("/", 1)[0]
            if top not in self._tops:
                raise UnsafePath(f"path {path!r} is not under a replicated directory")
            if path == top and isinstance(op, NEEDS_NAME):
                raise UnsafePath(f"{type(op).__name__} cannot target directory root {path!r}")


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
