"""The secondary's side of a resync (docs/replication.md, "Resync session").

``ResyncServer.handle(payload)`` answers the primary's REQUESTs (requests.py): ``begin``
(our latest generation, what our copy may hold beyond it -- activity log and bitmap -- and
our kernel boot id), ``list`` (our copy's tree, paged by encoded size), ``hashes``
(per-zone digests of one file) and ``done`` (the copy is complete: synced to disk, our
change record restarted from the primary's generation, then ``on_done`` -- all before the
reply goes out). It runs in the receiver's apply thread, in order with the ops around it,
so a listing or a hash sees every op before it.

Every path a request names is checked like the Applier does -- relative, no ``..``, under
one of the module's directories, no symlinked parent, a regular file -- and refused
(the REPLY carries FLAG_FAILED) otherwise; answering never changes the copy.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from node_agent.replication.local.apply import UnsafePath, check_syntax
from node_agent.replication.local.scan import available_hashes, scan_tree, zone_hashes
from node_agent.replication.local.syscalls import syncfs
from node_agent.replication.resync import requests as rq
from node_agent.replication.tracking.activity_log import ActivityLog
from node_agent.replication.tracking.bitmap import ZoneBitmap

PAGE_BYTES = 1 << 20  # a listing page: well under wire.MAX_PAYLOAD
_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class ResyncServer:
    def __init__(
        self, root: Path, tops: Iterable[str], bitmap: ZoneBitmap, activity: ActivityLog, *,
        generation: Callable[[], str | None], on_done: Callable[[rq.Done], None],
        page_bytes: int = PAGE_BYTES, kernel: str | None = None,
    ) -> None:  # fmt: skip
        self.root, self._tops = Path(root), frozenset(tops)
        self._kernel = kernel
        self._bitmap, self._activity = bitmap, activity
        self._generation, self._on_done = generation, on_done
        self._page_bytes = page_bytes
        self._listing: list[str] | None = None  # entries as JSON, from the last scan
        self._lock = threading.Lock()

    def handle(self, payload: bytes) -> bytes:
        """The REPLY payload; raises (-> FLAG_FAILED) on a bad or refused request."""
        req = rq.decode_request(payload)
        with self._lock:
            if isinstance(req, rq.Begin):
                self._listing = None
                return rq.encode_reply(rq.BeginReply(
                    self._generation(), available_hashes(), self._own_changes(), self._kernel
                ))  # fmt: skip
            if isinstance(req, rq.ListPage):
                return self._page(req.start)
            if isinstance(req, rq.Hashes):
                return rq.encode_reply(rq.HashesReply(self._hashes(req)))
            assert isinstance(req, rq.Done)
            self._listing = None
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                syncfs(fd)  # "up to date" must survive a power cut
            finally:
                os.close(fd)
            self._bitmap.clear(req.generation)  # both nodes share this generation now
            self._activity.clear()
            self._on_done(req)
            return rq.encode_reply(rq.DoneReply())

    def _own_changes(self) -> dict | None:
        """What our copy may hold that the primary's lacks, since the generation we
        report: zones in flight when we last crashed as a primary (activity log) and what
        we tracked since, or applied but were fenced before acknowledging (bitmap). None
        (compare hashes) if either record is unreadable or the bitmap is of another
        generation."""
        try:
            mine = self._activity.load()
            if not self._bitmap.changes().is_empty():
                if self._bitmap.base_generation != self._generation():
                    return None
                mine.merge(self._bitmap.changes())
            return mine.to_dict()
        except (OSError, ValueError):
            return None

    def _page(self, start: int) -> bytes:
        if start == 0 or self._listing is None:
            tree = scan_tree(self.root)
            self._listing = [rq.entry_json(tree[p]) for p in sorted(tree)]
        if start > len(self._listing):
            raise ValueError(f"listing page at {start} is past the end ({len(self._listing)})")
        out, size, i = [], 0, start
        while i < len(self._listing) and (not out or size < self._page_bytes):
            out.append(self._listing[i])
            size += len(out[-1]) + 1
            i += 1
        return rq.encode_list_reply(out, i if i < len(self._listing) else None)

    def _hashes(self, req: rq.Hashes) -> dict[int, bytes]:
        try:
            fd = self._open_file(req.path)
        except FileNotFoundError:
            return {}  # we lack the file: every zone differs
        try:
            return zone_hashes(f"/proc/self/fd/{fd}", req.zone_size, req.zones, req.algo)
        finally:
            os.close(fd)

    def _open_file(self, rel: str) -> int:
        """An O_PATH fd of the regular file ``rel``, reached without following symlinks."""
        check_syntax(rel)
        parts = rel.split("/")
        if len(parts) < 2 or parts[0] not in self._tops:
            raise UnsafePath(f"path {rel!r} is not a file under a replicated directory")
        fd = os.open(self.root, _DIR)
        try:
            for comp in parts[:-1]:
                try:
                    nfd = os.open(comp, _DIR, dir_fd=fd)
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise UnsafePath(f"path {rel!r}: {comp!r} is not a directory") from None
                    raise
                os.close(fd)
                fd = nfd
            ffd = os.open(parts[-1], os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        finally:
            os.close(fd)
        if not stat.S_ISREG(os.fstat(ffd).st_mode):  # never open a device or a fifo
            os.close(ffd)
            raise UnsafePath(f"path {rel!r} is not a regular file")
        return ffd
