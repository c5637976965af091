"""One node's side of a configuration change in two phases (DESIGN §7, issue 12 point 6).

``prepare`` checks a new version in full -- its text, the keys, what only this node can
check (its own addresses, interfaces, directories), the version it replaces -- and keeps
it, changing nothing. ``commit`` installs the file (node_agent/config/store.py) and then
applies it through ``apply``: the engine's ``reconfigure`` on a running agent, or (after
pairing) whatever starts the engine on an agent that had no configuration. The file is
installed before it is applied, so a commit that was answered survives a restart.

Who asked is logged with every step (their certificate's name).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import socket
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from node_agent.config.changes import Verdict, VersionError, check_version, diff
from node_agent.config.load import DEFAULT_STATE_DIR, parse_config
from node_agent.config.model import ClusterConfig
from node_agent.config.store import (
    PENDING_TTL_S,
    Busy,
    ConfigStore,
    Pending,
    PendingTable,
    VersionInfo,
)
from node_agent.config.table import ConfigError

SECRET_MASK = "***"
# `secret = "***"` on a line of its own (a commented-out line is left alone).
_MASKED_RE = re.compile(r'(?m)^([ \t]*["\']?secret["\']?[ \t]*=[ \t]*)"\*\*\*"')

Apply = Callable[[ClusterConfig], Awaitable[list[str]]]
Log = Callable[[str, str], None]  # (level, message)


class Refused(Exception):
    """Prepare refuses: the message names the key or this node's missing piece."""


class UnknownTransaction(Exception):
    """Commit of a transaction not prepared here (expired, aborted, the agent restarted)."""


@dataclass(frozen=True)
class Prepared:
    version: int
    changes: list[str]


class Configurator:
    def __init__(
        self,
        store: ConfigStore,
        node_id: str,
        apply: Apply,
        running: ClusterConfig | None,
        log: Log | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        ttl_s: float = PENDING_TTL_S,
        state_dir: str = DEFAULT_STATE_DIR,
    ) -> None:
        self.store, self.node_id, self._apply = store, node_id, apply
        self.running = running
        self._log = log or (lambda _level, _message: None)
        self._clock, self._wall, self._ttl = clock, wall, ttl_s
        self.pending = PendingTable()
        self._state_dir = state_dir  # where a text without [tls] / data_dir puts them
        self._applying = 0  # the version a commit is applying now (0 = none)

    # ----- prepare ---------------------------------------------------------------------
    def prepare(
        self, text: str, transaction: str, expected_version: int, secret: str, who: str
    ) -> Prepared:
        """Check ``text`` and keep it under ``transaction``; Refused says why not."""
        try:
            result = self._prepare(text, transaction, expected_version, secret, who)
        except Refused as e:
            self._log("WARNING", f"configuration prepare {transaction} from {who} refused: {e}")
            raise
        what = "; ".join(result.changes) or "no change"
        self._log(
            "INFO",
            f"configuration version {result.version} prepared "
            f"(transaction {transaction}) by {who}: {what}",
        )
        return result

    def _prepare(
        self, text: str, transaction: str, expected: int, secret: str, who: str
    ) -> Prepared:
        if not transaction.strip():
            raise Refused("a transaction id is required")
        if self._applying:  # its stops and starts must not interleave with another's
            raise Refused(f"version {self._applying} is being applied here: try again when "
                          "it is done")  # fmt: skip
        new = self._parse(self._unmask(text, secret))
        old = self.running
        try:
            verdict = check_version(old, new)
        except VersionError as e:
            raise Refused(f"cluster.version: {e}") from None
        running = old.version if old else 0
        # The running version sent again, same text: nothing to do, whoever changed it.
        if verdict is not Verdict.SAME and expected != running:
            raise Refused(
                f"this node runs configuration version {running}, not {expected} as "
                "expected: it was changed meanwhile; reload it and edit again"
            )
        d = diff(old, new) if verdict is Verdict.NEWER else None
        if d is not None and not d.live:
            raise Refused(d.refusal())
        problems = local_problems(new, self.node_id, old)
        if problems:
            raise Refused(f"on {self.node_id}: " + "; ".join(problems))
        changes = d.describe() if d is not None else []
        pending = Pending(
            transaction,
            new,
            running,
            who,
            self._clock() + self._ttl,
            tuple(changes),
            same=verdict is Verdict.SAME,
        )
        try:
            self.pending.put(pending, self._clock())
        except Busy as e:
            raise Refused(str(e)) from None
        return Prepared(new.version, changes)

    def _unmask(self, text: str, secret: str) -> str:
        """A text edited from GetConfig says ``secret = "***"``: put the real one back
        (the one sent with the request, else this node's own)."""
        if not _MASKED_RE.search(text):
            return text
        if secret:
            value = secret
        elif self.running is not None:
            value = self.running.secret.decode("utf-8")
        else:
            raise Refused(
                'cluster.secret: the text hides the secret ("***") and this node has '
                "no configuration to take it from: send the secret"
            )
        return _MASKED_RE.sub(lambda m: m[1] + json.dumps(value), text)

    def _parse(self, text: str) -> ClusterConfig:
        try:
            # Parsed as the file it will become: a relative secret_file is found there.
            return parse_config(text, str(self.store.path), self._state_dir)
        except ConfigError as e:
            where = f" (line {e.line}, column {e.col})" if e.line else ""
            raise Refused(
                f"config error at {e.key}: {e.detail}{where}"
                if e.key
                else f"config error: {e.detail}{where}"
            ) from None

    # ----- commit, abort -----------------------------------------------------------------
    async def commit(self, transaction: str, who: str) -> Prepared:
        p = self.pending.take(transaction, self._clock())
        if p is None:
            raise UnknownTransaction(
                f"no configuration change {transaction!r} is prepared on "
                f"{self.node_id} (expired, aborted, or the agent "
                "restarted since): prepare it again"
            )
        running = self.running.version if self.running else 0
        if running != p.base_version:  # another transaction committed meanwhile
            raise UnknownTransaction(
                f"{self.node_id} runs version {running} since transaction "
                f"{transaction} was prepared: prepare it again"
            )
        if p.same:
            self._log(
                "INFO",
                f"configuration version {p.config.version} committed again "
                f"(transaction {transaction}) by {who}: it runs already",
            )
            return Prepared(p.config.version, [])
        for d in _missing_directories(p.config, self.node_id):
            d.mkdir(parents=True, exist_ok=True)
        self.store.install(p.config, who, self._wall(), running=self.running)
        self.running = p.config
        self._log(
            "INFO",
            f"configuration version {p.config.version} committed (transaction "
            f"{transaction}) by {who}, replacing version {running}",
        )
        self._applying = p.config.version
        try:
            done = await self._apply(p.config)
        except Exception as e:
            self._log(
                "ERROR",
                f"configuration version {p.config.version} installed but not "
                f"fully applied: {e}; it applies in full at the agent's next start",
            )
            raise
        finally:
            self._applying = 0
        return Prepared(p.config.version, done)

    def abort(self, transaction: str, who: str) -> None:
        if self.pending.drop(transaction):
            self._log("INFO", f"configuration change {transaction} aborted by {who}")

    # ----- reading -----------------------------------------------------------------------
    def versions(self) -> list[VersionInfo]:
        return self.store.versions(self.running.version if self.running else 0)

    def text(self, version: int = 0) -> tuple[str, int, str]:
        """(text, version, path) of the running version (0) or a kept one (KeyError)."""
        r = self.running
        if version == 0 and r is None:
            return "", 0, ""  # no configuration yet: an empty text, version 0
        if r is not None and version in (0, r.version):
            return r.source_text, r.version, r.source_path
        return self.store.read(version), version, str(self.store.path)


