"""The demo's generated config keeps to the rules a real config must follow (the stricter
validation refuses the rest): module directories absolute, outside data_dir and not
nested in each other, on each node; every listener (API, replication) on its own
address and port; no virtual IP on a node's own address."""

from __future__ import annotations

import posixpath
from pathlib import Path

import pytest

from node_agent.config.load import load_config
from node_agent.config.model import NODE_IDS
from node_agent.demo_cluster import DemoError, build_demo_cluster


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def test_demo_config_with_a_replicated_module_keeps_to_the_rules(tmp_path: Path) -> None:
    demo = build_demo_cluster(tmp_path / "d", modules=("web", "recorder"), replicated=("recorder",))
    cfg = load_config(demo.config_path)
    assert [m.name for m in cfg.modules] == ["web", "recorder"]
    assert cfg.module("web").directories == ()  # plain: no FUSE needed for it
    (directory,) = cfg.module("recorder").directories
    assert cfg.module("recorder").resync_mbps > 0  # a resync slow enough to watch
    listeners = set()
    for node in NODE_IDS:
        data_dir = posixpath.normpath(cfg.data_dir.replace("{node}", node))
        path = posixpath.normpath(directory.replace("{node}", node))
        assert posixpath.isabs(path) and posixpath.isabs(data_dir)
        assert not _inside(path, data_dir) and not _inside(data_dir, path), (path, data_dir)
        n = cfg.nodes[node]
        host, port = n.api.rpartition(":")[0], int(n.api.rpartition(":")[2])
        listeners |= {(host, port), n.replication_address}
    assert len(listeners) == 4  # API and replication, each node its own
    paths = {posixpath.normpath(directory.replace("{node}", n)) for n in NODE_IDS}
    assert len(paths) == 2 and not any(_inside(a, b) for a in paths for b in paths if a != b)
    assert all(m.vip is None for m in cfg.modules)


def test_only_known_modules_can_be_replicated(tmp_path: Path) -> None:
    with pytest.raises(DemoError, match="replicated modules must be among the modules"):
        build_demo_cluster(tmp_path / "d", modules=("web",), replicated=("vault",))
