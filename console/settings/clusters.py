"""The clusters the console watches, kept in ``console.toml`` (no secrets in it):

[[cluster]]
name = "site-a"
node1 = "10.0.0.1:7700"
node2 = "10.0.0.2:7700"
ca = "/home/op/.config/mirrorpair/site-a/ca.pem"
cert = "/home/op/.config/mirrorpair/site-a/console.pem"
key = "/home/op/.config/mirrorpair/site-a/console.key"
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from console.client.credentials import TlsIdentity

FILE_NAME = "console.toml"
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_KEYS = ("name", "node1", "node2", "ca", "cert", "key")


class SettingsError(ValueError):
    """A bad settings or cluster file; the message names the file and the key."""


@dataclass(frozen=True)
class ClusterEntry:
    name: str
    node1: str  # host:port of node1's agent API
    node2: str
    ca: Path
    cert: Path
    key: Path

    @property
    def addresses(self) -> dict[str, str]:
        return {"node1": self.node1, "node2": self.node2}

    @property
    def identity(self) -> TlsIdentity:
        return TlsIdentity(self.ca, self.cert, self.key)


def default_config_path() -> Path:
    """$XDG_CONFIG_HOME/mirrorpair/console.toml (~/.config/... by default)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "mirrorpair" / FILE_NAME


def validate_address(value: str, where: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"{where}: expected host:port, got {value!r}")
    return value


def make_entry(
    name: str, node1: str, node2: str, ca: str, cert: str, key: str, where: str = "cluster"
) -> ClusterEntry:
    """A checked entry; SettingsError names the key that is wrong."""
    if not _NAME_RE.match(name):
        raise SettingsError(f"{where}.name: 1 to 64 of A-Z a-z 0-9 _ . -, got {name!r}")
    for field_name, value in (("ca", ca), ("cert", cert), ("key", key)):
        if not value:
            raise SettingsError(f"{where}.{field_name}: a file path is required")
    return ClusterEntry(
        name,
        validate_address(node1, f"{where}.node1"),
        validate_address(node2, f"{where}.node2"),
        Path(ca).expanduser(),
        Path(cert).expanduser(),
        Path(key).expanduser(),
    )


def load_clusters(path: Path) -> list[ClusterEntry]:
    """The clusters in ``path``; [] when the file does not exist yet."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise SettingsError(f"{path}: {e}") from None
    tables = data.get("cluster", [])
    if not isinstance(tables, list):
        raise SettingsError(f"{path}: [[cluster]] must be an array of tables")
    out: list[ClusterEntry] = []
    for i, t in enumerate(tables):
        where = f"{path}: cluster[{i}]"
        unknown = sorted(set(t) - set(_KEYS))
        if unknown:
            raise SettingsError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(_KEYS)})")
        missing = [k for k in _KEYS if not isinstance(t.get(k), str)]
        if missing:
            raise SettingsError(f"{where}.{missing[0]}: a string is required")
        entry = make_entry(*(t[k] for k in _KEYS), where=where)
        if any(e.name == entry.name for e in out):
            raise SettingsError(f"{where}.name: {entry.name!r} appears twice")
        out.append(entry)
    return out


def save_clusters(path: Path, entries: list[ClusterEntry]) -> None:
    """Write atomically (temp file + rename): a crash never leaves half a file."""
    lines = ["# MirrorPair console: the clusters it watches. Secrets live in the OS keyring.", ""]
    for e in entries:
        lines.append("[[cluster]]")
        for key in _KEYS:
            lines.append(f"{key} = {json.dumps(str(getattr(e, key)))}")
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    os.replace(tmp, path)


def entry_from_cluster_toml(
    path: Path, cert: Path, key: Path, ca: Path | None = None
) -> ClusterEntry:
    """An entry from an agents' cluster file (name, node API addresses, [tls].ca), with
    the console's own certificate. Only those keys are read; the file's secret is not."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise SettingsError(f"{path}: {e}") from None
    cluster, nodes = data.get("cluster", {}), data.get("nodes", {})
    try:
        name = cluster["name"]
        api = {n: nodes[n]["api"] for n in ("node1", "node2")}
    except (KeyError, TypeError) as e:
        raise SettingsError(
            f"{path}: missing {e} ([cluster].name, [nodes.node1].api, [nodes.node2].api are needed)"
        ) from None
    if ca is None:
        tls_ca = data.get("tls", {}).get("ca", "")
        if not tls_ca or "{node}" in tls_ca:
            raise SettingsError(f"{path}: [tls].ca does not name one CA file; give --ca")
        ca = Path(tls_ca) if Path(tls_ca).is_absolute() else Path(path).parent / tls_ca
    return make_entry(
        name, api["node1"], api["node2"], str(ca), str(cert), str(key), where=str(path)
    )
