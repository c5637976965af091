"""One node's side of a two-phase configuration change (node_agent/config/configurator.py)
with a real store on disk; ``apply`` records what it is given (the engine's part is
tests/integration/test_engine_reconfigure.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from node_agent.config.configurator import Configurator, Refused, UnknownTransaction
from node_agent.config.load import load_config, parse_config
from node_agent.config.model import ClusterConfig
from node_agent.config.store import ConfigStore

SECRET = "configurator-test-secret-0123"


def text(root: Path, version: int, modules: str = "", secret: str = SECRET, **kw: str) -> str:
    hb2 = kw.get("hb", "127.0.1.1")
    return f"""[cluster]
name = "ct"
version = {version}
secret = {json.dumps(secret)}
data_dir = "{root}/{{node}}/data"
{kw.get("cluster", "")}
[tls]
ca = "{root}/ca.pem"
cert = "{root}/{{node}}.pem"
key = "{root}/{{node}}.key"

[nodes.node1]
api = "127.0.0.1:17700"

[nodes.node2]
api = "127.0.0.2:17700"

[[heartbeat]]
name = "lan"
node1 = "{hb2}"
node2 = "127.0.1.2"
{modules}"""


def app(name: str, directory: str = "", **extra: str) -> str:
    lines = [f'name = "{name}"', 'kind = "app"', 'start = "true"', 'stop = "true"']
    if directory:
        lines.append(f'directories = ["{directory}"]')
    lines += [f"{k} = {v}" for k, v in extra.items()]
    return "\n[[module]]\n" + "\n".join(lines) + "\n"


class Node:
    """A Configurator over a real store, its applies and log lines recorded."""

    def __init__(self, root: Path, running: str | None = None, **kw) -> None:
        self.root = root
        self.path = root / "etc" / "cluster.toml"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        cfg = None
        if running is not None:
            self.path.write_text(running)
            cfg = load_config(self.path)
        self.applied: list[ClusterConfig] = []
        self.logs: list[tuple[str, str]] = []
        self.now = 0.0

        async def apply(new: ClusterConfig) -> list[str]:
            self.applied.append(new)
            return [f"applied {new.version}"]

        def log(level: str, message: str) -> None:
            self.logs.append((level, message))

        clocks = {"clock": lambda: self.now, "wall": lambda: 1000.0 + self.now}
        self.c = Configurator(ConfigStore(self.path), "node1", apply, cfg, log, **clocks, **kw)

    def prepare(self, body: str, tx: str = "t1", expected: int = 1, secret: str = "",
                who: str = "cert admin") -> list[str]:  # fmt: skip
        return self.c.prepare(body, tx, expected, secret, who).changes

    def commit(self, tx: str = "t1", who: str = "cert admin") -> list[str]:
        return asyncio.run(self.c.commit(tx, who)).changes


def test_prepare_then_commit_installs_applies_and_logs_who(tmp_path: Path) -> None:
    n = Node(tmp_path, text(tmp_path, 1, app("web")))
    v2 = text(tmp_path, 2, app("web") + app("db"))
    assert n.prepare(v2) == ["add module db"]
    assert n.applied == [] and load_config(n.path).version == 1  # nothing changed yet
    assert n.commit() == ["applied 2"]
    assert load_config(n.path).version == 2 and n.applied[0].version == 2
    assert n.c.running is not None and n.c.running.version == 2
    assert [(v.version, v.applied_by, v.running) for v in n.c.versions()] == [
        (2, "cert admin", True), (1, "", False)]  # fmt: skip
    assert n.c.text(1)[0] == text(tmp_path, 1, app("web")) and n.c.text(0)[1] == 2
    logged = " | ".join(m for _, m in n.logs)
    assert "version 2 prepared (transaction t1) by cert admin: add module db" in logged
    assert "version 2 committed (transaction t1) by cert admin, replacing version 1" in logged


def test_commit_unknown_expired_aborted_or_after_restart(tmp_path: Path) -> None:
    n = Node(tmp_path, text(tmp_path, 1), ttl_s=30)
    v2 = text(tmp_path, 2, app("db"))
    with pytest.raises(UnknownTransaction, match="no configuration change 't1' is prepared"):
        n.commit()
    n.prepare(v2)
    n.now = 31.0  # expired
    with pytest.raises(UnknownTransaction):
        n.commit()
    n.prepare(v2, "t2", who="cert alice")
    n.c.abort("t2", "cert alice")
    with pytest.raises(UnknownTransaction):
        n.commit("t2")
    assert ("INFO", "configuration change t2 aborted by cert alice") in n.logs
    n.prepare(v2, "t3")
    restarted = Node(tmp_path, text(tmp_path, 1))  # the agent restarted: memory is gone
    with pytest.raises(UnknownTransaction, match="restarted"):
        restarted.commit("t3")
    assert load_config(n.path).version == 1 and not n.applied


def test_a_second_transaction_is_refused_while_one_is_pending(tmp_path: Path) -> None:
    n = Node(tmp_path, text(tmp_path, 1))
    n.prepare(text(tmp_path, 2, app("a")), "t1", who="cert alice")
    with pytest.raises(Refused, match="transaction t1, version 2, prepared by cert alice"):
        n.prepare(text(tmp_path, 2, app("b")), "t2")
    n.prepare(text(tmp_path, 2, app("b")), "t1")  # the same transaction may prepare again
    assert n.commit("t1") == ["applied 2"] and n.applied[0].modules[0].name == "b"


@pytest.mark.parametrize(
    ("version", "expected", "match"),
    [
        (1, 1, "version 1 is running here with another text"),
        (2, 3, "this node runs configuration version 1, not 3 as expected"),
    ],
)
def test_versions_and_expected_version(tmp_path: Path, version: int, expected: int,
                                       match: str) -> None:  # fmt: skip
    n = Node(tmp_path, text(tmp_path, 1))
    with pytest.raises(Refused, match=match):
        n.prepare(text(tmp_path, version, app("x")), expected=expected)


def test_the_running_text_again_is_accepted_and_changes_nothing(tmp_path: Path) -> None:
    """A console re-sending an apply after one node committed: that node accepts."""
    n = Node(tmp_path, text(tmp_path, 1))
    v2 = text(tmp_path, 2, app("db"))
    n.prepare(v2)
    n.commit()
    assert n.prepare(v2, "again", expected=1) == []  # expected is the old one: still fine
    assert n.commit("again") == [] and len(n.applied) == 1


def test_a_masked_secret_keeps_the_nodes_own_or_takes_the_one_sent(tmp_path: Path) -> None:
    n = Node(tmp_path, text(tmp_path, 1))
    masked = text(tmp_path, 2, app("db"), secret="***") + '# secret = "***" in a comment\n'
    assert n.prepare(masked) == ["add module db"]
    n.commit()
    on_disk = n.path.read_text()
    assert f'secret = "{SECRET}"' in on_disk and '# secret = "***" in a comment' in on_disk
    assert load_config(n.path).secret == SECRET.encode()
    # Another secret sent with the masked text is a change of cluster.secret: refused live.
    with pytest.raises(Refused, match="cluster.secret: cannot change while the agents run"):
        n.prepare(text(tmp_path, 3, secret="***"), "t2", expected=2,
                  secret="a-brand-new-secret-0123456")  # fmt: skip
    fresh = Node(tmp_path / "fresh")  # no configuration yet: the secret must be sent
    with pytest.raises(Refused, match="no configuration to take it from"):
        fresh.prepare(text(tmp_path, 1, secret="***"), expected=0)
    fresh.prepare(text(tmp_path, 1, secret="***"), expected=0, secret="sent-along-secret-0123")
    fresh.commit()
    assert load_config(fresh.path).secret == b"sent-along-secret-0123"


def test_errors_name_the_key(tmp_path: Path) -> None:
    n = Node(tmp_path, text(tmp_path, 1))
    with pytest.raises(Refused, match="config error at module.x.maxloop: must be an integer"):
        n.prepare(text(tmp_path, 2, app("x", maxloop='"many"')))
    with pytest.raises(Refused, match="config error: malformed TOML at line"):
        n.prepare("[cluster\n")
    with pytest.raises(Refused, match="cluster.pulse_ms: 2000 is more than a third"):
        n.prepare(text(tmp_path, 2, cluster="pulse_ms = 2000\ntimeout_ms = 6000"))
    with pytest.raises(Refused, match="^heartbeat: cannot change while the agents run"):
        n.prepare(text(tmp_path, 2, hb="127.0.1.9"))
    assert not any(lvl == "INFO" for lvl, _ in n.logs)
    assert all("refused" in m for _, m in n.logs)


def test_what_only_this_node_can_check(tmp_path: Path) -> None:
    n = Node(tmp_path, text(tmp_path, 1))
    (tmp_path / "afile").write_text("x")
    (tmp_path / "bfile").write_text("x")
    bad = (app("a", f"{tmp_path}/afile") + app("b", f"{tmp_path}/bfile/sub")
           + app("c", directory=f"{tmp_path}/fine/{{node}}")
           + '\n[[module]]\nname = "v"\nkind = "app"\nstart = "t"\nstop = "t"\n'
           '  [module.vip]\n  address = "10.9.9.9/24"\n  interface = "nosuchif0"\n')  # fmt: skip
    with pytest.raises(Refused) as info:
        n.prepare(text(tmp_path, 2, bad))
    msg = str(info.value)
    assert msg.startswith("on node1: ")
    assert f"module.a.directories[0]: {tmp_path}/afile is not a directory" in msg
    assert f"module.b.directories[0]: {tmp_path}/bfile/sub cannot be created" in msg
    assert "module.c" not in msg  # absent but creatable: created at commit
    assert "module.v.vip.interface: no interface 'nosuchif0' here" in msg
    n.prepare(text(tmp_path, 2, app("c", directory=f"{tmp_path}/fine/{{node}}")))
    n.commit()
    assert (tmp_path / "fine" / "node1").is_dir()
    # A node with no configuration yet: its own addresses must be local.
    fresh = Node(tmp_path / "fresh")
    with pytest.raises(
        Refused, match=r"heartbeat\[0\].node1: 192.0.2.1 is not an address of this server"
    ):
        fresh.prepare(text(tmp_path, 1, hb="192.0.2.1"), expected=0)


def test_get_text_of_unknown_versions(tmp_path: Path) -> None:
    n = Node(tmp_path, text(tmp_path, 1))
    with pytest.raises(KeyError, match="version 5 is not kept"):
        n.c.text(5)
    assert Node(tmp_path / "fresh").c.text(0) == ("", 0, "")  # none yet: empty, version 0
    assert parse_config(n.c.text(0)[0]).version == 1


def test_no_prepare_while_a_commit_is_being_applied(tmp_path: Path) -> None:
    async def scenario() -> None:
        n = Node(tmp_path, text(tmp_path, 1))
        release = asyncio.Event()

        async def slow(new: ClusterConfig) -> list[str]:
            await release.wait()
            return ["done"]

        n.c._apply = slow
        n.prepare(text(tmp_path, 2, app("a")))
        commit = asyncio.ensure_future(n.c.commit("t1", "cert admin"))
        await asyncio.sleep(0.01)
        with pytest.raises(Refused, match="version 2 is being applied here"):
            n.prepare(text(tmp_path, 3, app("b")), "t2", expected=2)
        release.set()
        assert (await commit).changes == ["done"]
        assert n.prepare(text(tmp_path, 3, app("b")), "t2", expected=2) == [
            "remove module a",
            "add module b",
        ]

    asyncio.run(scenario())
