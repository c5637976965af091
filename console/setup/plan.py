"""The wizard's answers as plain values (what the cluster TOML is made of), and the small
checks of one value that every page shares.

The console never imports the agent's config code (issue 12, point 8): the few rules the
wizard must apply before the agents see the text (names, addresses, checker kinds) are
restated here, and tests compare them with ``node_agent.config``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

NODE_IDS = ("node1", "node2")
NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
NAME_RULE = "1 to 64 characters from A-Z a-z 0-9 _ . -"
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOST_RE = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*")
_IFNAME_RE = re.compile(r"[^\s/]{1,15}")
_CODE_RE = re.compile(r"[A-Z0-9]{12}")
DEFAULT_API_PORT = 7700
DEFAULT_HEARTBEAT_PORT = 7701

# Where a checker runs by default (node_agent.config.model.DEFAULT_WHEN, restated: the
# console does not import the agent; a test keeps the two equal).
DEFAULT_WHEN = {
    "process": "primary",
    "tcp": "primary",
    "command": "primary",
    "ping": "both",
    "interface": "both",
    "host": "standby",
}
CHECKER_KINDS = tuple(DEFAULT_WHEN)
CHECKER_ACTIONS = ("restart", "stopstart", "wait")
CHECKER_WHENS = ("primary", "both", "standby")


@dataclass(frozen=True)
class Problem:
    """Something to fix on a page: ``field`` names what (as the page shows it), ``message``
    what is wrong and what to do. A warning is shown but does not stop Next."""

    field: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def blocking(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if not p.warning]


@dataclass
class NetworkPlan:
    """One heartbeat network: each node's address on it."""

    name: str
    addresses: dict[str, str]  # node id -> IP address
    port: int = DEFAULT_HEARTBEAT_PORT
    use: bool = True  # a proposal the user may leave out


@dataclass
class CheckerPlan:
    name: str
    kind: str
    target: str = ""
    action: str = "restart"
    when: str = ""  # "" = the kind's default
    extra: dict[str, Any] = field(default_factory=dict)  # other keys kept from a running file


@dataclass
class VipPlan:
    address: str  # as typed: "10.0.0.100" or "10.0.0.100/24"
    # node id -> interface; derived from the nodes' subnets unless kept from a running file
    interfaces: dict[str, str] = field(default_factory=dict)


@dataclass
class ModulePlan:
    name: str
    kind: str  # "vm" or "app"
    preferred: str = NODE_IDS[0]
    directories: list[str] = field(default_factory=list)
    start: str = ""  # app only
    stop: str = ""
    check: str = ""
    domain: str = ""  # vm only: the definition's file name in the directory ("" = NAME.xml)
    vm_domain: str = ""  # the libvirt domain it was made from (for the summary)
    checkers: list[CheckerPlan] = field(default_factory=list)
    vip: VipPlan | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # other keys kept from a running file


@dataclass
class WitnessPlan:
    ping: list[str] = field(default_factory=list)
    tcp: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def valid_name(text: str) -> bool:
    return bool(NAME_RE.fullmatch(text))


def name_from(text: str) -> str:
    """A config name made from a domain or directory name (other characters become -)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", text).strip("-")[:64]
    return name or "module"


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_host(text: str) -> bool:
    return is_ip(text) or bool(_HOST_RE.fullmatch(text))


def is_ifname(text: str) -> bool:
    return bool(_IFNAME_RE.fullmatch(text)) and text not in (".", "..")


def is_abspath(text: str) -> bool:
    return PurePosixPath(text).is_absolute()


def split_hostport(text: str) -> tuple[str, int] | None:
    """(host, port) of "host:port" or "[v6]:port"; None when it is not one."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        return None
    if host.startswith("[") and host.endswith("]"):
        return (host[1:-1], int(port)) if ":" in host and is_ip(host[1:-1]) else None
    return (host, int(port)) if ":" not in host and is_host(host) else None


def with_default_port(text: str, port: int = DEFAULT_API_PORT) -> str:
    """A typed server address with the agent's port added when none was given."""
    text = text.strip()
    if split_hostport(text):
        return text
    if is_ip(text) and ":" in text:
        return f"[{text}]:{port}"
    return f"{text}:{port}"


def normalise_code(text: str) -> str | None:
    """A pairing code as the agent prints it ("7KQ2-M9XD-4HTA"): case, spaces and dashes
    as typed do not matter; None when it cannot be one."""
    raw = re.sub(r"[\s-]", "", text).upper()
    if not _CODE_RE.fullmatch(raw):
        return None
    return f"{raw[0:4]}-{raw[4:8]}-{raw[8:12]}"


def default_checkers(module: ModulePlan) -> list[CheckerPlan]:
    """Sensible checkers for a new module. A VM's domain state and its standby's libvirt
    are checked by the agent without a section; an application's check command becomes
    its process checker; a VIP's interface is watched on both nodes, as in the example
    file, when it has one name on both (a checker has one target)."""
    out: list[CheckerPlan] = []
    if module.kind == "app" and module.check.strip():
        out.append(CheckerPlan("process", "process"))
    if module.vip is not None:
        names = set(module.vip.interfaces.values())
        if len(names) == 1 and len(module.vip.interfaces) == len(NODE_IDS):
            out.append(CheckerPlan("uplink", "interface", names.pop(), action="stopstart"))
    return out


def checker_target_problem(kind: str, target: str) -> str:
    """What is wrong with a checker's target for its kind ("" when fine)."""
    target = target.strip()
    if kind in ("process", "host"):
        return "" if not target else f'must be empty for a "{kind}" checker'
    if kind == "tcp":
        return "" if split_hostport(target) else "must be host:port, e.g. 127.0.0.1:80"
    if kind == "ping":
        return "" if is_host(target) else "must be an IP address or host name"
    if kind == "interface":
        return "" if is_ifname(target) else "must be a network interface name, e.g. eth0"
    if kind == "command":
        return "" if target else "must be a command line"
    return "unknown kind: one of " + ", ".join(CHECKER_KINDS)
