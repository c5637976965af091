"""Dangerous configurations are refused on a real server, naming the keys (issue 10, points 5
and 6): each one, written into the example config as a user might, makes the agent exit
with status 2 and a message naming the key -- before it binds, mounts or starts anything.
A port already taken at run time is reported the same way, before the agent says ready."""

from __future__ import annotations

import pytest

from tests.integration.netns import LAN_IP
from tests.integration.site import Site, site_toml

pytestmark = pytest.mark.root

# (id, text of the site config, replacement, key named, words of the message)
DANGEROUS = [
    ("relative data_dir", "data_dir = ", 'data_dir = "mirrorpair/{node}"\n# was: ',
     "cluster.data_dir", ["absolute path"]),
    ("one api for both", 'api = "10.77.0.2:7700"', 'api = "10.77.0.1:7700"',
     "nodes.node2.api", ["10.77.0.1:7700 is already nodes.node1.api"]),
    ("replication on the api port", 'replication = "10.77.0.1:7702"',
     'replication = "10.77.0.1:7700"', "nodes.node1.replication",
     ["10.77.0.1:7700 is already nodes.node1.api"]),
    ("directory twice", "/srv/www\"]", "/srv/www\", \"{base}/srv/www\"]",
     "module.web.directories[1]", ["is already module.web.directories[0]"]),
    ("nested directories", "/srv/www\"]", "/srv/www\", \"{base}/srv/www/img\"]",
     "module.web.directories[1]", ["lies inside", "nested"]),
    ("directory /", '"{base}/srv/www"', '"/"', "module.web.directories[0]",
     ["must not be /"]),
    ("directory in data_dir", '"{base}/srv/www"', '"{base}/{node}/data/www"',
     "module.web.directories[0]", ["inside cluster.data_dir"]),
    ("two modules, one directory", '[[module]]\nname = "web"',
     '[[module]]\nname = "other"\nkind = "app"\nstart = "true"\nstop = "true"\n'
     'directories = ["{base}/srv/www"]\n\n[[module]]\nname = "web"',
     "module.web.directories[0]", ['already module.other.directories[0] (module "other")']),
    ("VIP = a node's address", '"10.77.0.100/24"', '"10.77.0.2/24"', "module.web.vip.address",
     ["node2's own api address"]),
    ("vm kind with commands", 'kind = "app"', 'kind = "vm"', "module.web.start",
     ["not used by a vm module"]),
]  # fmt: skip


def test_each_dangerous_config_is_refused_naming_the_key(site: Site) -> None:
    base = site.base
    good = site_toml(base)
    for what, old, new, key, words in DANGEROUS:
        old, new = old.replace("{base}", str(base)), new.replace("{base}", str(base))
        assert good.count(old) == 1, f"{what}: {old!r} must occur once in the site config"
        config = base / "dangerous.toml"
        config.write_text(good.replace(old, new))
        r = site.run_agent("node1", config)
        assert r.returncode == 78, f"{what}: exit {r.returncode}\n{r.stderr}"  # EX_CONFIG
        assert f"config error at {key}:" in r.stderr, f"{what}: {r.stderr}"
        for word in words:
            assert word in r.stderr, f"{what}: {word!r} not in {r.stderr}"
        assert "Traceback" not in r.stderr and "ready on" not in r.stderr, r.stderr
    assert not (base / "node1").exists(), "a refused config touched the data dir"
    assert not site.mounted("node1")


def test_a_port_in_use_is_named_before_ready(site: Site) -> None:
    """Something else holds the replication port: the agent says which, and never 'ready'."""
    site.sh("node1", "true")  # the namespace exists
    holder = site.topo.popen("node1", ["python3", "-c", (
        "import socket,time;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,"
        f"socket.SO_REUSEADDR,1);s.bind(('{LAN_IP['node1']}',7702));s.listen();"
        "print('bound',flush=True);time.sleep(60)")], stdout=-1, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "bound"
        r = site.run_agent("node1", site.config)
        assert r.returncode == 1, r.stderr
        assert f"replication listener {LAN_IP['node1']}:7702: Address already in use" in r.stderr
        assert "ready on" not in r.stderr and "Traceback" not in r.stderr, r.stderr
        api = f"/dev/tcp/{LAN_IP['node1']}/7700"  # nothing of the agent is left listening
        assert site.sh("node1", f"bash -c 'echo > {api}'", check=False).returncode != 0
    finally:
        holder.kill()
        holder.wait()
