"""The setup wizard without Qt (issue 12, point 5): the operator's answers, the order of
the pages, what each page refuses, and the steps that ask the servers.

    find servers -> pair -> heartbeat networks -> witness -> modules -> virtual IP
    -> review -> apply

Nothing reaches a server's configuration before ``apply`` (the wizard's Finish). The same
object edits a running cluster (``SetupFlow.from_running``): it starts at the heartbeat
networks, keeps what the operator does not change, and writes the running version + 1.
The async steps take the backend as an argument: the flow holds no connection.
"""

from __future__ import annotations

import copy
import secrets as _secrets
import time
from collections.abc import Callable
from enum import StrEnum

from console.setup import checks, steps
from console.setup.backend import (
    AddressFacts,
    ApplyOutcome,
    FoundServer,
    HostFacts,
    PathFacts,
    SetupBackend,
    VmFacts,
)
from console.setup.cluster_toml import ClusterPlan, parse_running, render
from console.setup.netplan import propose_networks, vip_placement
from console.setup.plan import (
    NODE_IDS,
    CheckerPlan,
    ModulePlan,
    NetworkPlan,
    Problem,
    VipPlan,
    WitnessPlan,
    blocking,
    default_checkers,
    with_default_port,
)
from console.setup.templates import ModuleTemplate

SECRET_BYTES = 32  # token_urlsafe(32): 43 characters, well over the agent's 16


class Page(StrEnum):
    FIND = "find"
    PAIR = "pair"
    NETWORKS = "networks"
    WITNESS = "witness"
    MODULES = "modules"
    VIP = "vip"
    REVIEW = "review"
    APPLY = "apply"


NEW_PAGES = tuple(Page)
EDIT_PAGES = NEW_PAGES[2:]  # the servers are paired already


