"""The agents' WatchStatus streams, merged for the CLI (`log --follow`, `swap --wait`).

One thread per agent reads its stream into a shared queue and dials again when it
breaks (agent restarted, link down), so a follower outlives a failover. The stream
carries a full status snapshot per change (and at least every few seconds) plus the
log entries logged since the previous event: nothing else of the API is needed.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import grpc

from node_agent.cli.client import AgentClient, AgentClientError, AgentUnavailable
from protos import mirrorpair_pb2 as pb

KEEPALIVE_S = 2.0  # the agent sends a snapshot at least this often
RETRY_S = 1.0  # pause before dialling a broken stream again


@dataclass
class Update:
    """A StatusEvent from ``node``, or ``error`` when its stream broke (it is re-dialled)."""

    node: str
    event: pb.StatusEvent | None = None
    error: AgentClientError | None = None


class ClusterWatch:
    """WatchStatus of each client, re-dialled when broken; read with ``get()``.

    A stream silent for ``idle_s`` (three missed keepalives by default) is cancelled
    and reported, as a hung agent would never end it by itself."""

    def __init__(
        self,
        clients: Mapping[str, AgentClient],
        log_level: str = "",
        keepalive_s: float = KEEPALIVE_S,
        idle_s: float = 0.0,
    ) -> None:
        self._clients = dict(clients)
        self._level, self._keepalive = log_level, keepalive_s
        self._idle = idle_s or 3 * keepalive_s + 2
        self._queue: queue.Queue[Update] = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._calls: dict[str, object] = {}
        self._last: dict[str, float] = {}
        self._threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True, name=f"watch-{n}")
            for n in self._clients
        ]

    def __enter__(self) -> ClusterWatch:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            for call in self._calls.values():
                call.cancel()  # type: ignore[attr-defined]

    def get(self, timeout: float) -> Update | None:
        """The next update, or None after ``timeout`` seconds without one."""
        self._cancel_idle()
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def _cancel_idle(self) -> None:
        now = time.monotonic()
        with self._lock:
            for node, call in self._calls.items():
                if now - self._last.get(node, now) > self._idle:
                    self._last[node] = now  # once per silence
                    call.cancel()  # type: ignore[attr-defined]

    def _run(self, node: str) -> None:
        client = self._clients[node]
        while not self._stop.is_set():
            call = client.watch(self._level, self._keepalive)
            with self._lock:
                self._calls[node] = call
                self._last[node] = time.monotonic()
            if self._stop.is_set():
                call.cancel()
            error: AgentClientError
            heard = False
            try:
                for event in call:
                    heard = True
                    self._last[node] = time.monotonic()
                    self._queue.put(Update(node, event=event))
                error = AgentUnavailable(
                    node, client.address, "the agent ended the stream (shutting down?)"
                )
            except grpc.RpcError as e:
                if self._stop.is_set():
                    return
                silent = e.code() == grpc.StatusCode.CANCELLED if hasattr(e, "code") else False
                if silent:
                    detail = f"no update for {self._idle:g}s (agent hung, or traffic dropped)"
                    error = AgentUnavailable(node, client.address, detail)
                elif heard and e.code() == grpc.StatusCode.UNAVAILABLE:
                    # It had answered (TLS was fine): it went away, whatever grpc guesses.
                    detail = "the connection broke (agent stopped or restarted, or link down)"
                    error = AgentUnavailable(node, client.address, detail)
                else:
                    error = client.error(e)
            finally:
                with self._lock:
                    self._calls.pop(node, None)
            self._queue.put(Update(node, error=error))
            self._stop.wait(RETRY_S)
