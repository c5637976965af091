"""The operations a primary replicates to its secondary (DESIGN §5).

Paths are always *relative* to the replicated directory's root, with "/" separators
and no leading slash ("" is the root itself). The secondary re-checks every path
before applying anything (node_agent.replication.local.apply). The wire encoding of these
dataclasses lives in node_agent.replication.stream.wire; nothing else serializes them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Write:
    path: str
    offset: int
    data: bytes


@dataclass(frozen=True)
class Truncate:
    path: str
    size: int


@dataclass(frozen=True)
class Fallocate:
    path: str
    mode: int
    offset: int
    length: int


@dataclass(frozen=True)
class Create:
    path: str
    mode: int  # includes the file type bits (S_IFREG)


@dataclass(frozen=True)
class Mknod:
    path: str
    mode: int
    rdev: int


@dataclass(frozen=True)
class Mkdir:
    path: str
    mode: int


@dataclass(frozen=True)
class Unlink:
    path: str


@dataclass(frozen=True)
class Rmdir:
    path: str


@dataclass(frozen=True)
class Rename:
    src: str
    dst: str
    flags: int = 0  # RENAME_NOREPLACE / RENAME_EXCHANGE


@dataclass(frozen=True)
class Link:
    src: str  # existing file
    dst: str  # new name


@dataclass(frozen=True)
class Symlink:
    target: str  # stored verbatim: a symlink's target is data, never followed
    path: str


@dataclass(frozen=True)
class Chmod:
    path: str
    mode: int


@dataclass(frozen=True)
class Chown:
    path: str
    uid: int
    gid: int


@dataclass(frozen=True)
class Utimens:
    path: str
    atime_ns: int
    mtime_ns: int


@dataclass(frozen=True)
class SetXattr:
    path: str
    name: str
    value: bytes
    flags: int = 0


@dataclass(frozen=True)
class RemoveXattr:
    path: str
    name: str


@dataclass(frozen=True)
class Fsync:
    path: str  # "" = sync the whole tree (syncfs)
    datasync: bool = False


Op = (
    Write
    | Truncate
    | Fallocate
    | Create
    | Mknod
    | Mkdir
    | Unlink
    | Rmdir
    | Rename
    | Link
    | Symlink
    | Chmod
    | Chown
    | Utimens
    | SetXattr
    | RemoveXattr
    | Fsync
)

ALL_OPS: tuple[type, ...] = (
    Write,
    Truncate,
    Fallocate,
    Create,
    Mknod,
    Mkdir,
    Unlink,
    Rmdir,
    Rename,
    Link,
    Symlink,
    Chmod,
    Chown,
    Utimens,
    SetXattr,
    RemoveXattr,
    Fsync,
)


def op_paths(op: Op) -> tuple[str, ...]:
    """Every path an operation names (what the secondary must validate)."""
    if isinstance(op, Rename | Link):
        return (op.src, op.dst)
    return (op.path,)


def prefixed(op: Op, top: str) -> Op:
    """``op`` with its paths moved under the copy root's directory ``top`` (a mount's op:
    the module's copy root holds its directories as "0/", "1/", ...)."""

    def move(p: str) -> str:
        return f"{top}/{p}" if p else top

    if isinstance(op, Rename | Link):
        return dataclasses.replace(op, src=move(op.src), dst=move(op.dst))
    if isinstance(op, Fsync) and not op.path:
        return op  # "" = syncfs: the same filesystem for every directory
    return dataclasses.replace(op, path=move(op.path))
