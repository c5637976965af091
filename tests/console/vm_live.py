"""Two REAL agents running the demo's VM module, ``camera`` (node_agent/demo_vm: a Debian
cloud kernel and a busybox initramfs under TCG, booting in seconds), for the console's
live VM tests and the VM screenshot. The agents run inside the mount namespace of a
libvirtd of the test's own (tests/vm/libvirtd.py): there qemu:///system reaches that
daemon, and QEMU sees the FUSE mount each agent serves the guest's disk through."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from node_agent.demo_cluster import DemoCluster, build_demo_cluster
from node_agent.demo_vm import demo_module
from tests.integration.agents import LocalCluster
from tests.vm.libvirtd import Libvirtd

VM = demo_module.NAME  # "camera"; node1, preferred, protects it in place


def guest_checker(console_log: Path) -> str:
    """A checker that passes once the running guest has written a record (its serial
    console's last line is "REC n"): the VM's start is then timed until the guest really
    booted, not only until its domain runs. Only the running guest writes that file, and
    a guest that shut down or is booting ends it with other lines. Generous failures: a
    boot under TCG on a busy machine takes seconds."""
    command = f"tail -n 1 {console_log} | grep -q '^REC '"
    return f"""
  [[module.checker]]
  name = "guest"
  kind = "command"
  target = {json.dumps(command)}
  interval_s = 1
  timeout_s = 3
  failures = 90
"""


@dataclasses.dataclass(frozen=True)
class NsDemoCluster(DemoCluster):
    """A demo cluster whose agents start through ``prefix`` (nsenter into libvirtd's
    mount namespace)."""

    prefix: tuple[str, ...] = ()

    def agent_command(self, node: str, log_level: str = "INFO") -> list[str]:
        return [*self.prefix, *super().agent_command(node, log_level)]


class VmCluster(LocalCluster):
    """LocalCluster with the VM module only (see the module docstring). Heartbeats are
    slower than LocalCluster's: QEMU's emulation shares the machine's cores."""

    def __init__(
        self, root: Path, libvirtd: Libvirtd, name: str = "demo", apps: tuple[str, ...] = ()
    ) -> None:
        """``apps``: sample app modules beside the VM (the screenshot's)."""
        super().__init__(root, modules=apps, pulse_ms=250, timeout_ms=3000, ready_timeout_s=60)
        self.libvirtd, self.name = libvirtd, name
        self.console_log = Path()

    def make_demo(self) -> DemoCluster:
        self.root.mkdir(parents=True, exist_ok=True)
        section, log = demo_module.prepare(self.root)
        self.console_log = Path(log)
        section += guest_checker(self.console_log)
        demo = build_demo_cluster(
            self.root, modules=self._build["modules"], extra_toml=section, name=self.name,
            pulse_ms=self._build["pulse_ms"], timeout_ms=self._build["timeout_ms"],
            replication_ports=True,
        )  # fmt: skip
        fields = {f.name: getattr(demo, f.name) for f in dataclasses.fields(demo)}
        return NsDemoCluster(**fields, prefix=tuple(self.libvirtd.enter()))

    def describe(self) -> str:
        return super().describe() + "\n" + self.libvirtd.tail(10)
