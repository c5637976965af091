"""Zones the secondary may have lost, kept until we know whether it did.

The secondary acknowledges a write once it has applied it (pwrite into its page cache);
it is durable there only after the next replicated fsync. When the stream breaks, the
zones the primary's activity log holds or retired lately (``ActivityLog.recent``: the
last 1024 zones written) are therefore *in doubt* on the
peer -- but only if the peer's machine went down since: an agent that was killed leaves
the page cache, hence the data, intact. So instead of marking those zones dirty (which
resent up to the whole activity log, 1 GiB, after every secondary outage), the primary
records them here with the peer's kernel boot id, and at the next resync-begin:

- the peer reports the same kernel boot id -> its page cache survived: forget them;
- another one, or none -> its machine restarted: they join the resync (``take``).

The record is one small JSON file, replaced atomically (write, fsync, rename).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path

from node_agent.replication.tracking.zones import ChangeSet

KERNEL_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def kernel_boot_id(path: Path = KERNEL_BOOT_ID) -> str | None:
    """This machine's boot id (changes with every boot of the kernel); None if unknown."""
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


class PeerDoubt:
    def __init__(self, path: Path, zone_size: int) -> None:
        self.path, self.zone_size = Path(path), zone_size
        self._lock = threading.Lock()

    def _read(self) -> tuple[ChangeSet, str | None]:
        try:
            raw = json.loads(self.path.read_text())
            return ChangeSet.from_dict(raw["changes"]), raw["kernel"]
        except FileNotFoundError:
            return ChangeSet(self.zone_size), None
        except (OSError, ValueError, KeyError, TypeError) as e:  # unreadable: resend all
            raise OSError(f"peer-doubt record {self.path} unreadable: {e}") from e

    def add(self, changes: ChangeSet, peer_kernel: str | None) -> None:
        """Record ``changes`` as in doubt on a peer whose kernel is ``peer_kernel``. A
        record for another kernel id (or none) keeps its zones and loses its id."""
        with self._lock:
            old, kernel = self._read()
            if not old.is_empty() and kernel != peer_kernel:
                peer_kernel = None  # mixed: trust no id, resend them all
            merged = old.merge(changes)
            tmp = self.path.with_suffix(".tmp")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w") as fh:
                json.dump({"kernel": peer_kernel, "changes": merged.to_dict()}, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)

    def take(self, peer_kernel: str | None) -> ChangeSet | None:
        """At resync-begin with the peer's kernel id: the zones it may have lost, empty if
        its page cache survived, None if there is no record. The caller marks them, then
        calls ``forget``. Raises OSError if the record cannot be read."""
        with self._lock:
            changes, kernel = self._read()
            if changes.is_empty():
                return None
            lost = kernel is None or peer_kernel is None or kernel != peer_kernel
            return changes if lost else ChangeSet(self.zone_size)

    def forget(self) -> None:
        with self._lock, contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
