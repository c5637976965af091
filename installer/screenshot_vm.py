"""Take docs/console-vm.png and docs/console-vm-move.png from the running program: two real
agents running the demo's small VM module ``camera`` (and an app module beside it), the
console opened offscreen on them.

- docs/console-vm.png: the VM card and the detail panel's VM tab, the guest up on node1;
- docs/console-vm-move.png: the same VM moved to node2 by the console, its progress line
  at the guest's boot there.

It needs what the VM tests need (root, QEMU, libvirt, FUSE; docs/testing-vms.md) and, as
they do, starts a libvirtd of its own (tests/vm/libvirtd.py), never the machine's.

    .venv/bin/python installer/screenshot_vm.py
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

APP = "web-portal"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "console-vm.png")
    p.add_argument("--move-out", type=Path, default=ROOT / "docs" / "console-vm-move.png")
    p.add_argument("--width", type=int, default=1480)
    p.add_argument("--height", type=int, default=900)
    return p.parse_args(argv)


async def _until(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.1)
    return False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from screenshot import console_on  # installer/screenshot.py, beside this script

    from tests.console.vm_live import VM, VmCluster
    from tests.vm.libvirtd import Libvirtd

    root = Path(tempfile.mkdtemp(prefix="mirrorpair-shot-vm-"))
    with Libvirtd(root / "libvirt") as lv, VmCluster(root / "cluster", lv, "headquarters",
                                                     apps=(APP,)) as vc:  # fmt: skip
        vc.wait_settled(VM, timeout=120)
        vc.wait_settled(APP, timeout=60)
        loop, window = console_on(vc.cluster, args.width, args.height)

        async def shoot() -> bool:
            window.start()
            window.show()
            view = None

            def booted() -> bool:
                nonlocal view
                view = window.current_view()
                return (
                    view is not None
                    and VM in view.cards
                    and ("last boot" in view.card(VM).vm_text())
                )

            ok = await _until(booted, 120)
            assert view is not None
            view.select(VM)
            detail = window.detail
            detail.tabs.setCurrentWidget(detail.vm)
            await asyncio.sleep(1.5)  # layouts settle
            args.out.parent.mkdir(parents=True, exist_ok=True)
            saved = window.grab().save(str(args.out))

            window.flows[view.session.name].request_migration(VM, "node2")
            window.confirmer.answer(True)
            card = view.card(VM)
            moving = await _until(lambda: "booting on node2 2" in card.op_label.text(), 60)
            saved = moving and window.grab().save(str(args.move_out)) and saved
            await _until(lambda: "moved to node2" in card.op_label.text(), 60)
            await window.shutdown()
            return ok and saved

        with loop:
            ok = loop.run_until_complete(shoot())
    print(f"saved {args.out}, {args.move_out}" if ok else "NOT saved (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
