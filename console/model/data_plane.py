"""A replicated module's data plane on one node, as the console shows it (pure): the
process that serves the module's mounts and its replication stream. When it is down
(pid 0) the module does not work on that node, whatever its state says."""

from __future__ import annotations

from console.model.states import Colour
from console.model.views import Badge, DataPlaneView
from protos import mirrorpair_pb2 as pb


def data_plane_view(m: pb.ModuleStatus) -> DataPlaneView | None:
    """None when the agent reports none (a module with nothing replicated)."""
    if not m.HasField("data_plane"):
        return None
    d = m.data_plane
    return DataPlaneView(d.pid, d.version, d.role, d.mode, d.mounts, d.started_at)


def data_plane_colour(dp: DataPlaneView | None) -> Colour | None:
    """The colour a data plane forces on its node's state (None: it adds nothing). Down,
    its mounts answer nothing and nothing is replicated: never the green of a fine node."""
    return Colour.RED if dp is not None and dp.down else None


def data_plane_badges(
    dp: DataPlaneView | None, node_id: str, module: str, agent_build: str
) -> tuple[Badge, ...]:
    if dp is None:
        return ()
    if dp.down:
        return (
            Badge(
                "data plane down",
                Colour.RED,
                f"{module}'s data plane on {node_id} is not running: its mounts and its "
                f"replication are not served there; the agent is starting it again",
            ),
        )
    if dp.build and agent_build and dp.build != agent_build:
        return (
            Badge(
                f"data plane {dp.build}",
                Colour.GREY,
                f"{module}'s data plane on {node_id} runs build {dp.build}, the agent runs "
                f"{agent_build} (a data plane kept serving through an agent upgrade)",
            ),
        )
    return ()


def data_plane_line(dp: DataPlaneView | None) -> str:
    """One line for a tooltip or a detail panel ("" when there is no data plane)."""
    if dp is None:
        return ""
    if dp.down:
        return "data plane: DOWN (no process runs; being started again)"
    parts = [f"pid {dp.pid}"]
    if dp.build:
        parts.append(f"build {dp.build}")
    role = dp.role + (f", {dp.mode}" if dp.mode else "")
    if dp.role:
        parts.append(role)
    parts.append(f"{dp.mounts} mount{'' if dp.mounts == 1 else 's'}")
    return "data plane: " + " · ".join(parts)
