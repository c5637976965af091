"""A vm module's card facts and the steps of a VM's move on the progress line (pure
model), fed with ModuleStatus messages as the agents send them during a swap."""

from __future__ import annotations

from console.model.cluster import ClusterModel
from console.model.move_progress import MoveMemory, Step, agent_elapsed, move_step
from console.model.operations import OperationTracker, Phase
from console.model.vm_facts import format_seconds, format_size, vm_facts, vm_node
from protos import mirrorpair_pb2 as pb
from tests.console.builders import ADDR, module, node, pair

MIB = 1 << 20
SKEW = 1000.0  # the agents' clocks run 1000 s ahead of the console's


def vm(
    state: str = "PRIM",
    readiness: str = "Ready",
    *,
    guest: str = "running",
    running: bool = True,
    activity: str = "",
    since: float = 0.0,
    last_start_s: float = 0.0,
    last_stop_s: float = 0.0,
    reason: str = "",
) -> pb.ModuleStatus:
    m = module("camera", state, readiness, reason=reason)
    m.kind = "vm"
    m.resource_running = running
    m.resource_state = guest
    m.activity, m.activity_since = activity, since + SKEW if since else 0.0
    m.last_start_s, m.last_stop_s = last_start_s, last_stop_s
    m.vm.CopyFrom(pb.VmInfo(domain="camera-x", state=guest, vcpus=2, memory_bytes=256 * MIB))
    m.vm.disks.add(target="vda", path="/srv/camera/disk.qcow2", size_bytes=64 * MIB)
    m.vm.disks.add(target="vdb", path="/srv/camera/data.raw", size_bytes=3 << 29)
    return m


def feed(model: ClusterModel, node_id: str, m: pb.ModuleStatus, at: float) -> None:
    """node_id's snapshot, taken at agent time at+SKEW and received at console time at."""
    st = node(node_id, m)
    st.time = at + SKEW
    model.apply_snapshot(node_id, st, at)


def vm_pair(n1: pb.ModuleStatus, n2: pb.ModuleStatus, at: float = 1.0) -> ClusterModel:
    m = ClusterModel("c", ADDR)
    feed(m, "node1", n1, at)
    feed(m, "node2", n2, at)
    return m


def test_sizes_and_durations_read_as_an_admin_writes_them() -> None:
    assert [format_size(n) for n in (512, 64 * MIB, 1536 * MIB, 4 << 30)] == [
        "512 B", "64 MiB", "1.5 GiB", "4 GiB",
    ]  # fmt: skip
    assert [format_seconds(s) for s in (0.84, 5.06, 14.2, 125)] == ["0.8s", "5.1s", "14s",
                                                                     "2m 05s"]  # fmt: skip


def test_the_card_shows_the_guest_as_the_node_running_it_reports_it() -> None:
    m = pair(vm(last_start_s=4.24), vm("SECOND", guest="shut off", running=False))
    facts = vm_facts(m, "camera")
    assert facts is not None and facts.node_id == "node1"
    assert facts.state_text == "running on node1"
    assert facts.size_text == "2 vCPUs · 256 MiB"
    assert facts.disks_label == "disks vda 64 MiB · vdb 1.5 GiB"
    assert facts.boot_text == "last boot 4.2s"
    # A guest paused on an I/O error is said so, as libvirt told the node.
    m = pair(vm(guest="paused on an I/O error"), vm("SECOND", guest="", running=False))
    assert vm_facts(m, "camera").state_text == "paused on an I/O error on node1"  # type: ignore[union-attr]


def test_facts_follow_the_running_node_and_never_an_unreachable_one() -> None:
    # node2 runs it after a failover; node1 (secondary) still knows the definition.
    m = pair(vm("SECOND", guest="shut off", running=False), vm(last_start_s=6.0))
    assert vm_node(m, "camera") == "node2"
    assert vm_facts(m, "camera").boot_text == "last boot 6.0s"  # type: ignore[union-attr]
    # The node that ran it no longer answers: nothing from its last snapshot is shown.
    m = pair(vm("SECOND", guest="shut off", running=False), None)
    m.apply_unreachable("node1", "timeout", 2.0)
    assert vm_facts(m, "camera") is None
    # While a start is under way (and its checks have not passed), it is booting.
    m = pair(vm("SECOND", running=False, guest="shut off"),
             vm(readiness="Transient", activity="starting", running=False, guest=""))  # fmt: skip
    facts = vm_facts(m, "camera")
    assert facts is not None and facts.node_id == "node2" and facts.boot_text == "booting…"
    assert facts.state_text == "starting on node2"


def test_an_app_module_has_no_vm_facts() -> None:
    assert vm_facts(pair(module(), module(state="SECOND")), "web") is None


def test_agent_times_are_read_on_the_console_clock() -> None:
    m = ClusterModel("c", ADDR)
    feed(m, "node1", vm(), 100.0)
    assert agent_elapsed(m, "node1", 96.0 + SKEW, 101.0) == 5.0


