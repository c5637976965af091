"""Typed events the client layer emits (one callback, in the event loop's thread)."""

from __future__ import annotations

from dataclasses import dataclass

from protos import mirrorpair_pb2 as pb


@dataclass(frozen=True)
class NodeSnapshot:
    """A full status of one node (every change, and periodically)."""

    cluster: str
    node_id: str
    status: pb.NodeStatus
    received: float  # console clock, time.time()


@dataclass(frozen=True)
class NodeUnreachable:
    """The node does not answer (refused, TLS failure, timeout, stream broken)."""

    cluster: str
    node_id: str
    reason: str
    since: float


@dataclass(frozen=True)
class LogEntries:
    cluster: str
    node_id: str
    entries: tuple[pb.LogEntry, ...]
    history: bool  # True: read with GetLogs on (re)connect, may repeat known entries


@dataclass(frozen=True)
class CommandResult:
    cluster: str
    node_id: str
    module: str
    command: int  # pb.Command
    request_id: int
    accepted: bool
    message: str
    delivered: bool = True  # False: the agent was never reached (message says why)


ClientEvent = NodeSnapshot | NodeUnreachable | LogEntries | CommandResult
