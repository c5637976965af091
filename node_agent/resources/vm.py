"""The ``vm`` resource: a libvirt domain whose definition and disks live in the module's
replicated directory (DESIGN §6).

Start defines the domain as *transient* and starts it in one step (virDomainCreateXML):
a transient domain exists only while it runs, so nothing of it stays defined on a node
that stops serving, crashes or reboots -- libvirt's autostart or an admin cannot start
it there behind the product's back, and it is never defined on both nodes at once.
Stop asks the guest to shut down (ACPI) and waits up to ``stop_timeout_s``, then
destroys it; a forced stop destroys it at once. Check reads the domain's state, names
the last lifecycle event when it is gone (crashed, shut down from inside, paused on an
I/O error), and, if configured, asks the QEMU guest agent.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from node_agent.config.model import ModuleConfig
from node_agent.resources import vm_xml
from node_agent.resources.common import LogFn, ResourceError, ResourceResult, module_env
from node_agent.resources.libvirt_conn import LibvirtConnection, describe_event, require_libvirt
from node_agent.resources.resource import ResourceInfo, VmDetails

T = TypeVar("T")

SHUTDOWN_POLL_S = 0.2
GUEST_AGENT_TIMEOUT_S = 5


class VmResource:
    kind = "vm"

    def __init__(
        self, cfg: ModuleConfig, *, node: str, log: LogFn, cwd: str,
        env: Mapping[str, str] | None = None, on_event: Callable[[], None] | None = None,
    ) -> None:  # fmt: skip
        assert cfg.vm is not None
        self.module, self.node = cfg.name, node
        self.directories = [d.replace("{node}", node) for d in cfg.directories]
        self.domain_path = Path(cfg.vm.domain.replace("{node}", node))
        self.guest_agent = cfg.vm.guest_agent
        self.stop_timeout_s, self.start_timeout_s = cfg.stop_timeout_s, cfg.start_timeout_s
        self.cwd = cwd
        self.env = module_env(cfg.name, node, cfg.vip.address if cfg.vip else "", env)
        self._log = log
        self._on_event = on_event
        self._spec: vm_xml.DomainSpec | None = None
        self._state = ""
        self._last_event = ""
        self._stopping = False
        uri = cfg.vm.uri.replace("{node}", node)
        self._rebooted_at = -math.inf  # the guest last rebooted itself (monotonic)
        self.conn = LibvirtConnection(uri, self._domain_name(), self._event,
                                      self._agent_event if self.guest_agent else None,
                                      self._reboot_event)  # fmt: skip

    def _domain_name(self) -> str:
        """The domain's <name>, from this node's copy of the definition (the mount is
        only on the primary), or from the directory itself before it is first protected,
        else the module's name (until a definition is read)."""
        for path in (self._in_copy(self.domain_path), self.domain_path):
            try:
                self._spec = self._read_spec(path)
                return self._spec.name
            except (ResourceError, OSError):
                continue
        return self.module

    def _follow_name(self, spec: vm_xml.DomainSpec) -> None:
        """The definition names the domain: follow it (it was not readable before, or was
        renamed), unless the old name still runs here -- that one must be stopped first."""
        old = self.conn.domain
        if spec.name == old:
            return
        dom = self.conn.lookup()
        if dom is not None and dom.isActive():
            raise ResourceError(f"the domain definition now names {spec.name!r}, but {old!r} "
                                f"still runs on {self.node}: stop it first")  # fmt: skip
        self.conn.domain = spec.name

    def _in_copy(self, path: Path) -> Path:
        """Where this node's copy of a replicated file is (copy/<directory index>/...)."""
        for i, d in enumerate(self.directories):
            rel = os.path.relpath(path, d)
            if not rel.startswith(".."):
                return Path(self.cwd) / "copy" / str(i) / rel
        return path

    # -- the definition -------------------------------------------------------------------
    def _read_spec(self, path: Path | None = None) -> vm_xml.DomainSpec:
        return self._definition(path)[1]

    def _definition(self, path: Path | None = None) -> tuple[str, vm_xml.DomainSpec]:
        """The definition's text ("{node}" replaced) and what it says, from ``path`` (the
        mount path by default)."""
        path = path or self.domain_path
        try:
            text = self._node_text(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise ResourceError(f"cannot read the domain definition {path}: "
                                f"{e.strerror or e}") from None  # fmt: skip
        try:
            return text, vm_xml.parse_domain(text, str(self.domain_path))
        except vm_xml.DomainXmlError as e:
            raise ResourceError(str(e)) from None

    def _defined_outside(self) -> str:
        name = self.conn.domain
        return (
            f"a domain named {name} is defined on {self.node} outside MirrorPair: remove "
            f"it there (virsh undefine {name}) or rename the module's domain"
        )

    def _checked_definition(self) -> tuple[str, vm_xml.DomainSpec]:
        text, spec = self._definition()
        problems = vm_xml.problems(spec, self.directories)
        problems += _backing_chain_problems(spec, self.directories)
        if problems:
            raise ResourceError(f"domain {spec.name} cannot run from the replicated copy: "
                                + "; ".join(problems))  # fmt: skip
        self._follow_name(spec)
        return text, spec

    def _node_text(self, text: str) -> str:
        """ "{node}" in the definition is this node's id, as in the config: two nodes on
        one machine (the demo) need two domain names and two mount paths."""
        return text.replace("{node}", self.node)

    # -- Resource --------------------------------------------------------------------------
    async def start(self) -> ResourceResult:
        self._log("info", f"starting domain {self.conn.domain} on {self.node}")
        began = time.monotonic()
        try:
            await asyncio.to_thread(_libvirt_said, self._start)
        except ResourceError as e:
            self._log("error", str(e))
            return ResourceResult(False, str(e))
        took = time.monotonic() - began
        self._log("info", f"domain {self.conn.domain} started on {self.node} ({took:.1f}s)")
        return ResourceResult(True, f"domain {self.conn.domain} started ({took:.1f}s)")

    def _start(self) -> None:
        lv = require_libvirt()
        self._stopping = False
        xml, spec = self._checked_definition()
        self._spec = spec
        dom = self.conn.lookup()
        if dom is not None:
            if dom.isPersistent():
                raise ResourceError(self._defined_outside())
            if dom.isActive():
                self._state = "running"
                return  # it runs here already (started by this agent a moment ago)
        conn = self.conn.get()
        free = conn.getFreeMemory()
        if spec.memory_bytes > free:
            raise ResourceError(f"not enough memory on {self.node} to start domain "
                                f"{spec.name}: it needs {spec.memory_bytes >> 20} MiB, "
                                f"{free >> 20} MiB free")  # fmt: skip
        self._last_event = ""
        try:
            conn.createXML(xml, 0)
        except lv.libvirtError as e:  # libvirt's own words: they name what QEMU refused
            raise ResourceError(
                f"libvirt could not start domain {spec.name} on {self.node}: "
                f"{e.get_error_message()}"
            ) from None
        self._state = "running"

    async def stop(self, force: bool = False) -> ResourceResult:
        try:
            how = await asyncio.to_thread(_libvirt_said, self._stop, force)
        except ResourceError as e:
            self._log("error", str(e))
            return ResourceResult(False, str(e))
        self._log("info", f"domain {self.conn.domain} {how}")
        return ResourceResult(True, f"domain {self.conn.domain} {how}")

    def _stop(self, force: bool) -> str:
        # Its end is asked for: no warning for the events it brings. libvirt delivers them
        # on its own thread, possibly after this returns, so the flag holds until the
        # next start.
        self._stopping = True
        return self._stop_domain(force)

    def _stop_domain(self, force: bool) -> str:
        lv = require_libvirt()
        dom = self.conn.lookup()
        if dom is None or not dom.isActive():
            self._state = "shut off"
            return "not running"
        began = time.monotonic()
        try:
            if not force:
                self._log("info", f"shutting down domain {self.conn.domain} (ACPI, up to "
                          f"{self.stop_timeout_s:g}s)")  # fmt: skip
                dom.shutdown()  # ACPI power button: the guest shuts down cleanly
                self._state = "shutting down"  # the status says so while it is asked to
                deadline = began + self.stop_timeout_s
                while time.monotonic() < deadline:
                    if self.conn.lookup() is None or not dom.isActive():
                        self._state = "shut off"
                        return f"shut down cleanly ({time.monotonic() - began:.1f}s)"
                    time.sleep(SHUTDOWN_POLL_S)
                self._log("warning", f"domain {self.conn.domain} did not shut down within "
                          f"{self.stop_timeout_s:g}s: destroying it")  # fmt: skip
            dom.destroy()
        except lv.libvirtError as e:
            if self.conn.lookup() is None:  # a transient domain vanishes as it ends
                self._state = "shut off"
                how = "destroyed" if force else "shut down cleanly"
                return f"{how} ({time.monotonic() - began:.1f}s)"
            raise ResourceError(f"cannot stop domain {self.conn.domain}: "
                                f"{e.get_error_message()}") from None  # fmt: skip
        self._state = "shut off"
        return "destroyed" + ("" if force else " after the shutdown timeout")

    async def check(self) -> ResourceResult:
        try:
            return await asyncio.to_thread(_libvirt_said, self._check)
        except ResourceError as e:
            return ResourceResult(False, str(e))

    def _check(self) -> ResourceResult:
        lv = require_libvirt()
        try:
            dom = self.conn.lookup()
        except ResourceError as e:
            # libvirtd restarting: QEMU (the guest) runs on without it. Restarting or
            # failing over blind would cut a running guest off; look again next time.
            return ResourceResult(False, f"{e}; the domain's state is unknown: not acted on",
                                  unknown=True)  # fmt: skip
        if dom is None or not dom.isActive():
            self._state = "shut off"
            why = f": {self._last_event}" if self._last_event else ""
            return ResourceResult(False, f"domain {self.conn.domain} is not running{why}")
        state, reason = dom.state()
        if state == lv.VIR_DOMAIN_PAUSED:
            self._state = "paused on an I/O error" if reason == lv.VIR_DOMAIN_PAUSED_IOERROR \
                else "paused"  # fmt: skip
            return ResourceResult(False, f"domain {self.conn.domain} is {self._state}")
        if state != lv.VIR_DOMAIN_RUNNING:
            self._state = "not running"
            return ResourceResult(False, f"domain {self.conn.domain} is not running "
                                  f"(libvirt state {state}/{reason})")  # fmt: skip
        self._state = "running"
        if self.guest_agent:
            import libvirt_qemu  # shipped with libvirt-python

            try:
                libvirt_qemu.qemuAgentCommand(dom, json.dumps({"execute": "guest-ping"}),
                                              GUEST_AGENT_TIMEOUT_S, 0)  # fmt: skip
            except lv.libvirtError as e:
                since = time.monotonic() - self._rebooted_at
                if since < self.start_timeout_s:  # its own reboot: given a start's time
                    return ResourceResult(True, f"domain {self.conn.domain} rebooted itself "
                                          f"{since:.0f}s ago; its guest agent is not up "
                                          "yet")  # fmt: skip
                return ResourceResult(False, f"the guest agent of {self.conn.domain} does not "
                                      f"answer: {e.get_error_message()}",
                                      not_up_yet=True)  # fmt: skip
        return ResourceResult(True, f"domain {self.conn.domain} is running")

    async def can_run(self) -> ResourceResult:
        try:
            return await asyncio.to_thread(_libvirt_said, self._can_run)
        except ResourceError as e:
            return ResourceResult(False, str(e))

    def _can_run(self) -> ResourceResult:
        dom = self.conn.lookup()  # ResourceError: libvirt is not reachable
        name = self.conn.domain
        if dom is not None and dom.isActive():
            return ResourceResult(True, f"domain {name} runs on {self.node}")
        if dom is not None and dom.isPersistent():
            return ResourceResult(False, self._defined_outside())
        spec = self._read_spec(self._in_copy(self.domain_path))
        self._spec = spec
        self._follow_name(spec)
        problems = vm_xml.problems(spec, self.directories)
        if problems:
            return ResourceResult(False, f"domain {name} could not start from the replicated "
                                  "copy: " + "; ".join(problems))  # fmt: skip
        free = self.conn.get().getFreeMemory()
        if spec.memory_bytes > free:
            return ResourceResult(False, f"not enough memory on {self.node} to start domain "
                                  f"{name}: it needs {spec.memory_bytes >> 20} MiB, "
                                  f"{free >> 20} MiB free")  # fmt: skip
        return ResourceResult(True, f"{self.node} can start domain {name} "
                              f"({free >> 20} MiB free)")  # fmt: skip

    async def found_running(self) -> bool:
        def active() -> bool:
            dom = self.conn.lookup()
            return dom is not None and bool(dom.isActive())

        try:
            return await asyncio.to_thread(active)
        except ResourceError as e:
            self._log("warning", str(e))
            return False

    def describe(self) -> ResourceInfo:
        spec = self._spec
        if spec is None:
            return ResourceInfo(self.kind, self._state)
        disks = tuple((d.target, d.source, _size(self._in_copy(Path(d.source))))
                      for d in spec.disks if d.source)  # fmt: skip
        details = VmDetails(spec.name, spec.vcpus, spec.memory_bytes, disks)
        return ResourceInfo(self.kind, self._state, vm=details)

    def _event(self, event: int, detail: int) -> None:
        """libvirt's event thread: say what happened, let the driver check now."""
        what = describe_event(event, detail)
        lv = require_libvirt()
        ended = event in (lv.VIR_DOMAIN_EVENT_STOPPED, lv.VIR_DOMAIN_EVENT_CRASHED,
                          lv.VIR_DOMAIN_EVENT_SUSPENDED)  # fmt: skip
        if ended and not self._stopping:
            self._last_event = what
            self._log("warning", f"domain {self.conn.domain} {what}")
        if self._on_event is not None:
            self._on_event()

    def _reboot_event(self) -> None:
        """libvirt's event thread: the guest rebooted itself (an update inside the VM, say);
        the domain runs on. With the guest agent checked, its silence while the guest boots
        again is not a failure for up to start_timeout_s."""
        self._rebooted_at = time.monotonic()
        self._log("info", f"domain {self.conn.domain} rebooted from inside the guest")
        if self._on_event is not None:
            self._on_event()

    def _agent_event(self, connected: bool) -> None:
        """libvirt's event thread: the guest agent came up (the guest booted) or went away;
        the driver checks now rather than at its next interval."""
        if connected:
            self._rebooted_at = -math.inf  # booted again: its silence counts from now on
        elif not self._stopping:
            self._log("warning", f"the guest agent of {self.conn.domain} disconnected")
        if self._on_event is not None:
            self._on_event()


def _libvirt_said(fn: Callable[..., T], *args: Any) -> T:
    """Run a worker with libvirt's own errors as ResourceError (a domain gone between two
    calls, a libvirtd restarting under a connection that looked alive): the driver then
    reports a failed start, stop or check instead of losing the task."""
    lv = require_libvirt()
    try:
        return fn(*args)
    except lv.libvirtError as e:
        raise ResourceError(f"libvirt: {e.get_error_message()}") from None


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def backing_files(image: str) -> list[str]:
    """The backing chain of a qcow2 image, nearest first (qemu-img, may be slow on a
    long chain); ResourceError if it cannot be read."""
    try:
        r = subprocess.run(["qemu-img", "info", "--backing-chain", "--output=json", "-U",
                            image], capture_output=True, text=True, timeout=30)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ResourceError(f"cannot inspect {image}: {e}") from None
    if r.returncode != 0:
        raise ResourceError(f"cannot inspect {image}: {r.stderr.strip()}")
    return [img.get("filename", "") for img in json.loads(r.stdout)[1:]]


def _backing_chain_problems(spec: vm_xml.DomainSpec, directories: list[str]) -> list[str]:
    """A qcow2 image whose backing file lies outside the replicated directory would boot
    from something the other node does not have."""
    out: list[str] = []
    for d in spec.disks:
        if d.kind != "file" or d.fmt != "qcow2" or not d.source:
            continue
        try:
            chain = backing_files(d.source)
        except ResourceError as e:
            out.append(str(e))
            continue
        out += [f"disk {d.target}'s backing file {path} is outside the replicated directory"
                for path in chain if not vm_xml._inside(path, directories)]  # fmt: skip
    return out
