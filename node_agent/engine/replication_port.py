"""A node engine's replication port: one per node, opened with the first replicated
module (at open() or when a reconfigure adds one); each connection is handed to its
module's data plane, which runs the secondary's side of the stream."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from node_agent.config.model import ClusterConfig
from node_agent.dataplane.client import DataPlaneClient
from node_agent.dataplane.router import ReplicationRouter
from node_agent.engine.module_driver import ModuleDriver


def replication_router(
    config: ClusterConfig, node_id: str, modules: Callable[[], Mapping[str, ModuleDriver]]
) -> ReplicationRouter | None:
    """The router for this node's port (not yet started); None while no module is
    replicated."""
    if not any(d.repl is not None for d in modules().values()):
        return None

    # Looked up at each connection: modules come and go with the configuration.
    def lookup(module: str) -> DataPlaneClient | None:
        d = modules().get(module)
        return d.repl.dp if d is not None and d.repl is not None else None

    host, port = config.nodes[node_id].replication_address
    return ReplicationRouter(host, port, lookup)
