"""Zone hashes of a module's local copy, for `mirrorpair verify` (the DigestModule RPC).

Everything that touches the disk (the tree walk, the hashing) runs in a worker thread
through ``asyncio.to_thread``, one bounded step at a time, so the agent's event loop
(heartbeats, the decision loop) never waits on the disk. Results are streamed in chunks
small enough for gRPC's default 4 MiB message cap; a big file's hashes are split over
several ``FileDigest`` messages (continuations carry ``first_zone``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from node_agent.api.engine_api import BadDigestRequest, NoReplicatedDirectories, UnknownModule
from node_agent.core.states import State
from node_agent.replication.local.scan import (
    DIR,
    FILE,
    OTHER,
    PREFERRED_HASHES,
    SYMLINK,
    Listing,
    available_hashes,
    scan_tree,
    zone_hashes,
)
from node_agent.replication.tracking.zones import DEFAULT_ZONE_SIZE, zone_count
from protos import mirrorpair_pb2 as pb

if TYPE_CHECKING:
    from node_agent.engine.module_driver import ModuleDriver

KIND_NAMES = {FILE: "file", DIR: "dir", SYMLINK: "symlink", OTHER: "other"}
MIN_ZONE_SIZE = 4096
MAX_ZONE_SIZE = 1 << 30
CHUNK_BYTES = 1 << 20  # serialized size per chunk: well under gRPC's 4 MiB default
# Work per worker-thread step: bounds how long a cancelled digest keeps the disk busy.
STEP_BYTES = 64 << 20
STEP_ENTRIES = 2000
STEP_SECONDS = 0.5
# A chunk (possibly empty) at least this often, so a client can tell slow from hung.
CHUNK_INTERVAL_S = 2.0


def best_hash() -> str:
    """The algorithm this agent proposes when the client leaves the choice to it."""
    have = available_hashes()
    return next(a for a in (*PREFERRED_HASHES, *have) if a in have)


def resolve_request(zone_size: int, algorithm: str) -> tuple[int, str]:
    """(zone size, algorithm) to use, or BadDigestRequest saying why not."""
    zone_size = zone_size or DEFAULT_ZONE_SIZE
    if zone_size & (zone_size - 1) or not MIN_ZONE_SIZE <= zone_size <= MAX_ZONE_SIZE:
        raise BadDigestRequest(
            f"zone size must be a power of two between {MIN_ZONE_SIZE} and {MAX_ZONE_SIZE}, "
            f"got {zone_size}"
        )
    algorithm = algorithm or best_hash()
    if algorithm not in available_hashes():
        raise BadDigestRequest(
            f"hash algorithm {algorithm!r} is not available on this node "
            f"(available: {', '.join(available_hashes())})"
        )
    return zone_size, algorithm


def state_note(state: State, running: bool) -> str:
    """Why this copy may legitimately differ from the peer's right now."""
    if state.is_primary or running:
        return (
            f"{state.name.lower()}: the application may be writing; "
            "differences in files being written are expected"
        )
    if state is State.SECOND:
        return "secondary: replicated writes may be in flight"
    return f"{state.name.lower()}: the application is not running here"