class SetupFlow:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock  # the pairing cool-down is timed with it (tests pass their own)
        self.running: ClusterPlan | None = None  # the configuration being edited
        self.page = Page.FIND
        self.cluster_name = ""
        # find servers
        self.servers: list[FoundServer] = []
        self.discover_error = ""
        self.reach_errors: dict[str, str] = {}  # typed address -> why it cannot be reached
        self.chosen: dict[str, str] = {}  # node id -> server address
        # pair
        self.codes: dict[str, str] = {}
        self.pair_errors: dict[str, str] = {}
        self.attempts_left: dict[str, int] = {}
        self.cooldown_until: dict[str, float] = {}
        self.hosts: dict[str, HostFacts] = {}
        # configuration
        self.networks: list[NetworkPlan] = []
        self.witness = WitnessPlan()
        self.modules: list[ModulePlan] = []
        self.pulse_ms, self.timeout_ms = 500, 3000
        # what the servers said about the plan
        self.vms: dict[str, list[VmFacts]] = {}
        self.vm_errors: dict[str, str] = {}
        self.paths: dict[tuple[str, str], PathFacts] = {}  # (node, path) -> facts
        self.addresses: dict[tuple[str, str], AddressFacts] = {}  # (node, ip) -> facts
        self.probe_errors: dict[str, str] = {}  # node id -> why its probe failed
        # apply
        self.outcome: ApplyOutcome | None = None
        self.apply_error = ""
        self._secret = _secrets.token_urlsafe(SECRET_BYTES)

    # ----- starting points --------------------------------------------------------------
    @classmethod
    def from_running(
        cls,
        toml_text: str,
        hosts: dict[str, HostFacts],
        clock: Callable[[], float] = time.monotonic,
    ) -> SetupFlow:
        """Edit a running cluster: ``toml_text`` as its agents serve it (GetConfig, the
        secret masked), ``hosts`` both nodes' facts. RunningConfigError if unreadable."""
        plan = parse_running(toml_text)
        flow = cls(clock=clock)
        flow.running = plan
        flow.cluster_name = plan.name
        flow.hosts = {n: hosts[n] for n in NODE_IDS}
        # Copies the pages change; ``running`` stays as the agents run it.
        flow.networks = copy.deepcopy(plan.networks)
        flow.witness = copy.deepcopy(plan.witness)
        flow.modules = copy.deepcopy(plan.modules)
        flow.pulse_ms, flow.timeout_ms = plan.pulse_ms, plan.timeout_ms
        flow._secret = plan.secret  # "***" when masked: the agents keep their own
        flow.page = EDIT_PAGES[0]
        return flow

    @classmethod
    async def edit(cls, backend: SetupBackend, toml_text: str) -> SetupFlow:
        """``from_running`` with both nodes' facts asked from the backend."""
        hosts = {n: await backend.host_facts(n) for n in NODE_IDS}
        return cls.from_running(toml_text, hosts)

    @property
    def editing(self) -> bool:
        return self.running is not None

    @property
    def secret(self) -> str:
        """The heartbeat secret written in the configuration (generated for a new cluster,
        for the caller to keep in the keyring; the console never writes it to disk)."""
        return self._secret

    @property
    def version(self) -> int:
        """The version the configuration is written as: the newest either node runs + 1."""
        known = [h.config_version for h in self.hosts.values()]
        if self.running is not None:
            known.append(self.running.version)
        return max(known, default=0) + 1

    # ----- page order -------------------------------------------------------------------
    def pages(self) -> tuple[Page, ...]:
        return EDIT_PAGES if self.editing else NEW_PAGES

    def next_page(self, page: Page | None = None) -> Page | None:
        pages = self.pages()
        i = pages.index(page or self.page)
        return pages[i + 1] if i + 1 < len(pages) else None

    def previous_page(self, page: Page | None = None) -> Page | None:
        pages = self.pages()
        i = pages.index(page or self.page)
        return pages[i - 1] if i > 0 else None

    def check(self, page: Page | None = None) -> list[Problem]:
        """What stops (or, as warnings, worries) ``page``, from what is known now."""
        return checks.check_page(self, page or self.page)

    def can_advance(self, page: Page | None = None) -> bool:
        page = page or self.page
        if page is Page.APPLY:
            return self.done
        return not blocking(self.check(page))

    def enter(self, page: Page) -> None:
        """``page`` is shown: fill in what it proposes from the answers so far."""
        self.page = page
        if page is Page.NETWORKS and not self.networks and len(self.hosts) == 2:
            self.networks = propose_networks(self.hosts)

    def go_next(self) -> Page | None:
        """To the next page when this one has nothing blocking; the page shown."""
        nxt = self.next_page()
        if nxt is not None and self.can_advance():
            self.enter(nxt)
        return self.page

    def go_back(self) -> Page:
        prev = self.previous_page()
        if prev is not None:
            self.page = prev
        return self.page

    async def validate(self, backend: SetupBackend, page: Page | None = None) -> list[Problem]:
        """Next was pressed: ask the servers what this page needs checked (pair the nodes
        with a code, probe directories or VIPs), then this page's problems."""
        page = page or self.page
        if page is Page.PAIR:
            for node in NODE_IDS:
                if node not in self.hosts and node in self.chosen and self.codes.get(node):
                    await self.pair(backend, node)
        elif page is Page.MODULES:
            await self.probe_directories(backend)
        elif page is Page.VIP:
            await self.probe_vips(backend)
        return self.check(page)

    # ----- find servers -----------------------------------------------------------------
    async def discover(self, backend: SetupBackend, seconds: float = 3.0) -> list[FoundServer]:
        return await steps.discover(self, backend, seconds)

    async def reach(self, backend: SetupBackend, address: str) -> FoundServer | None:
        """The server at a typed address, added and chosen; None (error kept) if not."""
        return await steps.reach(self, backend, with_default_port(address))

    def server(self, address: str) -> FoundServer | None:
        return next((s for s in self.servers if s.address == address), None)

    def choose(self, address: str, node_id: str | None = None) -> None:
        """Choose a server, as ``node_id`` or the first node still free."""
        free = [n for n in NODE_IDS if n not in self.chosen]
        if node_id is None:
            if address in self.chosen.values() or not free:
                return
            node_id = free[0]
        self.unchoose(address)
        old = self.chosen.get(node_id)
        if old is not None and old != address:
            self._forget_pairing(node_id)
        self.chosen[node_id] = address

    def unchoose(self, address: str) -> None:
        for node, chosen in list(self.chosen.items()):
            if chosen == address:
                del self.chosen[node]
                self._forget_pairing(node)

    def swap_nodes(self) -> None:
        """node1 becomes node2 and the other way round (before pairing)."""
        a, b = self.chosen.get(NODE_IDS[0]), self.chosen.get(NODE_IDS[1])
        codes = {n: self.codes.get(o, "") for n, o in zip(NODE_IDS, NODE_IDS[::-1], strict=True)}
        self.chosen = {n: s for n, s in zip(NODE_IDS, (b, a), strict=True) if s is not None}
        for node in NODE_IDS:
            self._forget_pairing(node)
        self.codes = {n: c for n, c in codes.items() if c}  # a code belongs to its server

    def _forget_pairing(self, node: str) -> None:
        for d in (self.hosts, self.codes, self.pair_errors, self.attempts_left):
            d.pop(node, None)  # type: ignore[attr-defined]
        self.cooldown_until.pop(node, None)
        self.networks = []  # proposed again from the new pair's addresses

    # ----- pair -------------------------------------------------------------------------
    def cooldown_left(self, node: str) -> float:
        return max(0.0, self.cooldown_until.get(node, 0.0) - self.clock())

    async def pair(self, backend: SetupBackend, node: str) -> HostFacts | None:
        """Pair the server chosen as ``node`` with its code; None (error kept) if refused."""
        return await steps.pair(self, backend, node)

    # ----- modules ----------------------------------------------------------------------
    async def load_vms(self, backend: SetupBackend, node: str) -> list[VmFacts]:
        return await steps.load_vms(self, backend, node)

    def module(self, name: str) -> ModulePlan:
        for m in self.modules:
            if m.name == name:
                return m
        raise KeyError(name)

    def add_vm(self, vm: VmFacts, name: str = "") -> ModulePlan:
        m = steps.vm_module(vm, name)
        m.checkers = default_checkers(m)
        self.modules.append(m)
        return m

    def add_app(
        self,
        name: str,
        directories: list[str],
        start: str,
        stop: str,
        check: str = "",
        preferred: str = NODE_IDS[0],
        template: ModuleTemplate | None = None,
    ) -> ModulePlan:
        """A new application module from the form. With a ``template`` (its fields were
        prefilled from it) the module also takes the template's other settings and its
        checkers (a process checker only with a check command)."""
        m = ModulePlan(
            name.strip(),
            "app",
            preferred,
            [d.strip() for d in directories if d.strip()],
            start.strip(),
            stop.strip(),
            check.strip(),
        )
        m.checkers = default_checkers(m)
        if template is not None:
            if template.kind != "app":
                raise ValueError(f"template {template.key} is for a {template.kind} module")
            m.extra = template.settings()
            kept = [c for c in template.checkers() if c.kind != "process" or m.check]
            names = {c.name for c in kept}
            m.checkers = kept + [c for c in m.checkers if c.name not in names]
        self.modules.append(m)
        return m

    def remove_module(self, name: str) -> None:
        self.modules = [m for m in self.modules if m.name != name]

    def add_checker(self, module: str, checker: CheckerPlan) -> None:
        self.module(module).checkers.append(checker)

    def remove_checker(self, module: str, name: str) -> None:
        m = self.module(module)
        m.checkers = [c for c in m.checkers if c.name != name]

    async def probe_directories(self, backend: SetupBackend) -> None:
        await steps.probe_directories(self, backend)

    # ----- virtual IP -------------------------------------------------------------------
    def set_vip(self, module: str, address: str) -> None:
        """The module's VIP ("" none), placed on each node's interface in its subnet."""
        m = self.module(module)
        address = address.strip()
        if not address:
            m.vip = None
        else:
            _, ifaces = vip_placement(self.hosts, address)
            m.vip = VipPlan(address, ifaces)
        if not self.is_running_module(m.name):  # a running module keeps its checkers
            auto = [c for c in default_checkers(m) if c.kind == "interface"]
            m.checkers = [c for c in m.checkers if c.name != "uplink"] + auto

    def vip_address(self, m: ModulePlan) -> str:
        """The VIP as written: with the prefix of the nodes' subnet ("" when it has none)."""
        if m.vip is None:
            return ""
        iface, _ = vip_placement(self.hosts, m.vip.address)
        return str(iface) if iface is not None else m.vip.address

    def is_running_module(self, name: str) -> bool:
        return self.running is not None and any(x.name == name for x in self.running.modules)

    def running_vip(self, name: str) -> str:
        """The address the running configuration gives module ``name`` ("" none)."""
        if self.running is None:
            return ""
        m = next((x for x in self.running.modules if x.name == name), None)
        return m.vip.address.split("/")[0] if m is not None and m.vip is not None else ""

    async def probe_vips(self, backend: SetupBackend) -> None:
        await steps.probe_vips(self, backend)

    # ----- review and apply -------------------------------------------------------------
    def cluster_plan(self) -> ClusterPlan:
        return steps.cluster_plan(self)

    def toml_text(self) -> str:
        """The configuration the apply sends (no [tls], no data_dir for a new cluster)."""
        return render(self.cluster_plan())

    def summary(self) -> list[str]:
        return steps.summary(self)

    def expected_versions(self) -> dict[str, int]:
        return {n: self.hosts[n].config_version for n in NODE_IDS if n in self.hosts}

    @property
    def done(self) -> bool:
        return self.outcome is not None and self.outcome.applied

    async def apply(self, backend: SetupBackend) -> bool:
        """Send the configuration to both nodes (both or neither); True once applied."""
        return await steps.apply(self, backend)
