"""A configuration applied to both servers or neither, and changed again later (issue 12,
point 6), on the two-server site (tests/integration/site.py): each server has its own
configuration file, as real servers have; the real `mirrorpair config` CLI runs on the
client host and does the two phases (console/client/config_apply.py).

- a change the second server refuses (a directory that cannot exist there), one sent
  while a server hangs or is down, and one from an operator certificate leave both
  servers on the old version; a commit that fails on one server is finished by applying
  the same text again; a prepare does not survive an agent restart;
- a later version adds a module without restarting the running one: its application's
  pid is the same, its replication carries on (no resync), the new module reaches
  PRIM/SECOND and replicates too;
- an earlier version restored = its text applied with a new version number;
- the first replicated module, added by a later version, starts the replication
  receiver the agent did not need until then.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from protos.security.ca import issue_certificate
from protos.security.roles import Role
from tests.conftest import require_binary, require_fuse
from tests.integration.cluster_netns import APP_CHECK, APP_STOP, BIN, REPO
from tests.integration.netns import LAN_IP, Topology
from tests.integration.site import Site, site_toml

pytestmark = pytest.mark.root

EXTRA_START = "sleep 100000 > /dev/null 2>&1 & echo $! > app.pid"


class ConfigSite(Site):
    def config_for(self, node: str) -> Path:
        path = self.base / node / "etc" / "cluster.toml"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(self.config.read_text())
            path.chmod(0o600)
        return path

    def version(self, node: str) -> int:
        st = self.status(node)
        assert st is not None, f"{node} does not answer"
        return int(st["config_version"])

    def apply(self, text: str, cert: str = "admin",
              timeout: float = 5.0) -> subprocess.CompletedProcess[str]:  # fmt: skip
        path = self.base / "new.toml"
        path.write_text(text)
        if cert == "admin":
            return self.cli("--timeout", str(timeout), "config", "apply", str(path))
        pki = self.base / "pki"
        argv = [BIN / "mirrorpair", "--config", self.config, "--cert", pki / f"{cert}.pem",
                "--key", pki / f"{cert}.key", "config", "apply", str(path)]  # fmt: skip
        return self.topo.exec("client", *map(str, argv), check=False, timeout=60, cwd=REPO,
                              stdin=subprocess.DEVNULL)  # fmt: skip

    def shown(self, node: str, version: int = 0) -> str:
        r = self.cli("config", "show", "--node", node, "--version", str(version))
        assert r.returncode == 0, r.stderr
        return r.stdout


@pytest.fixture
def csite(topology: Topology, tmp_path: Path) -> Iterator[ConfigSite]:
    require_fuse()
    for binary in ("nsenter", "unshare", "arping", "ping"):
        require_binary(binary)
    with ConfigSite(topology, tmp_path / "site") as s:
        yield s


def gone(pid: int) -> bool:
    """The process is gone (a zombie counts: pid 1 here may reap orphans late)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return any(ln.split()[1:2] == ["Z"] for ln in status.splitlines() if ln.startswith("State:"))


def version_text(site: Site, version: int, extra: str = "") -> str:
    text = site_toml(site.base)
    assert text.count("\nversion = 1 ") == 1
    return text.replace("\nversion = 1 ", f"\nversion = {version} ", 1) + extra


def extra_module(directory: str) -> str:
    return (f'\n[[module]]\nname = "extra"\nkind = "app"\nstart = {json.dumps(EXTRA_START)}\n'
            f"stop = {json.dumps(APP_STOP)}\ncheck = {json.dumps(APP_CHECK)}\n"
            f'directories = ["{directory}"]\n')  # fmt: skip


