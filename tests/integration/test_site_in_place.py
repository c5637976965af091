"""Protect a directory where it is (issue 11, point 3: "just name the VM's directory"):
what the directory holds when the module is first protected is the module's data -- the
primary serves it at the same path and the secondary gets all of it."""

from __future__ import annotations

import os

import pytest

from tests.integration.repl_netns import diff_trees, tree
from tests.integration.site import Site

pytestmark = pytest.mark.root


def test_a_directory_that_holds_data_is_protected_in_place(site: Site) -> None:
    www = site.www
    (www / "disks").mkdir()
    (www / "vms.xml").write_text("<domain type='qemu'><name>vms</name></domain>\n")
    with open(www / "disks" / "system.img", "wb") as fh:
        fh.write(os.urandom(5 << 20))
    os.symlink("disks/system.img", www / "current")
    before = tree(www)

    site.start()
    site.wait_pair("node1", timeout=40)
    copy1, copy2 = (site.module_dir(n) / "copy" / "0" for n in ("node1", "node2"))
    assert tree(copy1) == before, "node1's copy is not what the directory held"
    assert not (d := diff_trees(copy1, copy2)), d[:5]  # the secondary has all of it
    assert site.mounted("node1")
    served = site.sh("node1", f"cat {www}/vms.xml && readlink {www}/current").stdout
    assert served == "<domain type='qemu'><name>vms</name></domain>\ndisks/system.img\n"
    assert any("protecting" in e["message"] and "in place" in e["message"]
               for e in site.logs("node1"))  # fmt: skip
