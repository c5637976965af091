"""The persistent change record of a module running ALONE (DESIGN §5, "Change tracking").

``mark(op)`` returns only once what the operation changed is durable, so the write
it precedes may be acknowledged: the in-memory ChangeSet says whether the op adds
anything (a new zone, a new path); if not, no I/O at all -- except waiting for
another thread's fdatasync that covers the same zone (group commit). New changes
are one JSON record appended to a journal and fdatasync'ed; every `compact_every`
records the whole set is rewritten as an atomic snapshot.

`base_generation` is the generation both nodes shared when tracking started: a
returning node may be resynced from this bitmap only if its latest generation
equals it (otherwise fall back to hash comparison).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from pathlib import Path

from node_agent.replication.ops import Op
from node_agent.replication.tracking.journal import Journal
from node_agent.replication.tracking.zones import DEFAULT_ZONE_SIZE, ChangeSet, check_zone_size


class ZoneBitmap:
    def __init__(
        self,
        directory: Path,
        zone_size: int = DEFAULT_ZONE_SIZE,
        *,
        compact_every: int = 4096,
        name: str = "bitmap",
    ) -> None:
        self.directory = Path(directory)
        self._configured_zone_size = check_zone_size(zone_size)
        self._compact_every = max(1, compact_every)
        self._journal = Journal(self.directory, name)
        self._lock = threading.Lock()
        self._changes = ChangeSet(zone_size)
        self._base: str | None = None
        self._loaded = False
        self._failed = False

    # -- reading -----------------------------------------------------------------------
    def load(self) -> ChangeSet:
        """(Re)read the store: after a crash, every acknowledged mark is in the result.

        Raises JournalError if the snapshot is corrupt (then the record is not
        trustworthy: resync must compare hashes). A stored zone size wins over the
        configured one until the next clear().
        """
        with self._lock:
            self._load_locked()
            return self._changes.copy()

    def _load_locked(self) -> None:
        self._journal.close()
        snapshot, records = self._journal.open()
        if snapshot is None:
            changes, base = ChangeSet(self._configured_zone_size), None
        else:
            raw = json.loads(snapshot)
            changes, base = ChangeSet.from_dict(raw["changes"]), raw["base_generation"]
        for record in records:
            for mutation in json.loads(record):
                changes.apply(mutation)
        self._changes, self._base = changes, base
        self._loaded, self._failed = True, False

    def changes(self) -> ChangeSet:
        """A copy of everything marked since the last clear()."""
        with self._lock:
            if not self._loaded:
                self._load_locked()
            return self._changes.copy()

    @property
    def base_generation(self) -> str | None:
        """None until the first clear(): such a bitmap never justifies a partial resync."""
        with self._lock:
            if not self._loaded:
                self._load_locked()
            return self._base

    @property
    def zone_size(self) -> int:
        return self._changes.zone_size

    # -- writing -----------------------------------------------------------------------
    def mark(self, op: Op) -> None:
        """Record `op`; durable before returning whenever it added something."""
        self.mark_many((op,))

    def mark_many(self, ops: Iterable[Op]) -> None:
        with self._lock:
            if not self._loaded:
                self._load_locked()
            if self._failed:
                self._recover()
            mutations = []
            for op in ops:
                mutations.extend(self._changes.record(op))
            if not mutations:
                seq = self._journal.last_seq  # maybe another thread's record still syncing
            else:
                try:
                    if self._journal.records + 1 >= self._compact_every:
                        self._compact()  # the snapshot holds this op too, durably
                        return
                    seq = self._journal.append([json.dumps(mutations).encode()])
                except OSError:
                    self._failed = True
                    self._recover()
                    return
        try:
            self._journal.wait_durable(seq)
        except OSError:
            with self._lock:
                self._failed = True
                self._recover()

    def clear(self, base_generation: str, seed: ChangeSet | None = None) -> None:
        """Atomically start tracking afresh from `base_generation`.

        `seed` (e.g. the zones of this node's activity log after a crash) starts
        the new record, so that zones possibly in flight are resynced too.
        """
        with self._lock:
            changes = ChangeSet(self._configured_zone_size)
            if seed is not None:
                changes.merge(seed)
            self._changes, self._base = changes, base_generation
            self._loaded = True
            self._compact()
            self._failed = False

    def compact(self) -> None:
        """Fold the journal into a fresh snapshot now."""
        with self._lock:
            if not self._loaded:
                self._load_locked()
            self._compact()

    def _compact(self) -> None:
        raw = {"base_generation": self._base, "changes": self._changes.to_dict()}
        self._journal.rewrite(json.dumps(raw).encode())

    def _recover(self) -> None:
        """After a failed write or fdatasync, only a full durable snapshot restores trust.

        Raises OSError (the caller's write must then fail) if that fails too.
        """
        if not self._failed:
            return
        self._compact()
        self._failed = False

    @property
    def pending_records(self) -> int:
        """Journal records since the last snapshot (for tests and metrics)."""
        return self._journal.records

    def close(self) -> None:
        with self._lock:
            self._journal.close()
            self._loaded = False