def test_a_refusal_or_an_absent_server_leaves_both_on_the_old_version(csite: ConfigSite) -> None:
    site = csite
    site.start()
    site.wait_pair("node1", timeout=40)
    assert (site.version("node1"), site.version("node2")) == (1, 1)
    # node2 cannot create the new module's directory: a file is where its parent should be.
    (site.base / "srv" / "node1").mkdir()
    (site.base / "srv" / "node2").write_text("not a directory")
    refused = version_text(site, 2, extra_module(f"{site.base}/srv/{{node}}/extra"))
    r = site.apply(refused)
    assert r.returncode == 13, r.stdout + r.stderr
    assert (
        f"node2: refused: on node2: module.extra.directories[0]: {site.base}/srv/node2/"
        f"extra cannot be created: {site.base}/srv/node2 is not a directory"
    ) in r.stderr
    assert "node1: refused" not in r.stderr and "neither node changed" in r.stderr
    assert (site.version("node1"), site.version("node2")) == (1, 1)
    for node in ("node1", "node2"):
        assert "extra" not in site.shown(node)
        assert "extra" not in {m["name"] for m in site.status(node)["modules"]}
    assert not (site.base / "srv" / "node1" / "extra").exists()  # node1 prepared, then aborted
    messages = [e["message"] for e in site.logs_of("node1", "")]
    assert any("prepared" in m and "by cert admin: add module extra" in m for m in messages)
    assert any(m.startswith("configuration change ") and m.endswith("aborted by cert admin")
               for m in messages)  # fmt: skip

    # An operator certificate may not change the configuration: both refuse, naming the role.
    issue_certificate(site.base / "pki", "oper", site.base / "pki", server=False,
                      role=Role.OPERATOR)  # fmt: skip
    good = version_text(site, 2, extra_module(f"{site.base}/srv/extra"))
    r = site.apply(good, cert="oper")
    assert r.returncode == 13, r.stdout + r.stderr
    assert r.stderr.count("needs the administrator role") == 2, r.stderr

    # node2's agent hangs (SIGSTOP): its prepare gets no answer in time; node1 aborts.
    site.agents["node2"].send_signal(signal.SIGSTOP)
    r = site.apply(good, timeout=2)
    assert r.returncode == 10, r.stdout + r.stderr
    assert "node2: refused: unreachable: no answer within 2 s" in r.stderr, r.stderr
    assert "node1: refused" not in r.stderr and site.version("node1") == 1
    assert site.status("node1")["modules"][0]["name"] == "web"
    site.agents["node2"].send_signal(signal.SIGCONT)

    # node2's agent is down: nothing changes on node1 either.
    site.kill_agent("node2")
    r = site.apply(good)
    assert r.returncode == 10, r.stdout + r.stderr
    assert "node2: refused: unreachable" in r.stderr and "node1: refused" not in r.stderr
    assert site.version("node1") == 1 and "extra" not in site.shown("node1")
    site.wait_state("node1", "ALONE", "READY", timeout=20)  # serving, on version 1
    assert site.version("node1") == 1


