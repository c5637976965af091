"""What a new cluster configuration changes against the running one, and whether an
agent can apply it while it runs (DESIGN §7, issue 12 point 6). Pure: no I/O.

Module-level changes are always live: a module added is started, a module removed is
stopped, a module whose settings differ is stopped and started again, and every other
module keeps running untouched. Cluster-level keys are live only where both nodes keep
trusting each other between the two commits (they land a few milliseconds apart, or
much later if the console dies in between):

- ``pulse_ms`` / ``timeout_ms``: live while the node that commits first still fits the
  other's running values (its new pulse within a third of the peer's old timeout, its
  new timeout at least three of the peer's old pulses); else the first node to commit
  would take the silent-looking peer for dead.
- ``[alerts]``: live (the agent reads it at each alert).
- everything else (name, secret, nodes, heartbeat networks, witness, tls, data_dir):
  sockets, certificates, the heartbeat key or the module state's home would change
  under a running agent, and the two nodes would stop understanding each other between
  the commits. Refused, naming the key: restart both agents with the new file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum

from node_agent.config.model import ClusterConfig, ModuleConfig

# Cluster-level fields of ClusterConfig and the key the user writes for each.
_CLUSTER_KEYS = {
    "name": "cluster.name",
    "secret": "cluster.secret",
    "pulse_s": "cluster.pulse_ms",
    "timeout_s": "cluster.timeout_ms",
    "data_dir": "cluster.data_dir",
    "nodes": "nodes",
    "heartbeat": "heartbeat",
    "witness": "witness",
    "tls": "tls",
    "alerts": "alerts",
    "metrics": "metrics.listen",
}
# alerts: read at each alert; metrics: the endpoint moves at once
_LIVE_KEYS = ("pulse_s", "timeout_s", "alerts", "metrics")
# ModuleConfig field -> its TOML key, where they differ.
_MODULE_KEYS = {"async_mode": "async", "checkers": "checker", "vm": "domain"}


@dataclass(frozen=True)
class ConfigDiff:
    """``refused``: (key, why) of each change that cannot be applied live."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    cluster: tuple[str, ...] = ()  # cluster-level keys that differ (live or not)
    refused: tuple[tuple[str, str], ...] = ()

    @property
    def live(self) -> bool:
        return not self.refused

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.cluster)

    def describe(self) -> list[str]:
        """One line per action, in the order the engine carries them out."""
        out = [f"remove module {n}" for n in self.removed]
        out += [f"restart module {n} ({', '.join(keys)})" for n, keys in self.changed.items()]
        out += [f"add module {n}" for n in self.added]
        out += [f"change {key}" for key in self.cluster]
        return out

    def refusal(self) -> str:
        """Why the diff cannot be applied live ("" if it can)."""
        return "; ".join(f"{key}: {why}" for key, why in self.refused)


def module_keys(old: ModuleConfig, new: ModuleConfig) -> tuple[str, ...]:
    """The keys of a module whose values differ (TOML names)."""
    return tuple(
        _MODULE_KEYS.get(f.name, f.name)
        for f in dataclasses.fields(ModuleConfig)
        if getattr(old, f.name) != getattr(new, f.name)
    )


def diff(old: ClusterConfig | None, new: ClusterConfig) -> ConfigDiff:
    """What applying ``new`` over ``old`` does (``old`` None: a node with no
    configuration yet; everything is new and nothing is refused)."""
    if old is None:
        return ConfigDiff(added=tuple(m.name for m in new.modules))
    before = {m.name: m for m in old.modules}
    after = {m.name: m for m in new.modules}
    changed = {
        name: keys
        for name, m in after.items()
        if name in before and (keys := module_keys(before[name], m))
    }
    cluster = tuple(key for f, key in _CLUSTER_KEYS.items() if getattr(old, f) != getattr(new, f))
    refused = [
        (key, "cannot change while the agents run: restart both agents with the new file")
        for f, key in _CLUSTER_KEYS.items()
        if f not in _LIVE_KEYS and getattr(old, f) != getattr(new, f)
    ]
    refused += _timing_refusals(old, new)
    return ConfigDiff(
        added=tuple(n for n in after if n not in before),
        removed=tuple(n for n in before if n not in after),
        changed=changed,
        cluster=cluster,
        refused=tuple(refused),
    )


def _timing_refusals(old: ClusterConfig, new: ClusterConfig) -> list[tuple[str, str]]:
    """Between the two commits one node runs the new timing and the other the old: each
    must still hear the other within its timeout (three pulses, as the loader demands)."""
    out = []
    if new.pulse_s != old.pulse_s and 3 * new.pulse_s > old.timeout_s:
        out.append(("cluster.pulse_ms", f"{_ms(new.pulse_s)} is more than a third of the "
                    f"running timeout_ms ({_ms(old.timeout_s)}): the peer would take this "
                    "node for dead between the two commits; raise timeout_ms in a version "
                    "first, or restart both agents with the new file"))  # fmt: skip
    if new.timeout_s != old.timeout_s and new.timeout_s < 3 * old.pulse_s:
        out.append(("cluster.timeout_ms", f"{_ms(new.timeout_s)} is less than three running "
                    f"pulses (pulse_ms {_ms(old.pulse_s)}): this node would take the peer for "
                    "dead between the two commits; lower pulse_ms in a version first, or "
                    "restart both agents with the new file"))  # fmt: skip
    return out


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


class Verdict(Enum):
    NEWER = "newer"  # apply it
    SAME = "same"  # the version running, with the same text: nothing to do (a retry)


class VersionError(ValueError):
    pass


def check_version(old: ClusterConfig | None, new: ClusterConfig) -> Verdict:
    """A new version must be greater than the running one. The running version sent again
    with the same text is accepted and changes nothing, so a console may re-send a whole
    apply after one node committed and the other did not."""
    if old is None or new.version > old.version:
        return Verdict.NEWER
    if new.version == old.version and new.source_text == old.source_text:
        return Verdict.SAME
    if new.version == old.version:
        raise VersionError(f"version {new.version} is running here with another text: "
                           "give the new configuration a greater version")  # fmt: skip
    raise VersionError(f"version {new.version} is older than the running version "
                       f"{old.version}: a new configuration needs a greater version (to "
                       "restore an earlier one, send its text with a new version)")  # fmt: skip