# ----- what only this node can check ------------------------------------------------------
def local_problems(cfg: ClusterConfig, node_id: str, old: ClusterConfig | None) -> list[str]:
    """What would fail on this node: its own addresses must be local (checked by binding
    them, port 0), each VIP's interface must exist here, each replicated directory must be
    a directory or creatable. Only what the change brings is checked: what runs now
    already works (its addresses are bound by this very agent, its directories may be
    its own FUSE mounts -- dead ones too, after a crash, until the module starts)."""
    problems = []
    if old is None:
        me = cfg.nodes[node_id]
        api_host = me.api.rpartition(":")[0].strip("[]")
        addrs = {
            "nodes." + node_id + ".api": api_host,
            "nodes." + node_id + ".replication": me.replication_address[0],
        }
        for i, net in enumerate(cfg.heartbeat):
            addrs[f"heartbeat[{i}].{node_id}"] = net.addresses[node_id]
        problems += [p for key, host in addrs.items() if (p := _not_local(key, host))]
        for path in _missing_directories(cfg, node_id, data_dir=True):
            problems += _not_creatable(path, "cluster.data_dir")
    before = {m.name: m for m in old.modules} if old else {}
    running_dirs = {d for m in before.values() for d in m.directories}
    for m in cfg.modules:
        if before.get(m.name) == m:
            continue
        if m.vip is not None:
            iface = m.vip.interface[node_id]
            try:
                socket.if_nametoindex(iface)
            except OSError:
                problems.append(f"module.{m.name}.vip.interface: no interface {iface!r} here")
        for i, d in enumerate(m.directories):
            if d in running_dirs:  # in use: the agent's mounts handle it (even a dead one)
                continue
            path = Path(d.replace("{node}", node_id))
            key = f"module.{m.name}.directories[{i}]"
            try:
                st = path.stat()
            except (FileNotFoundError, NotADirectoryError):
                problems += _not_creatable(path, key)
                continue
            except OSError as e:
                problems.append(f"{key}: {path}: {e.strerror}")
                continue
            if not stat.S_ISDIR(st.st_mode):
                problems.append(f"{key}: {path} is not a directory")
    return problems


def _not_local(key: str, host: str) -> str:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return ""  # a host name: the agent resolves it when it binds
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
    except OSError as e:
        return f"{key}: {host} is not an address of this server ({e.strerror})"
    return ""


def _not_creatable(path: Path, key: str) -> list[str]:
    parent = path.parent
    try:
        while not parent.exists():
            parent = parent.parent
    except OSError as e:
        return [f"{key}: {path} cannot be created: {parent}: {e.strerror}"]
    if not parent.is_dir():
        return [f"{key}: {path} cannot be created: {parent} is not a directory"]
    if not os.access(parent, os.W_OK | os.X_OK):
        return [f"{key}: {path} does not exist and {parent} is not writable"]
    return []


def _missing_directories(cfg: ClusterConfig, node_id: str, data_dir: bool = False) -> list[Path]:
    paths = [Path(cfg.data_dir.replace("{node}", node_id))] if data_dir else []
    paths += [Path(d.replace("{node}", node_id)) for m in cfg.modules for d in m.directories]
    out = []
    for p in paths:
        with contextlib.suppress(OSError):
            if not p.exists():
                out.append(p)
    return out
