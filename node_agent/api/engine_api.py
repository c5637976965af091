"""What the gRPC servicer needs from a running agent (implemented by node_agent.engine).

The servicer translates between this interface and the proto messages; it holds
no cluster logic of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from protos import mirrorpair_pb2 as pb


@dataclass(frozen=True)
class CommandOutcome:
    accepted: bool
    message: str


class DigestRefused(Exception):
    """Why the engine will not digest a module; the servicer maps each subclass to a code."""


class UnknownModule(DigestRefused):  # NOT_FOUND
    pass


class NoReplicatedDirectories(DigestRefused):  # FAILED_PRECONDITION
    pass


class BadDigestRequest(DigestRefused):  # INVALID_ARGUMENT (zone size, hash algorithm)
    pass


class EngineApi(Protocol):
    def status(self) -> pb.NodeStatus:
        """A full snapshot of this node, its links and every module."""

    def watch(self, log_level: str = "") -> AsyncIterator[pb.StatusEvent]:
        """A snapshot at once, then one event per change (and at least every few seconds)."""

    async def command(
        self, module: str, command: pb.Command, who: str, fullsync: bool = False
    ) -> CommandOutcome:
        """Run an admin command; returns once it is accepted or refused (not finished)."""

    def logs(self, module: str, limit: int, min_level: str, text: str) -> list[pb.LogEntry]:
        """Newest last."""

    def config_text(self) -> tuple[str, int, str]:
        """(toml text, version, path)."""

    async def adopt_vm(self, request: pb.AdoptVmRequest) -> pb.AdoptVmReply:
        """Plan (dry run) or carry out an adoption; raises AdoptRefused (why it cannot)
        or ResourceError (libvirt unreachable, a move failed)."""

    async def list_vms(self, uri: str = "") -> list[pb.VmInfo]:
        """The domains this node's libvirt knows. Raises ResourceError (its message says
        why) when libvirt cannot be reached."""

    def digest(
        self, module: str, zone_size: int = 0, algorithm: str = ""
    ) -> AsyncIterator[pb.DigestChunk]:
        """Zone hashes of the module's local copy: a header chunk at once, then files.

        Raises a ``DigestRefused`` subclass (before the header) when it cannot."""
