"""What the server installer (installer/install-agent.sh) prints at its end: the ports to
open in the firewall (read from the cluster configuration when there is one, otherwise
the defaults) and, on a server not set up yet, the pairing code for the console's wizard.

    python -m node_agent.host.install_summary --config /etc/mirrorpair/cluster.toml \\
        --state-dir /var/lib/mirrorpair [--node node1]

Pairing is opened here, before the installer starts the service, so that the code and the
certificate fingerprint printed are the ones the agent then serves (the agent opens pairing
itself only when no code exists). A code already open is printed again, not replaced: a
second run of the installer changes nothing in the state directory.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from node_agent.config.load import DEFAULT_STATE_DIR, ConfigError, load_config
from node_agent.config.model import (
    DEFAULT_API_PORT,
    DEFAULT_HEARTBEAT_PORT,
    DEFAULT_REPLICATION_PORT,
    ClusterConfig,
)
from node_agent.host.state import StateDir, fingerprint

MDNS_PORT = 5353


@dataclass(frozen=True)
class FirewallPort:
    port: int
    protocol: str  # "tcp" or "udp"
    source: str  # who must be let in
    what: str


def _port(hostport: str) -> int:
    return int(hostport.rpartition(":")[2])


def firewall_ports(config: ClusterConfig | None, node_id: str = "") -> list[FirewallPort]:
    """The ports this node listens on, to open in its firewall (inbound). Without a
    configuration, the defaults an agent uses; with one, this node's (both nodes', each
    named, when which node this is is not known yet)."""
    mdns = FirewallPort(MDNS_PORT, "udp", "the console PC's LAN (optional)",
                        "mDNS: the setup wizard finds this server")  # fmt: skip
    if config is None:
        return [
            FirewallPort(DEFAULT_API_PORT, "tcp", "the other server, the console's PC",
                         "the API (gRPC, mutual TLS); the pairing calls until set up"),
            FirewallPort(DEFAULT_REPLICATION_PORT, "tcp", "the other server",
                         "replication streams (mutual TLS)"),
            FirewallPort(DEFAULT_HEARTBEAT_PORT, "udp", "the other server, on each heartbeat "
                         "network", "heartbeats (HMAC-signed)"),
            mdns,
        ]  # fmt: skip
    nodes = [node_id] if node_id in config.nodes else sorted(config.nodes)
    ports: list[FirewallPort] = []

    def add(entry: FirewallPort) -> None:
        for i, known in enumerate(ports):  # one line per port: the reasons joined
            if (known.port, known.protocol) == (entry.port, entry.protocol):
                if entry.what not in known.what:
                    what = f"{known.what}; {entry.what}"
                    ports[i] = FirewallPort(known.port, known.protocol, known.source, what)
                return
        ports.append(entry)

    for node in nodes:
        tag = "" if len(nodes) == 1 else f" ({node})"
        cfg = config.nodes[node]
        add(FirewallPort(_port(cfg.api), "tcp", "the other server, the console's PC",
                         f"the API (gRPC, mutual TLS){tag}"))  # fmt: skip
        add(FirewallPort(cfg.replication_address[1], "tcp", "the other server",
                         f"replication streams (mutual TLS){tag}"))  # fmt: skip
        for net in config.heartbeat:
            add(FirewallPort(net.port, "udp", "the other server",
                             f"heartbeats on {net.name} ({net.addresses[node]}){tag}"))  # fmt: skip
    if config.metrics.listen:  # docs/metrics.md
        add(FirewallPort(_port(config.metrics.listen), "tcp", "the monitoring server",
                         "Prometheus metrics (no authentication)"))  # fmt: skip
    ports.append(mdns)
    return ports


def render_ports(ports: list[FirewallPort]) -> list[str]:
    width = max(len(f"{p.port}/{p.protocol}") for p in ports)
    return [f"  {f'{p.port}/{p.protocol}':<{width}}  from {p.source}: {p.what}" for p in ports]


def pairing_lines(state: StateDir, configured: bool) -> list[str]:
    """On a server not set up yet (no configuration, not paired): open pairing, or keep
    the code already open, and say what to type in the console."""
    paired = state.paired()
    if configured or paired is not None:
        who = f"paired as {paired.node_id} of cluster {paired.cluster!r}" if paired else ""
        return [f"this server is already set up ({who or 'configured'}): no pairing code; "
                "`mirrorpair-agent --open-pairing` reopens pairing"]  # fmt: skip
    # The certificate first: the agent serves it as soon as the code exists.
    fp = fingerprint(state.pairing_identity()[0])
    code = state.code() or state.open_pairing()
    return [
        f"pairing code: {code}",
        f"certificate fingerprint: {fp}",
        "enter the code in the console: Cluster > Set up a new cluster... (compare the "
        "fingerprint's start with what the wizard shows)",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m node_agent.host.install_summary")
    p.add_argument("--config", default="/etc/mirrorpair/cluster.toml")
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR)
    p.add_argument("--node", default="", help="this node's id, if known")
    args = p.parse_args(argv)
    state = StateDir(args.state_dir)
    config: ClusterConfig | None = None
    note = ""
    if Path(args.config).exists():
        try:
            config = load_config(args.config, args.state_dir)
        except ConfigError as e:
            note = f"  ({args.config} is not valid, so these are the defaults: {e})"
    paired = state.paired()
    node = args.node or (paired.node_id if paired else "")
    print("Firewall: open these ports (inbound) on this server:")
    print("\n".join(render_ports(firewall_ports(config, node))))
    if note:
        print(note)
    print("\n".join(pairing_lines(state, Path(args.config).exists())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
