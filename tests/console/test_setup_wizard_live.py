"""The setup wizard end to end (issue 12): two freshly installed servers, each in its own
network and mount namespace, found by real mDNS from the desk (this process, on their
LAN), paired with their printed codes, configured with one module and a VIP in two
phases; the console then watches the new cluster, PRIM on one server and SECOND on the
other. No keyring backend here: the secrets stay in memory and none reaches the disk."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cryptography import x509
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton, QTableWidget, QTreeWidget

from console.app import setup_backend_factory
from console.client.setup_client import SetupClient
from console.settings.secrets import PASSPHRASE, SecretStore
from console.setup.flow import Page
from console.ui.main_window import MainWindow
from tests.console.live import TEST_TIMEOUTS, wait_for
from tests.console.wizard_drive import child, error_text, idle, next_page, type_in, until
from tests.integration.conftest import netns_session, setup_site, topology  # noqa: F401
from tests.integration.netns import VIP, VIP_CIDR
from tests.integration.setup_site import DESK_IP, NODES
from tests.integration.site import APP_CHECK, APP_START, APP_STOP


def other(node: str) -> str:
    return "node2" if node == "node1" else "node1"


def plain_secrets_on_disk(roots: list[Path], secrets: list[str]) -> list[str]:
    """Files under ``roots`` holding one of ``secrets`` or an unencrypted private key."""
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if not path.is_file():
                continue
            data = path.read_bytes()
            for marker in [*(s.encode() for s in secrets), b"BEGIN PRIVATE KEY",
                           b"BEGIN EC PRIVATE KEY"]:  # fmt: skip
                if marker in data:
                    found.append(f"{path}: {marker[:12]!r}…")
    return found


async def drive(wiz: Any, site: Any, www: Path) -> None:
    servers = child(wiz, QTreeWidget, "serverList")
    await until(lambda: servers.topLevelItemCount() >= 2, 20, "two servers discovered")
    addresses = {site.address(n) for n in NODES}
    for i in range(servers.topLevelItemCount()):
        item = servers.topLevelItem(i)
        # Whole addresses: "10.77.0.2" must not pick a server at 10.77.0.253 (the desk's).
        words = {w for c in range(item.columnCount()) for w in re.split(r"[\s,:()]+", item.text(c))}
        if addresses & words:
            item.setCheckState(0, Qt.CheckState.Checked)
    type_in(wiz, "clusterName", "site")
    await next_page(wiz, Page.PAIR)
    # Which discovered server became node1 is the wizard's (and the operator's) choice.
    by_address = {site.address(n): n for n in NODES}
    for node in NODES:
        server = wiz.flow.server(wiz.flow.chosen[node])
        type_in(wiz, f"code_{node}", site.code(by_address[server.address]))
    nxt = child(wiz, QPushButton, "nextButton")
    nxt.click()
    await idle(wiz)
    await until(lambda: wiz.flow.page is Page.NETWORKS, 30, error_text(wiz))

    table = child(wiz.currentPage(), QTableWidget, "networkTable")
    assert table.rowCount() == 2  # the LAN and the direct link, matched by subnet
    await next_page(wiz, Page.WITNESS)
    await next_page(wiz, Page.MODULES)
    await idle(wiz)  # each server's VM list (no libvirt here: said on the page)
    type_in(wiz, "appName", "web")
    type_in(wiz, "appDirectories", str(www))
    type_in(wiz, "appStart", APP_START)
    type_in(wiz, "appStop", APP_STOP)
    type_in(wiz, "appCheck", APP_CHECK)
    child(wiz.currentPage(), QPushButton, "addAppButton").click()
    assert error_text(wiz) == ""
    await next_page(wiz, Page.VIP)
    vips = child(wiz.currentPage(), QTableWidget, "vipTable")
    vips.item(0, 1).setText(VIP_CIDR)
    await next_page(wiz, Page.REVIEW)
    await next_page(wiz, Page.APPLY)
    child(wiz, QPushButton, "finishButton").click()
    await idle(wiz)
    await until(lambda: not wiz.isVisible(), 60, f"applied: {error_text(wiz)}")


def test_the_wizard_sets_up_two_fresh_servers(
    qtbot: Any,
    run: Any,
    setup_site: Any,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    monkeypatch: Any,
) -> None:
    home, config = tmp_path / "home", tmp_path / "home" / ".config"
    config.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    www = tmp_path / "srv" / "www"
    www.mkdir(parents=True)
    for node in NODES:
        setup_site.start(node)

    secrets = SecretStore()
    assert not secrets.available()  # this machine has no keyring backend
    plain = setup_backend_factory(secrets, config / "mirrorpair")

    def factory(entry: Any) -> SetupClient:
        client = plain(entry)
        client.mdns_interfaces = [DESK_IP]  # the desk's LAN port, not the machine's own
        return client

    settings = config / "mirrorpair" / "console.toml"
    window = MainWindow([], secrets, settings_path=settings, setup_backends=factory,
                        timeouts=TEST_TIMEOUTS)  # fmt: skip
    window.start()
    window.show()
    try:
        wiz = window.setup.open_new()
        assert wiz is not None
        note = wiz.findChild(object, "secretsNote")
        run(drive(wiz, setup_site, www), 180)
        assert "No OS keyring" in note.text()  # the operator was told

        # The console watches the new cluster: web PRIM on one server, SECOND on the other.
        wait_for(qtbot, lambda: window.current_view() is not None, 10, "the cluster's tab")
        view = window.current_view()
        roles = {}

        def settled() -> bool:
            if "web" not in view.cards:
                return False
            roles.update({n: view.card("web").state_text(n) for n in NODES})
            return sorted(roles.values()) == ["PRIM · Ready", "SECOND · Ready"]

        wait_for(qtbot, settled, 90, f"web PRIM/SECOND in the console ({roles})",
                 lambda: "\n".join(setup_site.agent_text(n)[-3000:] for n in NODES))  # fmt: skip
        primary = next(n for n, text in roles.items() if text.startswith("PRIM"))
        # The wizard's node ids need not be the namespaces' names: map by address.
        flow = window.setup.wizard.flow
        server = {setup_site.address(n): n for n in NODES}
        host = {n: server[flow.server(flow.chosen[n]).address] for n in NODES}
        assert VIP in setup_site.sh(host[primary], "ip -o addr").stdout
        assert VIP not in setup_site.sh(host[other(primary)], "ip -o addr").stdout

        # Both servers' certificates came from the CA the wizard made on this PC.
        client = window.setup.wizard.backend
        ca = x509.load_pem_x509_certificate(client.pki().ca_pem())
        for node in NODES:
            cert = x509.load_pem_x509_certificate(
                (setup_site.state_dir(node) / "tls" / "node.pem").read_bytes())  # fmt: skip
            cert.verify_directly_issued_by(ca)
            assert (setup_site.config_path(node)).exists()

        # No secret in plain text in the home or config folders: not the heartbeat
        # secret, not the keys' passphrase, no unencrypted private key.
        secret = window.setup.wizard.flow.secret
        passphrase = secrets.get("site", PASSPHRASE)
        assert secret and passphrase
        assert plain_secrets_on_disk([home], [secret, passphrase]) == []
        assert settings.exists() and (config / "mirrorpair" / "site" / "console.key").exists()
    finally:
        run(window.shutdown(), 15)
        window.close()
        window.deleteLater()
