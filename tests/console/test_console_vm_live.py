"""The console on two REAL agents running a REAL VM (issue 11, point 4): the VM card
shows what the node running the guest reports (state, vCPUs, memory, disk size); a move
by drag and drop passes through the guest's clean shutdown and its boot on the progress
line, and the card ends on the other node with the last boot's time."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from console.model.migration import plan_migration
from console.model.operations import Operation, Phase
from console.model.vm_facts import format_seconds, format_size
from console.ui.mime import ModuleDrag
from node_agent.demo_vm.guest import Guest
from tests.conftest import require_fuse
from tests.console.live import console_window, wait_for
from tests.console.test_console_live import drop
from tests.console.vm_live import VM, VmCluster
from tests.vm.libvirtd import Libvirtd

pytestmark = pytest.mark.root


def test_vm_card_and_the_steps_of_a_vm_move(
    qtbot: Any, run: Callable[..., Any], tmp_path: Path, guest: Guest
) -> None:
    require_fuse()
    with Libvirtd(tmp_path / "libvirt") as lv, VmCluster(tmp_path / "cluster", lv) as vc:
        vc.wait_settled(VM, timeout=120)
        # The guest up (its checker passed: its boot timed): it answers the ACPI button.
        deadline = time.monotonic() + 120
        while vc.module("node1", VM).last_start_s <= 0:
            assert time.monotonic() < deadline, f"the guest did not boot\n{vc.describe()}"
            time.sleep(0.2)
        assert lv.domain_running("camera-node1") and not lv.domain_running("camera-node2")
        with console_window(qtbot, run, vc) as w:
            view = w.current_view()
            assert view is not None
            wait_for(qtbot, lambda: VM in view.cards and "running on node1"
                     in view.card(VM).vm_text(), 30, "no VM card running on node1",
                     vc.describe)  # fmt: skip
            card = view.card(VM)
            real = vc.module("node1", VM)
            disk = real.vm.disks[0]
            assert real.vm.vcpus >= 1 and real.vm.memory_bytes > 0 and disk.size_bytes > 0
            vcpus = f"{real.vm.vcpus} vCPU" + ("" if real.vm.vcpus == 1 else "s")
            wait_for(qtbot, lambda: card.vm_text() == (
                f"VM running on node1 · {vcpus} · {format_size(real.vm.memory_bytes)}\n"
                f"disk {disk.target} {format_size(disk.size_bytes)} · last boot "
                f"{format_seconds(real.last_start_s)}"), 10, f"card: {card.vm_text()}")  # fmt: skip
            view.select(VM)
            assert w.detail.vm.fields["Guest"].text() == "running on node1"
            assert w.detail.vm.fields["Last boot"].text() == format_seconds(real.last_start_s)
            assert w.detail.vm.disks.rowCount() == len(real.vm.disks)

            lines: list[str] = []

            def seen(op: Operation) -> None:
                if op.module == VM and (not lines or lines[-1] != op.message):
                    lines.append(op.message)

            view.session.operation_changed.connect(seen)

            def plan() -> Any:
                return plan_migration(view.session.model, VM, "node2")

            wait_for(qtbot, lambda: plan().ok, 30, "the console does not offer the move",
                     lambda: f"{plan().reason}\n{vc.describe()}")  # fmt: skip
            # Drag and drop, as a person moves it: the console's own action path.
            accepted, highlight = drop(view.columns["node2"], ModuleDrag(view.session.name,
                                                                         VM, "node1"))  # fmt: skip
            assert accepted and highlight == "ok"
            wait_for(qtbot, lambda: w.confirmer.current is not None, 5, "no confirmation")
            w.confirmer.answer(True)
            began = time.monotonic()

            def finished() -> bool:
                op = view.session.ops.latest(VM, time.time())
                return op is not None and not op.active

            wait_for(qtbot, finished, 120, f"the move did not finish; lines {lines}",
                     vc.describe)  # fmt: skip
            took = time.monotonic() - began
            op = view.session.ops.latest(VM, time.time())
            assert op is not None and op.phase is Phase.DONE, (op, lines)
            steps = [
                next((i for i, t in enumerate(lines) if t.startswith(prefix)), -1)
                for prefix in ("shutting down camera on node1 (ACPI) ", "starting camera on "
                               "node2 ", "booting on node2 ", "moved to node2 in ")
            ]  # fmt: skip
            assert -1 not in steps and steps == sorted(steps), lines
            assert "shutdown " in op.message and ", boot " in op.message, op.message
            # A clean ACPI shutdown (the guest was up), not a destroy after the timeout.
            stopped = [e.message for e in vc.client("node1").logs(VM, 200, "INFO")]
            assert any("shut down cleanly" in m for m in stopped), stopped

            # The card: on node2's column, the guest as node2 reports it, its boot timed.
            assert view.column_of(VM) == "node2"
            assert lv.domain_running("camera-node2") and not lv.domain_running("camera-node1")
            there = vc.module("node2", VM)
            assert there.last_start_s > 0 and there.vm.state == "running"
            wait_for(qtbot, lambda: f"last boot {format_seconds(there.last_start_s)}"
                     in card.vm_text(), 10, f"card: {card.vm_text()}")  # fmt: skip
            assert card.vm_text().startswith("VM running on node2"), card.vm_text()
            assert w.detail.vm.fields["Guest"].text() == "running on node2"
            print(f"\nmove took {took:.1f}s; progress line: {lines}")