def test_the_progress_line_names_each_step_of_a_vm_move() -> None:
    """A swap of camera from node1 to node2, as the two status streams report it."""
    m = ClusterModel("c", ADDR)
    feed(m, "node1", vm(last_stop_s=99.0), 10.0)  # an older stop's time: not this one's
    feed(m, "node2", vm("SECOND", guest="shut off", running=False), 10.0)
    ops = OperationTracker()
    op = ops.start("camera", pb.COMMAND_SWAP, "node1", "node2", 10.0)
    ops.replied(op.op_id, True, "handing over to the peer", 10.2)

    def line(now: float) -> str:
        changed = ops.update(m, now)
        current = ops.get(op.op_id)
        assert current is not None
        assert not changed or changed[-1] == current
        return current.message

    feed(m, "node1", vm(readiness="Transient", activity="stopping", since=10.3,
                        guest="shutting down", last_stop_s=99.0), 10.4)  # fmt: skip
    assert line(14.3) == "shutting down camera on node1 (ACPI) 4s"
    card = vm_facts(m, "camera")
    assert card is not None and card.state_text == "shutting down on node1"

    feed(m, "node1", vm("WAIT", "Transient", guest="shut off", running=False,
                        last_stop_s=6.02), 16.3)  # fmt: skip
    assert line(16.4) == "camera stopped on node1 after 6.0s; starting on node2"

    feed(m, "node2", vm("PRIM", "Transient", activity="starting", since=16.5, guest="shut off",
                        running=False), 16.6)  # fmt: skip
    assert line(17.5) == "starting camera on node2 1s"
    # The domain runs, PRIM is Ready at once, but the guest's checks have not passed yet:
    # booting, timed from the start (as last_start_s will be).
    feed(m, "node2", vm(activity="booting", since=16.5), 17.0)
    assert line(19.5) == "booting on node2 3s"
    assert ops.get(op.op_id).phase is Phase.RUNNING  # type: ignore[union-attr]
    assert vm_facts(m, "camera").boot_text == "booting…"  # type: ignore[union-attr]

    feed(m, "node1", vm("SECOND", guest="shut off", running=False, last_stop_s=6.02), 20.0)
    feed(m, "node2", vm(last_start_s=5.1), 21.6)
    done = ops.update(m, 24.0)[-1]
    assert done.phase is Phase.DONE
    assert done.message == "moved to node2 in 14s (shutdown 6.0s, boot 5.1s)"
    facts = vm_facts(m, "camera")
    assert facts is not None and (facts.node_id, facts.boot_text) == ("node2", "last boot 5.1s")


def test_a_forced_stop_and_an_agent_without_activities() -> None:
    m = vm_pair(vm(readiness="Transient", activity="force-stopping", since=1.0),
                vm("SECOND", running=False))  # fmt: skip
    s = move_step(m, "camera", "node1", "node2", 0.0, MoveMemory(), 3.0)
    assert (s.step, s.text, s.active) == (Step.STOPPING, "destroying camera on node1 2s", True)
    # An agent that reports no activity: no step is made up (the caller keeps its line).
    m = pair(module(readiness="Transient"), module(state="SECOND"))
    s = move_step(m, "web", "node1", "node2", 0.0, MoveMemory(), 3.0)
    assert (s.step, s.text, s.active) == (Step.WAITING, "", False)


def test_an_app_move_says_stop_and_start() -> None:
    m = ClusterModel("c", ADDR)
    app = module(readiness="Transient")
    app.resource_running, app.activity, app.activity_since = True, "stopping", 1.0 + SKEW
    feed(m, "node1", app, 1.0)
    feed(m, "node2", module(state="SECOND"), 1.0)
    s = move_step(m, "web", "node1", "node2", 1.0, MoveMemory(), 2.0)
    assert s.text == "stopping web on node1 1s"
    stopped = module(state="SECOND")
    stopped.last_stop_s = 0.2
    feed(m, "node1", stopped, 2.0)
    started = module()
    started.resource_running, started.last_start_s = True, 0.4
    feed(m, "node2", started, 2.0)
    s = move_step(m, "web", "node1", "node2", 1.0, s.memory, 3.0)
    assert s.step is Step.DONE
    assert s.text == "web now runs on node2 (took 2s: stop 0.2s, start 0.4s)"


def test_a_move_whose_boot_goes_on_is_not_called_failed_early() -> None:
    m = vm_pair(vm("SECOND", running=False, guest="shut off"),
                vm(activity="booting", since=1.0))  # fmt: skip
    ops = OperationTracker()
    op = ops.start("camera", pb.COMMAND_SWAP, "node1", "node2", 0.0)
    ops.replied(op.op_id, True, "handing over", 0.1)
    (still,) = ops.update(m, 300.0)
    assert still.phase is Phase.RUNNING and still.message.startswith("booting on node2")
    (late,) = ops.update(m, 700.0)
    assert late.phase is Phase.FAILED and "booting on node2" in late.message
