"""The cluster configuration model: one TOML file, identical on both nodes.

Pure data: parsing and validation live in ``node_agent.config.load``. Every
value here has already been checked. ``{node}`` in path values is replaced by
the local node id when a node's view is taken (``ClusterConfig.paths_for``), so
one file serves both nodes, and two agents can share a machine in the demo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

NODE_IDS = ("node1", "node2")

# The ports an agent uses by default: the one place they are defined (the installer's
# summary, the agent's --listen and the replication wire read them from here).
DEFAULT_API_PORT = 7700  # gRPC API; mirrorpair-agent --listen without configuration
DEFAULT_HEARTBEAT_PORT = 7701  # UDP heartbeats, [[heartbeat]] port
DEFAULT_REPLICATION_PORT = 7702  # replication streams, [nodes.X] replication


def other_node(node_id: str) -> str:
    return NODE_IDS[1] if node_id == NODE_IDS[0] else NODE_IDS[0]


class CheckerKind(StrEnum):
    PROCESS = "process"  # the app resource's check command / pid alive
    TCP = "tcp"
    PING = "ping"
    INTERFACE = "interface"
    COMMAND = "command"
    HOST = "host"  # this node could start the resource now (a VM: libvirt, memory, definition)


class CheckerAction(StrEnum):
    RESTART = "restart"  # restart locally up to maxloop, then stopstart
    STOPSTART = "stopstart"  # fail over at once
    WAIT = "wait"  # go WAIT until it clears


class CheckerWhen(StrEnum):
    """Where a checker runs (DESIGN §6). A probe of the application passes only where the
    application runs: on the secondary it would fail and stop the secondary from ever
    taking over. A probe of the node's surroundings tells each node about itself."""

    PRIMARY = "primary"  # where the application runs (the primary), while it runs
    BOTH = "both"  # on both nodes, while the module is started there
    STANDBY = "standby"  # where it does not run (the secondary): could it take over?


# The default of `when` per kind: the application's own probes only where it runs.
DEFAULT_WHEN = {
    CheckerKind.PROCESS: CheckerWhen.PRIMARY,
    CheckerKind.TCP: CheckerWhen.PRIMARY,
    CheckerKind.COMMAND: CheckerWhen.PRIMARY,
    CheckerKind.PING: CheckerWhen.BOTH,
    CheckerKind.INTERFACE: CheckerWhen.BOTH,
    CheckerKind.HOST: CheckerWhen.STANDBY,
}


@dataclass(frozen=True)
class CheckerConfig:
    name: str
    kind: CheckerKind
    target: str  # host:port, host, interface name, command line; "" for process
    interval_s: float = 5.0
    timeout_s: float = 2.0
    failures: int = 1  # consecutive failures before the action is taken
    action: CheckerAction = CheckerAction.RESTART
    when: CheckerWhen | None = None  # None: DEFAULT_WHEN[kind]

    @property
    def runs(self) -> CheckerWhen:
        return self.when or DEFAULT_WHEN[self.kind]


@dataclass(frozen=True)
class VipConfig:
    address: str  # "10.0.0.100/24"
    interface: dict[str, str]  # node id -> interface name


DEFAULT_LIBVIRT_URI = "qemu:///system"


@dataclass(frozen=True)
class VmConfig:
    """A ``vm`` module's libvirt domain (DESIGN §6)."""

    domain: str  # absolute path of the domain XML, inside one of the module's directories
    uri: str = DEFAULT_LIBVIRT_URI
    guest_agent: bool = False  # the checker also asks the QEMU guest agent


@dataclass(frozen=True)
class ModuleConfig:
    name: str
    kind: str  # "app" or "vm"
    preferred: str  # preferred primary node id
    start: str = ""
    stop: str = ""
    check: str = ""
    start_timeout_s: float = 30.0
    stop_timeout_s: float = 30.0
    check_timeout_s: float = 10.0
    maxloop: int = 3  # local restarts allowed within loop_interval_s before failover
    loop_interval_s: float = 300.0
    defaultprim: bool = False  # swap back to the preferred node after it resyncs
    autostart: bool = True  # start the module when the agent starts
    vip: VipConfig | None = None
    checkers: tuple[CheckerConfig, ...] = ()
    directories: tuple[str, ...] = ()  # replicated directories (mount paths)
    resync_mbps: float = 0.0  # resync bandwidth cap in MB/s; 0 = unlimited
    # "sync": a write returns once the secondary applied it; "second": once it received it.
    async_mode: str = "sync"
    # The kernel's writeback cache on the mount: buffered writes return from the page
    # cache, as on a local disk, and are safe on both nodes at the durability points
    # (fsync, fdatasync, O_SYNC, O_DIRECT, close). False: every write() waits.
    write_cache: bool = True
    vm: VmConfig | None = None  # kind "vm" only


