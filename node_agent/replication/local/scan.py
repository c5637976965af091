"""Listing a replicated tree and hashing file zones (the I/O half of resync).

``scan_tree`` walks with os.scandir (one lstat per entry, no per-entry Python objects
beyond a small tuple) so that 100,000+ files take well under a second or two.
``zone_hashes`` reads a file in zone-size chunks into one reused buffer; zones that
lie entirely in a hole (SEEK_DATA) are hashed without reading. The hash algorithm
is a parameter because both nodes must use the same one: blake2b-128 (always
available, strong) by default; sha256-128 is faster on CPUs with SHA extensions,
and xxh3-128 (only if the `xxhash` package is installed) is far faster but not
collision resistant against a hostile guest.
"""

from __future__ import annotations

import errno
import gc
import hashlib
import os
import stat
from collections.abc import Callable, Iterable
from typing import NamedTuple

from node_agent.replication.tracking.zones import DEFAULT_ZONE_SIZE, check_zone_size, zone_count

FILE, DIR, SYMLINK, OTHER = "f", "d", "l", "o"

try:  # optional accelerator
    import xxhash as _xxhash
except ImportError:  # pragma: no cover - depends on the environment
    _xxhash = None


class Entry(NamedTuple):
    """One entry of a tree; `path` is relative to the root ("" = the root)."""

    path: str
    kind: str  # FILE, DIR, SYMLINK or OTHER (fifo, socket, device)
    mode: int  # full st_mode (type and permission bits)
    uid: int
    gid: int
    size: int
    mtime_ns: int
    atime_ns: int
    target: str | None  # symlink target, verbatim
    dev: int  # (dev, ino) identify hard links
    ino: int
    nlink: int
    rdev: int


Listing = dict[str, Entry]


_KINDS = {stat.S_IFREG: FILE, stat.S_IFDIR: DIR, stat.S_IFLNK: SYMLINK}


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), OTHER)


def _entry(rel: str, st: os.stat_result, target: str | None) -> Entry:
    mode = st.st_mode
    return Entry(
        rel,
        _kind(mode),
        mode,
        st.st_uid,
        st.st_gid,
        st.st_size,
        st.st_mtime_ns,
        st.st_atime_ns,
        target,
        st.st_dev,
        st.st_ino,
        st.st_nlink,
        st.st_rdev,
    )


def scan_tree(root: str | os.PathLike[str]) -> Listing:
    """Every entry under root (root itself as ""), without following symlinks.

    Entries that vanish during the walk (the application keeps running) are skipped;
    the resync's final pass catches up with them.
    """
    root = os.fspath(root)
    out: Listing = {"": _entry("", os.lstat(root), None)}
    stack = [("", root)]
    kinds = _KINDS
    make = tuple.__new__  # Entry(...) without the keyword machinery: ~30% of the walk
    gc_was_enabled = gc.isenabled()
    gc.disable()  # 100k+ new tuples would trigger many useless collections
    try:
        while stack:
            rel_dir, abs_dir = stack.pop()
            prefix = rel_dir + "/" if rel_dir else ""
            try:
                it = os.scandir(abs_dir)
            except (FileNotFoundError, NotADirectoryError):
                continue
            with it:
                for de in it:
                    rel = prefix + de.name
                    try:
                        st = de.stat(follow_symlinks=False)
                        mode = st.st_mode
                        kind = kinds.get(mode & 0o170000, OTHER)
                        target = os.readlink(de.path) if kind == SYMLINK else None
                    except FileNotFoundError:
                        continue
                    out[rel] = make(
                        Entry,
                        (
                            rel,
                            kind,
                            mode,
                            st.st_uid,
                            st.st_gid,
                            st.st_size,
                            st.st_mtime_ns,
                            st.st_atime_ns,
                            target,
                            st.st_dev,
                            st.st_ino,
                            st.st_nlink,
                            st.st_rdev,
                        ),
                    )
                    if kind == DIR:
                        stack.append((rel, de.path))
    finally:
        if gc_was_enabled:
            gc.enable()
    return out


# -- zone hashes ------------------------------------------------------------------------
DEFAULT_HASH = "blake2b-128"
# What resync negotiates: xxh3-128 when both nodes have it (an order of magnitude faster;
# a guest able to forge collisions could only hide changes to its own data), else blake2b.
PREFERRED_HASHES = ("xxh3-128", DEFAULT_HASH)


def _hasher(algo: str) -> Callable[[bytes | memoryview], bytes]:
    if algo == "blake2b-128":
        return lambda b: hashlib.blake2b(b, digest_size=16).digest()
    if algo == "sha256-128":
        return lambda b: hashlib.sha256(b).digest()[:16]
    if algo == "xxh3-128" and _xxhash is not None:
        return lambda b: _xxhash.xxh3_128_digest(b)
    raise ValueError(f"hash algorithm {algo!r} is not available here")


def available_hashes() -> tuple[str, ...]:
    extra = ("xxh3-128",) if _xxhash is not None else ()
    return ("blake2b-128", "sha256-128", *extra)


def negotiate_hash(peer: Iterable[str], preference: Iterable[str] = PREFERRED_HASHES) -> str:
    """The first preferred algorithm both nodes have (both sides must hash alike)."""
    peer = tuple(peer)
    common = set(available_hashes()) & set(peer)
    for algo in (*preference, *available_hashes()):
        if algo in common:
            return algo
    raise ValueError(f"no hash algorithm in common with the peer ({sorted(peer)})")


def _hole_until(fd: int, offset: int) -> int:
    """Offset of the next data at or after `offset` (the file size past the last data)."""
    try:
        return os.lseek(fd, offset, os.SEEK_DATA)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # only a hole up to the end
            return os.fstat(fd).st_size
        raise  # EINVAL etc.: caller stops asking


def zone_hashes(
    path: str | os.PathLike[str],
    zone_size: int = DEFAULT_ZONE_SIZE,
    zones: Iterable[int] | None = None,
    algo: str = DEFAULT_HASH,
) -> dict[int, bytes]:
    """Hash of each requested zone that exists (all zones when `zones` is None).

    The last zone is hashed over its real (partial) length, so files of different
    sizes never compare equal there; zones past the end are left out.
    """
    check_zone_size(zone_size)
    digest = _hasher(algo)
    out: dict[int, bytes] = {}
    zero_digests: dict[int, bytes] = {}
    buf = bytearray(zone_size)
    view = memoryview(buf)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        n = zone_count(size, zone_size)
        wanted = range(n) if zones is None else sorted({z for z in zones if 0 <= z < n})
        if zones is None and hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        seek_data = hasattr(os, "SEEK_DATA")
        data_at = -1  # next data offset known so far
        for z in wanted:
            start = z * zone_size
            length = min(zone_size, size - start)
            if seek_data and data_at < start:
                try:
                    data_at = _hole_until(fd, start)
                except OSError:
                    seek_data = False
            if seek_data and data_at >= start + length:  # the whole zone is a hole
                if length not in zero_digests:
                    zero_digests[length] = digest(bytes(length))
                out[z] = zero_digests[length]
                continue
            got = os.preadv(fd, [view[:length]], start)  # short if the file shrank meanwhile
            out[z] = digest(view[:got])
    finally:
        os.close(fd)
    return out
