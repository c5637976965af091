"""A libvirtd per server of a Site (tests/integration/site.py): each server's own libvirtd
and virtlogd run in that server's network and mount namespaces (tests/vm/libvirtd.py), so a
process nsenter'ed into the server -- the agent -- reaches its own daemon at
``qemu:///system``, and QEMU runs in the server's network namespace.

    lv1 = site.start_libvirtd("node1")       # or start_libvirtd(site, "node1")
    conn = lv1.connect()                     # from the test process (any namespace)
    site.sh("node1", "virsh -c qemu:///system list --name")

The daemons' state and logs are under ``<site base>/<node>/libvirt``; the Site's close
destroys every domain and stops the daemons (after the agents, before its namespaces go).
Starting again after :meth:`Libvirtd.stop` (a libvirtd restart) keeps that state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.vm.libvirtd import Libvirtd

if TYPE_CHECKING:
    from tests.integration.site import Site


def start_libvirtd(site: Site, node: str, timeout: float = 60.0) -> Libvirtd:
    """Start (or start again) ``node``'s libvirtd and return it once it answers."""
    lv = site.libvirtds.get(node)
    if lv is None:
        lv = Libvirtd(site.base / node / "libvirt", enter=site.nsenter(node),
                      name=site.topo.ns[node])  # fmt: skip
        site.libvirtds[node] = lv
        site.closers.append(lv.stop)
    return lv.start(timeout)
