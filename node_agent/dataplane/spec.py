"""What a module's data plane is started with, and where it keeps its files.

The agent writes ``spec.json`` in the module's run directory before it starts the data
plane; a restarted agent compares the digest the running data plane reports with the
spec it would write now, so a module whose settings changed while the agent was down is
not silently served with the old ones.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

SPEC = "spec.json"
TOKEN = "token"
PIDFILE = "pid"
LOGFILE = "dataplane.log"


class SpecError(ValueError):
    """A spec file that cannot be read: names the file and what is wrong."""


@dataclass(frozen=True)
class DataPlaneSpec:
    module: str
    directories: tuple[str, ...]
    copy_root: str
    track_root: str
    node_id: str
    peer_id: str
    peer_host: str
    peer_port: int
    ca: str
    cert: str
    key: str
    mode: str = "sync"
    bandwidth_cap: float | None = None
    write_cache: bool = True
    kernel: str | None = None
    mount_options: dict[str, bool] = field(default_factory=dict)

    def digest(self) -> str:
        # The kernel boot id is not a setting: a data plane outlives no reboot anyway.
        data = {k: v for k, v in asdict(self).items() if k != "kernel"}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str = SPEC) -> DataPlaneSpec:
        try:
            raw = json.loads(text)
            raw["directories"] = tuple(raw["directories"])
            return cls(**raw)
        except (ValueError, TypeError, KeyError) as e:
            raise SpecError(f"{where}: not a data plane spec ({e})") from None


def socket_names(run_dir: Path) -> tuple[str, str]:
    """Abstract Unix socket names (control, handoff) of the data plane in ``run_dir``.

    Abstract: no path-length limit (deep data folders) and nothing left on disk by a
    SIGKILL; a name is per network namespace, like the agent's own addresses. Anyone in
    the namespace may connect, so every call proves itself with the token file, which
    only the agent's user can read.
    """
    h = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:20]
    return f"mirrorpair-dp-{h}-ctl", f"mirrorpair-dp-{h}-fd"


def write_private(path: Path, text: str) -> None:
    """Atomically, readable by the owner only."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
