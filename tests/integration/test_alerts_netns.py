"""Alerts with no console open, from a real pair (issue 14 point 5; docs/alerts.md): two
agents in network namespaces with an ``[alerts]`` section whose hook writes what it gets
to a file and whose e-mail goes to an SMTP server on the client host (tests/smtp_sink.py,
reached over the LAN as a real mail relay would be). The primary's agent is SIGKILLed:
the survivor's hook and the mail server get the failover alert naming module and node;
the killed node comes back: "redundancy restored" arrives, from the node that sent the
failover; the secondary dies: the primary reports degraded replication."""

from __future__ import annotations

import json
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster_netns import MODULE, REPO, NetnsCluster
from tests.integration.netns import LAN_IP, Topology
from tests.integration.test_alerts_channels import DUMP

pytestmark = pytest.mark.root

SMTP_PORT = 2525
SETTLE_S = 2  # short, for the test: "restored" once the pair is in sync this long


class AlertSite:
    def __init__(self, topo: Topology, base: Path) -> None:
        self.cluster = NetnsCluster(topo, base)
        self.hook_file = base / "hook.jsonl"
        self.mail_dir = base / "mail"
        alerts = f"""
[alerts]
settle_s = {SETTLE_S}

[alerts.hook]
command = {json.dumps([sys.executable, "-c", DUMP, str(self.hook_file)])}
timeout_s = 10

[alerts.email]
host = "{LAN_IP["client"]}"
port = {SMTP_PORT}
security = "none"
from = "mirrorpair@example.com"
to = ["ops@example.com", "oncall@example.com"]
"""
        self.cluster.config.write_text(self.cluster.config.read_text() + alerts)
        argv = [sys.executable, "-m", "tests.smtp_sink", LAN_IP["client"], str(SMTP_PORT),
                str(self.mail_dir)]  # fmt: skip
        self.smtp = topo.popen("client", argv, cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert self.smtp.stdout is not None
        ready, _, _ = select.select([self.smtp.stdout], [], [], 20)
        assert ready and "listening" in self.smtp.stdout.readline(), "SMTP sink did not start"

    def hooked(self) -> list[dict[str, str]]:
        """The environment of each hook run, in order."""
        if not self.hook_file.exists():
            return []
        return [json.loads(line)["env"] for line in self.hook_file.read_text().splitlines()]

    def mails(self) -> list[dict]:
        paths = sorted(self.mail_dir.glob("*.json"), key=lambda p: int(p.stem))
        return [json.loads(p.read_text()) for p in paths]

    def close(self) -> None:
        try:
            self.cluster.close()
        finally:
            self.smtp.kill()
            self.smtp.wait()


@pytest.fixture
def alert_site(topology: Topology, tmp_path: Path) -> Iterator[AlertSite]:
    s = AlertSite(topology, tmp_path / "cluster")
    try:
        yield s
    finally:
        s.close()


def _subject(mail: dict) -> str:
    return next(line for line in mail["data"].splitlines() if line.startswith("Subject: "))


def test_failover_restored_and_degraded_reach_the_hook_and_the_mail_server(
    alert_site: AlertSite,
) -> None:
    s, c = alert_site, alert_site.cluster
    c.start()
    c.wait_pair("node1")
    # node2 has only been a ready secondary: it has nothing to report.
    assert [h for h in s.hooked() if h["MIRRORPAIR_NODE"] == "node2"] == []
    mails_before = len(s.mails())

    c.kill_agent("node1")  # the primary's agent dies: no clean stop, nothing said
    c.wait_state("node2", "ALONE", timeout=15)

    def from_node2() -> list[dict[str, str]]:
        return [h for h in s.hooked() if h["MIRRORPAIR_NODE"] == "node2"]

    (failover,) = c.wait_for(from_node2, "node2's hook run for the failover", 15)
    assert failover["MIRRORPAIR_ALERT"] == "failover"
    assert (failover["MIRRORPAIR_MODULE"], failover["MIRRORPAIR_PEER"]) == (MODULE, "node1")
    assert failover["MIRRORPAIR_CLUSTER"] == "nstest"
    assert failover["MIRRORPAIR_STATE"].startswith("ALONE/")
    assert failover["MIRRORPAIR_CAUSE"] == "peer-lost"
    assert f"module {MODULE}: node2 took over" in failover["MIRRORPAIR_MESSAGE"]
    mail = c.wait_for(lambda: s.mails()[mails_before:], "the failover e-mail", 15)[0]
    assert _subject(mail) == f"Subject: [MirrorPair nstest] FAILOVER: module {MODULE} on node2"
    assert mail["rcpt"] == ["ops@example.com", "oncall@example.com"]
    assert mail["mail_from"] == "mirrorpair@example.com"

    c.start("node1")  # back: it resyncs as secondary, and the pair is whole again
    c.wait_pair("node2", timeout=30)
    hooks = c.wait_for(lambda: len(from_node2()) >= 2 and from_node2(), "restored hook", 20)
    assert [h["MIRRORPAIR_ALERT"] for h in hooks] == ["failover", "restored"]
    assert "node2 PRIM with node1 SECOND in sync" in hooks[1]["MIRRORPAIR_MESSAGE"]
    mails = c.wait_for(lambda: len(s.mails()) >= mails_before + 2 and s.mails(), "restored", 20)
    assert _subject(mails[-1]) == f"Subject: [MirrorPair nstest] RESTORED: module {MODULE} on node2"
    # Each send is in node2's module log (what the console shows).
    log = [e["message"] for e in c.logs("node2")]
    assert "alert failover: e-mailed to ops@example.com, oncall@example.com" in log
    assert any(m.startswith("alert restored: hook ") for m in log)

    # Now the secondary dies: the primary, left without one, reports degraded replication.
    c.kill_agent("node1")
    c.wait_state("node2", "ALONE", timeout=15)
    hooks = c.wait_for(lambda: len(from_node2()) >= 3 and from_node2(), "degraded hook", 20)
    assert [h["MIRRORPAIR_ALERT"] for h in hooks] == ["failover", "restored", "degraded"]
    assert "node2 serves it without redundancy (no secondary)" in hooks[2]["MIRRORPAIR_MESSAGE"]
    mails = c.wait_for(lambda: len(s.mails()) >= mails_before + 3 and s.mails(), "degraded", 20)
    assert _subject(mails[-1]) == f"Subject: [MirrorPair nstest] DEGRADED: module {MODULE} on node2"