@dataclass(frozen=True)
class HeartbeatNetwork:
    name: str
    addresses: dict[str, str]  # node id -> local IP address on this network
    port: int = DEFAULT_HEARTBEAT_PORT


@dataclass(frozen=True)
class WitnessConfig:
    ping: tuple[str, ...] = ()
    tcp: tuple[str, ...] = ()  # "host:port"
    interval_s: float = 1.0
    timeout_s: float = 1.0

    @property
    def configured(self) -> bool:
        return bool(self.ping or self.tcp)


@dataclass(frozen=True)
class MetricsConfig:
    """The agent's Prometheus endpoint (docs/metrics.md)."""

    listen: str = ""  # "host:port" it serves /metrics on; "" = no endpoint


@dataclass(frozen=True)
class TlsConfig:
    ca: str
    cert: str  # may contain {node}
    key: str  # may contain {node}


ALERT_EVENTS = ("failover", "degraded", "split-brain", "restored")


@dataclass(frozen=True)
class HookConfig:
    """An alert hook: run without a shell, the alert in its environment and on stdin."""

    command: tuple[str, ...]
    timeout_s: float = 10.0


@dataclass(frozen=True)
class EmailConfig:
    """Alerts by e-mail over SMTP (docs/alerts.md)."""

    host: str
    sender: str  # the TOML key is "from"
    to: tuple[str, ...]
    port: int = 0  # 0: the default of ``security`` (465 ssl, 587 starttls, 25 none)
    security: str = "starttls"  # "starttls", "ssl" or "none"
    user: str = ""
    password_file: str = ""  # read at each send: the password is never in the TOML
    timeout_s: float = 20.0

    @property
    def smtp_port(self) -> int:
        return self.port or {"ssl": 465, "starttls": 587}.get(self.security, 25)


@dataclass(frozen=True)
class AlertsConfig:
    """``[alerts]``: what reaches the operator with no console open (docs/alerts.md)."""

    events: tuple[str, ...] = ALERT_EVENTS
    settle_s: float = 30.0  # degraded after this long; restored after this long in sync
    batch_s: float = 5.0  # e-mail: the alerts of this long after one go with it (0: alone)
    hook: HookConfig | None = None
    email: EmailConfig | None = None

    @property
    def enabled(self) -> bool:
        return self.hook is not None or self.email is not None


@dataclass(frozen=True)
class NodeConfig:
    node_id: str
    api: str  # "host:port" the agent's gRPC server listens on and the peer/console dial
    # "host:port" of the replication stream receiver; default: the api host, port 7702.
    replication: str = ""

    @property
    def replication_address(self) -> tuple[str, int]:
        if self.replication:
            host, _, port = self.replication.rpartition(":")
            return host.strip("[]"), int(port)
        host = self.api.rpartition(":")[0].strip("[]")
        return host, DEFAULT_REPLICATION_PORT


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    version: int
    secret: bytes  # HMAC key for heartbeats
    nodes: dict[str, NodeConfig]
    heartbeat: tuple[HeartbeatNetwork, ...]
    tls: TlsConfig
    data_dir: str  # may contain {node}
    pulse_s: float = 0.5
    timeout_s: float = 3.0
    witness: WitnessConfig = field(default_factory=WitnessConfig)
    modules: tuple[ModuleConfig, ...] = ()
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    source_text: str = ""  # the TOML as read, for GetConfig
    source_path: str = ""

    def module(self, name: str) -> ModuleConfig:
        for m in self.modules:
            if m.name == name:
                return m
        raise KeyError(name)

    def paths_for(self, node_id: str) -> NodePaths:
        def sub(value: str) -> Path:
            return Path(value.replace("{node}", node_id))

        return NodePaths(
            data_dir=sub(self.data_dir),
            ca=sub(self.tls.ca),
            cert=sub(self.tls.cert),
            key=sub(self.tls.key),
        )


@dataclass(frozen=True)
class NodePaths:
    data_dir: Path
    ca: Path
    cert: Path
    key: Path