def test_a_later_version_adds_a_module_without_touching_the_running_one(
    csite: ConfigSite,
) -> None:
    site = csite
    site.start()
    site.wait_pair("node1", timeout=40)
    web_pid = site.app_pid("node1")
    resyncs = len(site.resyncs("node1"))
    (site.base / "srv" / "extra").mkdir()
    v2 = version_text(site, 2, extra_module(f"{site.base}/srv/extra"))
    r = site.apply(v2)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "node1: runs version 2: add module extra" in r.stdout
    assert "node2: runs version 2: add module extra" in r.stdout
    site.wait_module("node1", "extra", "PRIM", "READY", timeout=40)
    site.wait_module("node2", "extra", "SECOND", "READY", timeout=40)
    assert (site.version("node1"), site.version("node2")) == (2, 2)
    st = site.status("node1")
    assert st is not None and st["peer_config_version"] == 2
    # The running module was not touched: same process, same roles, no resync.
    assert site.app_pid("node1") == web_pid and site.app_running("node1")
    assert site.state("node1") == ("PRIM", "READY") and site.state("node2") == ("SECOND", "READY")
    assert len(site.resyncs("node1")) == resyncs
    site.sh("node1", f"echo after > {site.www}/after.txt && sync {site.www}/after.txt")
    copy = site.base / "node2" / "data" / "modules" / "web" / "copy" / "0" / "after.txt"
    site.wait_for(lambda: copy.exists() and copy.read_text() == "after\n", "web replicated", 10)
    site.sh("node1", f"echo new > {site.base}/srv/extra/new.txt && sync {site.base}/srv/extra")
    extra_copy = site.base / "node2" / "data" / "modules" / "extra" / "copy" / "0" / "new.txt"
    site.wait_for(lambda: extra_copy.exists(), "extra replicated", 10)
    for node in ("node1", "node2"):  # the file on each server is the new version
        assert "version = 2 " in site.config_for(node).read_text()

    # v3 changes the new module: it restarts on both (no split brain, not handed over to
    # node2 on the way) and replicates again; web is not touched.
    extra_pid = int((site.base / "node1/data/modules/extra/app.pid").read_text())
    r = site.apply(version_text(site, 3, extra_module(f"{site.base}/srv/extra") + "maxloop = 5\n"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "node2: runs version 3: restart module extra (maxloop)" in r.stdout
    site.wait_module("node1", "extra", "PRIM", "READY", timeout=40)
    site.wait_module("node2", "extra", "SECOND", "READY", timeout=40)
    new_pid = int((site.base / "node1/data/modules/extra/app.pid").read_text())
    assert new_pid != extra_pid and not (site.base / "node2/data/modules/extra/app.pid").exists()
    site.sh("node1", f"echo v3 > {site.base}/srv/extra/v3.txt && sync {site.base}/srv/extra")
    v3_copy = extra_copy.with_name("v3.txt")
    site.wait_for(lambda: v3_copy.exists(), "extra replicated after its restart", 10)
    assert site.app_pid("node1") == web_pid and len(site.resyncs("node1")) == resyncs

    # Restore version 1: its text again, as version 4. The module goes, web stays.
    extra_pid = new_pid
    r = site.cli("config", "restore", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "restoring version 1 as version 4" in r.stdout
    assert "node1: runs version 4: remove module extra" in r.stdout
    assert (site.version("node1"), site.version("node2")) == (4, 4)
    for node in ("node1", "node2"):
        assert "extra" not in site.shown(node) and "extra" in site.shown(node, 2)
        assert [m["name"] for m in site.status(node)["modules"]] == ["web"]
        assert 'secret = "***"' in site.shown(node)
        assert 'secret = "change-me' in site.config_for(node).read_text()  # its own secret
    assert gone(extra_pid)
    assert site.app_pid("node1") == web_pid and site.state("node1") == ("PRIM", "READY")
    r = site.cli("config", "versions")
    assert r.returncode == 0, r.stderr
    lines = [ln.split() for ln in r.stdout.splitlines()]
    node1 = lines[1 : lines.index(["node2:"])]
    assert [(ln[0], ln[3], ln[-1]) for ln in node1] == [
        ("4", "cert", "running"), ("3", "cert", "admin"), ("2", "cert", "admin"),
        ("1", "(installed", "hand)")]  # fmt: skip
    r = site.cli("config", "show", "--version", "9")
    assert r.returncode == 13 and "version 9 is not kept on this node" in r.stderr, r.stderr


def test_a_commit_that_fails_on_one_server_is_finished_by_applying_again(
    csite: ConfigSite,
) -> None:
    """node2 accepts the prepare but cannot install the file (its versions folder is
    broken: a disk failure, say): node1 runs the new version, the CLI says so and how to
    finish; once node2 is repaired the same text applied again finishes the job."""
    site = csite
    site.start()
    site.wait_pair("node1", timeout=40)
    broken = site.config_for("node2").parent / "versions"
    broken.write_text("not a directory")
    (site.base / "srv" / "extra").mkdir()
    v2 = version_text(site, 2, extra_module(f"{site.base}/srv/extra"))
    r = site.apply(v2)
    assert r.returncode == 13, r.stdout + r.stderr
    assert "node1: runs version 2: add module extra" in r.stdout
    assert "node2: refused: commit failed:" in r.stderr
    assert "node1 already runs version 2: apply the same text again to finish" in r.stderr
    assert (site.version("node1"), site.version("node2")) == (2, 1)
    st = site.status("node2")
    assert st is not None and st["peer_config_version"] == 2  # the mismatch is visible
    assert site.state("node1") == ("PRIM", "READY")  # and no failover came of it
    broken.unlink()
    r = site.apply(v2)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "node1: runs version 2: no change" in r.stdout
    assert "node2: runs version 2: add module extra" in r.stdout
    assert (site.version("node1"), site.version("node2")) == (2, 2)
    site.wait_module("node1", "extra", "PRIM", "READY", timeout=40)
    site.wait_module("node2", "extra", "SECOND", "READY", timeout=40)


def test_a_prepare_does_not_survive_an_agent_restart(csite: ConfigSite) -> None:
    """Prepared, then the agent is killed and started again: the commit is refused
    (FAILED_PRECONDITION, saying why) and the node still runs the old version."""
    site = csite
    site.start()
    site.wait_pair("node1", timeout=40)
    shown = site.shown("node1")
    assert 'secret = "***"' in shown  # what a console edits
    v2 = shown.replace("\nversion = 1 ", "\nversion = 2 ", 1).replace("maxloop = 3", "maxloop = 4")
    probe, address = site.probe("client"), f"{LAN_IP['node1']}:7700"

    def rpc(method: str, timeout: float = 10.0, **request: object) -> dict:
        return probe.ask(timeout + 5, op="rpc", address=address, node="node1", method=method,
                         request=request, deadline=timeout)  # fmt: skip

    reply = rpc("PrepareConfig", toml=v2, transaction="tx-1", expected_version=1)
    assert reply["reply"]["accepted"], reply
    assert reply["reply"]["changes"] == ["restart module web (maxloop)"]
    site.kill_agent("node1")
    site.kill_app("node1")
    site.start("node1")
    answered = lambda: (r := rpc("CommitConfig", transaction="tx-1"))["code"] != "UNAVAILABLE" and r  # noqa: E731
    reply = site.wait_for(answered, "node1 answers again", 10)
    assert reply["code"] == "FAILED_PRECONDITION", reply
    assert "no configuration change 'tx-1' is prepared on node1" in reply["details"]
    assert site.version("node1") == 1 and "maxloop = 3" in site.config_for("node1").read_text()
    # A fresh prepare + commit of the masked text works, keeping node1's own secret.
    reply = rpc("PrepareConfig", toml=v2, transaction="tx-2", expected_version=1)
    assert reply["reply"]["accepted"], reply
    # node2 still serves web on version 1 (it took over): node1's commit waits for it a
    # while before it starts web with the new settings (then as secondary).
    reply = rpc("CommitConfig", 60.0, transaction="tx-2")
    assert reply["reply"]["version"] == 2, reply
    assert site.version("node1") == 2
    assert 'secret = "change-me' in site.config_for("node1").read_text()


def test_the_first_replicated_module_starts_the_receiver(csite: ConfigSite) -> None:
    """web replicates nothing at first, so neither agent listens for replication; a version
    adding a replicated module starts the listener, and the module replicates."""
    site = csite
    text = version_text(site, 1)
    line = f'directories = ["{site.base}/srv/www"]'
    assert text.count(line) == 1
    site.config.write_text(text.replace(line, ""))
    site.start()
    site.wait_pair("node1", timeout=40)
    listening = "ss -Hltn 'sport = :7702'"
    assert site.sh("node2", listening).stdout.strip() == ""  # no receiver yet
    (site.base / "srv" / "extra").mkdir()
    r = site.apply(version_text(site, 2, extra_module(f"{site.base}/srv/extra")).replace(line, ""))
    assert r.returncode == 0, r.stdout + r.stderr
    site.wait_module("node1", "extra", "PRIM", "READY", timeout=40)
    site.wait_module("node2", "extra", "SECOND", "READY", timeout=40)
    assert site.sh("node2", listening).stdout.strip() != ""
    site.sh("node1", f"echo first > {site.base}/srv/extra/first.txt && sync {site.base}/srv/extra")
    copy = site.base / "node2" / "data" / "modules" / "extra" / "copy" / "0" / "first.txt"
    site.wait_for(lambda: copy.exists() and copy.read_text() == "first\n", "extra replicated", 10)
