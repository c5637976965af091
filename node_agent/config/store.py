"""The cluster configuration on a node's disk, the versions it ran before, and the
configuration changes prepared but not yet committed (DESIGN §7, issue 12 point 6).

On disk, next to the configuration file (``/etc/mirrorpair/cluster.toml``)::

    versions/cluster.v3.toml    the text of each version this node installed
    versions/cluster.v3.json    {"version": 3, "applied_at": unix time, "applied_by": cert}

Every file is written whole to a temporary name, fsynced, renamed over the old one and
its directory fsynced: a node that loses power or is killed mid-install finds either the
old or the new file, never a torn one. The texts hold the cluster secret: the files and
the directory are private to the agent (0600 / 0700).

Prepared changes live only in memory (``PendingTable``): an agent that restarts between
prepare and commit has forgotten the prepare, so the commit is refused and the console
starts over; it can never commit a version it did not check in this life.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from node_agent.config.model import ClusterConfig

KEEP_VERSIONS = 50  # older kept versions are deleted (the running one never)
PENDING_TTL_S = 120.0  # a prepare not committed within this is forgotten


@dataclass(frozen=True)
class VersionInfo:
    version: int
    applied_at: float  # unix time it was installed on this node (0 unknown)
    applied_by: str  # the certificate that committed it ("" before the API, by hand)
    running: bool = False


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` by ``data`` so that a crash leaves the old or the new content.
    The temporary file is this process's own: two agents on one machine (the demo) may
    share the folder and write the same version at once."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # an old tmp file may have had other bits
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)  # the data is on disk before the name points at it
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dirfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dirfd)  # the rename itself is durable
    finally:
        os.close(dirfd)


def _alive(tmp_name: str) -> bool:
    """Whether the process that writes this tmp file (``.NAME.PID.tmp``) still runs."""
    pid = tmp_name.rsplit(".", 2)[-2]
    return pid.isdigit() and Path(f"/proc/{pid}").exists()


class ConfigStore:
    """The configuration file at ``path`` and the versions kept beside it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.dir = self.path.parent / "versions"
        self._name_re = re.compile(rf"{re.escape(self.path.stem)}\.v(\d+)\.toml")
        # A killed install leaves its tmp file: remove those of processes gone (the folder
        # is shared: /etc/..., or two demo agents).
        for folder, pattern in ((self.path.parent, f".{self.path.name}.*tmp"),
                                (self.dir, ".*.tmp")):  # fmt: skip
            for stale in folder.glob(pattern) if folder.is_dir() else ():
                if not _alive(stale.name):
                    stale.unlink(missing_ok=True)

    def _text_path(self, version: int) -> Path:
        return self.dir / f"{self.path.stem}.v{version}.toml"

    def _meta_path(self, version: int) -> Path:
        return self.dir / f"{self.path.stem}.v{version}.json"

    def running_text(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def install(self, config: ClusterConfig, who: str, now: float,
                running: ClusterConfig | None = None) -> None:  # fmt: skip
        """Keep ``config`` among the versions, then make it the configuration file.
        ``running``: the version it replaces, kept too if it never was (a file written
        by hand before the configuration API)."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if running is not None and not self._text_path(running.version).exists():
            try:
                at = self.path.stat().st_mtime
            except OSError:
                at = 0.0
            self._keep(running.version, running.source_text, "", at)
        self._keep(config.version, config.source_text, who, now)
        # The file keeps its permissions (it holds the secret: 0600 unless made otherwise).
        try:
            mode = self.path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o600
        atomic_write(self.path, config.source_text.encode("utf-8"), mode)
        with contextlib.suppress(OSError):  # installed: an old version left over is harmless
            self._prune(config.version)

    def _keep(self, version: int, text: str, who: str, at: float) -> None:
        atomic_write(self._text_path(version), text.encode("utf-8"))
        meta = {"version": version, "applied_at": at, "applied_by": who}
        atomic_write(self._meta_path(version), json.dumps(meta).encode())

    def _kept(self) -> list[int]:
        if not self.dir.is_dir():
            return []
        found = (self._name_re.fullmatch(p.name) for p in self.dir.iterdir())
        return sorted((int(m[1]) for m in found if m), reverse=True)

    def _prune(self, running: int) -> None:
        for version in self._kept()[KEEP_VERSIONS:]:
            if version != running:
                self._text_path(version).unlink(missing_ok=True)
                self._meta_path(version).unlink(missing_ok=True)

    def versions(self, running: int) -> list[VersionInfo]:
        """Every kept version, newest first; ``running`` (0 = none) is marked, and listed
        even when it was installed by hand and never kept."""
        out = []
        for version in self._kept():
            try:
                meta = json.loads(self._meta_path(version).read_text())
            except (OSError, ValueError):
                meta = {}
            at, by = float(meta.get("applied_at", 0.0)), str(meta.get("applied_by", ""))
            out.append(VersionInfo(version, at, by, version == running))
        if running and not any(v.running for v in out):
            try:
                at = self.path.stat().st_mtime
            except OSError:
                at = 0.0
            out.append(VersionInfo(running, at, "", True))
            out.sort(key=lambda v: v.version, reverse=True)
        return out

    def read(self, version: int) -> str:
        """The text of a kept version; KeyError if this node does not keep it."""
        try:
            return self._text_path(version).read_text(encoding="utf-8")
        except FileNotFoundError:
            kept = ", ".join(map(str, self._kept())) or "none"
            raise KeyError(f"version {version} is not kept on this node (kept: {kept})") from None


# -- prepared, not yet committed -------------------------------------------------------------
@dataclass(frozen=True)
class Pending:
    transaction: str
    config: ClusterConfig
    base_version: int  # the version running when it was prepared (0 = none)
    who: str
    expires_at: float
    changes: tuple[str, ...] = ()
    same: bool = False  # the running version sent again: commit changes nothing
    extra: dict = field(default_factory=dict)


class Busy(Exception):
    """Another transaction is prepared and not yet committed, aborted or expired."""


class PendingTable:
    """At most one prepared change at a time: two consoles preparing at once would
    otherwise each get one node, and both nodes could commit different texts under one
    version number. Time is passed in (monotonic seconds)."""

    def __init__(self) -> None:
        self._pending: Pending | None = None

    def current(self, now: float) -> Pending | None:
        p = self._pending
        if p is not None and now >= p.expires_at:
            self._pending = None
            return None
        return p

    def put(self, pending: Pending, now: float) -> None:
        p = self.current(now)
        if p is not None and p.transaction != pending.transaction:
            raise Busy(f"another configuration change (transaction {p.transaction}, version "
                       f"{p.config.version}, prepared by {p.who}) is pending here; it expires "
                       f"in {p.expires_at - now:.0f} s unless committed or aborted")  # fmt: skip
        self._pending = pending

    def take(self, transaction: str, now: float) -> Pending | None:
        """The prepared transaction, removed from the table; None if unknown/expired."""
        p = self.current(now)
        if p is None or p.transaction != transaction:
            return None
        self._pending = None
        return p

    def drop(self, transaction: str) -> bool:
        if self._pending is not None and self._pending.transaction == transaction:
            self._pending = None
            return True
        return False