class Digester:
    """The synchronous walk: ``step()`` does a bounded amount of scanning and hashing and
    returns the FileDigest messages it produced, or None once everything was sent."""

    def __init__(self, roots: Sequence[Path], zone_size: int, algorithm: str) -> None:
        self.roots = [Path(r) for r in roots]
        self.zone_size, self.algorithm = zone_size, algorithm
        self._index = -1  # directory being walked
        self._listing: Listing = {}
        self._paths: list[str] = []
        self._pos = 0  # next path in _paths
        self._zone = 0  # next zone of the file at _pos

    def step(self) -> list[pb.FileDigest] | None:
        out: list[pb.FileDigest] = []
        budget, deadline = STEP_BYTES, time.monotonic() + STEP_SECONDS
        while len(out) < STEP_ENTRIES and budget > 0 and time.monotonic() < deadline:
            if self._pos >= len(self._paths):
                if self._index + 1 >= len(self.roots):
                    return out or None
                self._next_directory()
                continue
            budget -= self._one(out, budget)
        return out

    def _next_directory(self) -> None:
        self._index += 1
        try:
            self._listing = scan_tree(self.roots[self._index])
        except (FileNotFoundError, NotADirectoryError):
            self._listing = {}  # no local copy: the peer's entries show as missing here
        self._paths = sorted(self._listing)
        self._pos = self._zone = 0

    def _one(self, out: list[pb.FileDigest], budget: int) -> int:
        """Append the next entry (or the next piece of a big file); return bytes read."""
        e = self._listing[self._paths[self._pos]]
        first = self._zone
        if first == 0:
            msg = pb.FileDigest(
                directory=self._index,
                path=e.path,
                kind=KIND_NAMES[e.kind],
                size=e.size,
                mode=e.mode,
                uid=e.uid,
                gid=e.gid,
                target=e.target or "",
            )
        else:
            msg = pb.FileDigest(directory=self._index, path=e.path, first_zone=first)
        n = zone_count(e.size, self.zone_size) if e.kind == FILE else 0
        last = min(n, first + max(1, budget // self.zone_size))
        if first < last:
            zones = range(first, last)
            try:
                hashes = zone_hashes(
                    os.path.join(self.roots[self._index], e.path),
                    self.zone_size,
                    zones,
                    self.algorithm,
                )
            except OSError as exc:  # vanished, unreadable: say so rather than guess
                msg.error = f"{type(exc).__name__}: {exc.strerror or exc}"
                last = n
            else:
                for z in zones:
                    if z not in hashes:  # the file shrank meanwhile: the rest is unknown
                        last = n
                        break
                    msg.zone_hashes.append(hashes[z])
        out.append(msg)
        if last < n:
            self._zone = last
        else:
            self._pos, self._zone = self._pos + 1, 0
        return (last - first) * self.zone_size


async def digest_dirs(
    node_id: str,
    roots: Sequence[Path],
    zone_size: int = 0,
    algorithm: str = "",
    *,
    note: str = "",
    directories: Sequence[str] = (),
) -> AsyncIterator[pb.DigestChunk]:
    """Header chunk at once, then every entry of ``roots`` (sorted), then ``last``."""
    zone_size, algorithm = resolve_request(zone_size, algorithm)
    yield pb.DigestChunk(
        node_id=node_id,
        algorithm=algorithm,
        zone_size=zone_size,
        state_note=note,
        directories=list(directories),
    )
    digester = Digester(roots, zone_size, algorithm)
    chunk = pb.DigestChunk(node_id=node_id)
    size, sent_at = 0, time.monotonic()
    while (pieces := await asyncio.to_thread(digester.step)) is not None:
        for piece in pieces:
            piece_size = piece.ByteSize()
            if chunk.files and size + piece_size > CHUNK_BYTES:
                yield chunk
                chunk, size, sent_at = pb.DigestChunk(node_id=node_id), 0, time.monotonic()
            chunk.files.append(piece)
            size += piece_size + 4
        if time.monotonic() - sent_at >= CHUNK_INTERVAL_S:
            yield chunk
            chunk, size, sent_at = pb.DigestChunk(node_id=node_id), 0, time.monotonic()
    chunk.last = True
    yield chunk


async def digest_module(
    driver: ModuleDriver | None, module: str, zone_size: int = 0, algorithm: str = ""
) -> AsyncIterator[pb.DigestChunk]:
    """NodeEngine.digest: the module's copy of its I-th directory is <module dir>/copy/I."""
    if driver is None:
        raise UnknownModule(f"unknown module {module!r}")
    dirs = driver.cfg.directories
    if not dirs:
        raise NoReplicatedDirectories(f"module {module} has no replicated directories")
    roots = [driver.dir / "copy" / str(i) for i in range(len(dirs))]
    note = state_note(driver.machine.state, driver.running)
    chunks = digest_dirs(driver.node_id, roots, zone_size, algorithm, note=note, directories=dirs)
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        await chunks.aclose()
