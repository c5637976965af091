"""A Replicator (node_agent/replication/replicator.py) without a network, for FUSE tests
and benchmarks: every op handed over is applied to a second directory by an Applier (the
secondary's code path), or only logged without one. ``threaded``: a sender thread applies
the ops in the order they were submitted and each wait blocks until its op is applied, as
with the real stream; otherwise ``submit`` applies the op itself."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from node_agent.replication import ops
from node_agent.replication.local.apply import Applier
from node_agent.replication.replicator import Prepared, Wait


def _no_failure(op: ops.Op) -> BaseException | None:
    return None


class LocalReplicator:
    def __init__(self, applier: Applier | None = None, *, threaded: bool = False) -> None:
        self.applier = applier
        self.log: list[ops.Op] = []
        # ``fail(op)`` may return an exception: the op is not applied, its wait raises it
        self.fail: Callable[[ops.Op], BaseException | None] = _no_failure
        self.fenced = False
        self._queue: queue.SimpleQueue[tuple[ops.Op, threading.Event, list]] | None = None
        if threaded:
            self._queue = queue.SimpleQueue()
            threading.Thread(target=self._sender, daemon=True).start()

    def prepare(self, op: ops.Op) -> Prepared:
        return Prepared()

    def abandon(self, prepared: Prepared) -> None:
        pass

    def submit(
        self, op: ops.Op, prepared: Prepared | None = None, background: bool = False
    ) -> Wait:
        if self._queue is None:
            return _settled(self._apply(op))
        done, error = threading.Event(), []
        self._queue.put((op, done, error))

        def wait() -> None:
            done.wait()
            _settled(error[0])()

        return wait

    def _apply(self, op: ops.Op) -> BaseException | None:
        try:
            exc = self.fail(op)
            if exc is not None:
                return exc
            self.log.append(op)
            if self.applier is not None:
                self.applier.apply(op)
        except BaseException as e:
            return e
        return None

    def _sender(self) -> None:
        assert self._queue is not None
        while True:
            op, done, error = self._queue.get()
            error.append(self._apply(op))
            done.set()


def _settled(error: BaseException | None) -> Wait:
    def wait() -> None:
        if error is not None:
            raise error

    return wait
