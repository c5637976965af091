"""The module's virtual IP: add/remove an address with pyroute2, announce it by gratuitous ARP.

pyroute2's IPRoute is blocking and, since 0.9, runs its own event loop, so it
cannot be used from a thread that already runs one: every netlink call here
runs in a worker thread. The current network namespace is used, so tests can
run this inside ``ip netns exec``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import ipaddress
import os
import shutil
import signal

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from node_agent.resources.common import LogFn, ResourceError

__all__ = ["ResourceError", "VirtualIP"]

ARPING_TIMEOUT_S = 5.0


class VirtualIP:
    def __init__(self, address: str, interface: str, log: LogFn) -> None:
        try:
            iface = ipaddress.ip_interface(address)
        except ValueError as exc:
            raise ResourceError(f"invalid virtual IP address {address!r}: {exc}") from exc
        self.interface = interface
        self.ip = str(iface.ip)  # without prefix
        self.prefixlen = iface.network.prefixlen
        self.version = iface.version
        self._log = log
        self._arping: set[asyncio.Task[None]] = set()  # keep background tasks referenced

    def __repr__(self) -> str:
        return f"VirtualIP({self.ip}/{self.prefixlen} on {self.interface})"

    @property
    def address(self) -> str:
        return f"{self.ip}/{self.prefixlen}"

    async def acquire(self) -> None:
        """Put the address on the interface (already there is fine), then announce it."""
        added = await asyncio.to_thread(self._add)
        self._log(
            "info",
            f"virtual IP {self.address} {'added to' if added else 'already on'} {self.interface}",
        )
        if self.version == 6:
            self._log("info", f"virtual IP {self.ip} is IPv6: no gratuitous ARP sent")
            return
        # Announce even when already present: the peer may have held it a moment ago.
        task = asyncio.create_task(self._announce())
        self._arping.add(task)
        task.add_done_callback(self._arping.discard)

    async def release(self) -> None:
        """Remove the address (absent, or the interface gone, is fine)."""
        outcome = await asyncio.to_thread(self._delete)
        if outcome == "removed":
            self._log("info", f"virtual IP {self.address} removed from {self.interface}")
        elif outcome == "no interface":
            self._log(
                "warning",
                f"virtual IP {self.address}: no interface {self.interface!r}, nothing to remove",
            )

    async def is_held(self) -> bool:
        """Whether the address is on the interface (non-blocking)."""
        return await asyncio.to_thread(self._held)

    def held(self) -> bool:
        """Synchronous variant of is_held(), callable from any thread, including the
        event loop's (blocks it for one netlink dump, well under a millisecond)."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(self._held).result()

    async def wait_announced(self) -> None:
        """Wait for background gratuitous ARPs (tests, orderly shutdown)."""
        if self._arping:
            await asyncio.gather(*self._arping, return_exceptions=True)

    # -- blocking parts, run in worker threads -------------------------------

    def _index(self, ipr: IPRoute) -> int | None:
        found = ipr.link_lookup(ifname=self.interface)
        return found[0] if found else None

    def _held(self) -> bool:
        try:
            with IPRoute() as ipr:
                index = self._index(ipr)
                if index is None:
                    return False
                dump = ipr.addr("dump", index=index)
                return any(msg.get("address") == self.ip for msg in dump)
        except (NetlinkError, OSError) as exc:
            raise ResourceError(
                f"cannot list addresses of {self.interface} for {self.address}: {_reason(exc)}"
            ) from exc

    def _add(self) -> bool:
        try:
            with IPRoute() as ipr:
                index = self._index(ipr)
                if index is None:
                    raise ResourceError(
                        f"cannot add virtual IP {self.address}: no interface {self.interface!r}"
                    )
                try:
                    ipr.addr("add", index=index, address=self.ip, prefixlen=self.prefixlen)
                except NetlinkError as exc:
                    if exc.code == errno.EEXIST:
                        return False
                    raise
                return True
        except (NetlinkError, OSError) as exc:
            raise ResourceError(
                f"cannot add virtual IP {self.address} to {self.interface}: {_reason(exc)}"
            ) from exc

    def _delete(self) -> str:
        """'removed', 'absent' or 'no interface' (logging stays on the loop's thread)."""
        try:
            with IPRoute() as ipr:
                index = self._index(ipr)
                if index is None:
                    return "no interface"
                try:
                    ipr.addr("del", index=index, address=self.ip, prefixlen=self.prefixlen)
                except NetlinkError as exc:
                    if exc.code in (errno.EADDRNOTAVAIL, errno.ENOENT, errno.ENODEV):
                        return "absent"
                    raise
                return "removed"
        except (NetlinkError, OSError) as exc:
            raise ResourceError(
                f"cannot remove virtual IP {self.address} from {self.interface}: {_reason(exc)}"
            ) from exc

    # -- gratuitous ARP ------------------------------------------------------

    async def _announce(self) -> None:
        """Unsolicited ARP so switches and neighbours learn the new MAC at once."""
        arping = shutil.which("arping") or shutil.which("arping", path="/usr/sbin:/sbin")
        if arping is None:
            self._log("warning", f"no arping program: gratuitous ARP for {self.ip} not sent")
            return
        argv = [arping, "-U", "-c1", "-I", self.interface, "-s", self.ip, self.ip]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as exc:
            self._log("warning", f"gratuitous ARP for {self.ip} failed: {exc}")
            return
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), ARPING_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)  # not proc.kill(): see witness._ping_one
            await proc.wait()
            self._log("warning", f"gratuitous ARP for {self.ip} on {self.interface} timed out")
            return
        # arping -U exits 1 when no reply comes, which is normal for an announcement;
        # only a complaint on its output means it could not send.
        text = out.decode("utf-8", errors="replace").strip()
        if proc.returncode not in (0, 1) or "Sent 1" not in text:
            last = text.splitlines()[-1] if text else f"exit status {proc.returncode}"
            self._log("warning", f"gratuitous ARP for {self.ip} on {self.interface} failed: {last}")
        else:
            self._log("debug", f"gratuitous ARP sent for {self.ip} on {self.interface}")


def node_addresses() -> set[tuple[str, str]]:
    """Every (interface name, IP) on this node, from one netlink dump: what the
    interfaces really hold, for the VIP audit. Blocking: run it in a worker thread."""
    try:
        with IPRoute() as ipr:
            names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
            return {
                (names.get(msg["index"], ""), msg.get_attr("IFA_ADDRESS")) for msg in ipr.get_addr()
            }
    except (NetlinkError, OSError) as exc:
        raise ResourceError(f"cannot list this node's addresses: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, NetlinkError):
        code = exc.code
        if code == errno.EPERM:
            return "permission denied (needs root or CAP_NET_ADMIN)"
        if code == errno.ENODEV:
            return "no such device"
        return f"{errno.errorcode.get(code, code)}: {exc}"
    return str(exc)
