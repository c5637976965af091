"""Asyncio UDP driver for heartbeats: sockets only, every decision is in ``Liveness``.

One socket per heartbeat network, bound to this node's address on that network
and the network's port, sending to the peer's address on the same port. Binding
the specific address (never 0.0.0.0) keeps each datagram on its own network and
lets two agents share a machine (127.0.0.1 / 127.0.0.2, or distinct ports).

SO_REUSEADDR is deliberately NOT set: for UDP on Linux it lets a second socket
bind the very same address and port, so a second agent instance of the same
node would silently steal half of the heartbeats instead of failing at start.
UDP has no TIME_WAIT, so restarts do not need it.

If the address is not (yet) present, that link stays unbound (down) and the bind
is retried every ``rebind_interval_s`` until the address appears.

Inside a fresh network namespace (no address configured yet, lo down) Linux
accepts a bind to ANY IPv4 address but leaves the socket's source address
unset: datagrams would leave with the route's preferred source, and the peer
would rightly drop them as "unexpected source". So every datagram names its
source explicitly (IP_PKTINFO / IPV6_PKTINFO ancillary data).

A pulse goes out as one or more datagrams of at most ``split.BUDGET`` bytes
(``split.py``), the same parts on every link; to a peer running an older agent
(``Liveness.legacy_peer``) as one datagram, as that agent expects.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from node_agent import VERSION
from node_agent.config.model import HeartbeatNetwork, other_node
from node_agent.heartbeat.codec import MAX_DATAGRAM, HeartbeatRejected, decode, encode
from node_agent.heartbeat.liveness import INCOMPATIBLE, Liveness, Pulse
from node_agent.heartbeat.split import BUDGET, FEATURE_PARTS, split
from node_agent.heartbeat.timing import LinkTiming
from node_agent.protocol import PROTOCOL, PeerBuild, judge
from protos.heartbeat_pb2 import Heartbeat

log = logging.getLogger(__name__)

UNEXPECTED_SOURCE = "unexpected source"
_IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux value; not exported by Python 3.11
MAX_READS = 512  # datagrams read per wake-up: a few pulses of 64 modules, whole histories

OnHeartbeat = Callable[[str, Heartbeat], None]


def _bind(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind((address, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _source_cmsg(address: str) -> tuple[int, int, bytes]:
    """Ancillary data pinning a datagram's source address (struct in_pktinfo / in6_pktinfo)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        scope = ip.scope_id
        index = socket.if_nametoindex(scope) if scope and not scope.isdigit() else int(scope or 0)
        return socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, struct.pack("=16sI", ip.packed, index)
    return socket.IPPROTO_IP, _IP_PKTINFO, struct.pack("=i4s4s", 0, ip.packed, bytes(4))


class _Link:
    def __init__(self, net: HeartbeatNetwork, local: str, peer: str) -> None:
        self.net = net
        self.local = local
        self.peer = peer
        self.peer_ip = ipaddress.ip_address(peer)
        self.source_cmsg = _source_cmsg(local)
        self.sock: socket.socket | None = None  # bound: receives, and sends with source pinned
        self.loop: asyncio.AbstractEventLoop | None = None  # watches sock for reading
        self.rebind: asyncio.Task[None] | None = None
        self.closed = False
        self.sent = 0
        self.send_errors = 0
        self.largest = 0
        self.timing = LinkTiming.new()


@dataclass(frozen=True)
class LinkIo:
    bound: bool  # False while the local address is missing, or after close_link
    sent: int  # datagrams handed to the kernel
    send_errors: int
    largest: int = 0  # bytes of the largest datagram sent


class HeartbeatTransport:
    """Sends heartbeats on every network and feeds received ones to ``Liveness``."""

    def __init__(
        self,
        node_id: str,
        cluster_name: str,
        secret: bytes,
        networks: Sequence[HeartbeatNetwork],
        liveness: Liveness,
        on_heartbeat: OnHeartbeat,
        clock: Callable[[], float] = time.monotonic,
        rebind_interval_s: float = 1.0,
        on_peer_boot: Callable[[], None] | None = None,
    ) -> None:
        peer = other_node(node_id)
        self._on_peer_boot = on_peer_boot
        self.rebind_interval_s = rebind_interval_s
        self.node_id = node_id
        self.cluster_name = cluster_name
        self._secret = secret
        self.liveness = liveness
        self._on_heartbeat = on_heartbeat
        self._clock = clock
        self._links: dict[str, _Link] = {
            net.name: _Link(net, net.addresses[node_id], net.addresses[peer]) for net in networks
        }
        self._refused_build: PeerBuild | None = None  # the incompatible peer last logged

    async def start(self) -> None:
        """Bind every link. A missing local address is retried in the background; any
        other bind error (e.g. EADDRINUSE: this node's agent already runs) closes all
        sockets and raises OSError."""
        try:
            for name, link in self._links.items():
                try:
                    await self._open(name)
                except OSError as exc:
                    if exc.errno != errno.EADDRNOTAVAIL:
                        where = f"{link.local}:{link.net.port}"
                        msg = f'heartbeat network "{name}" on {where} (UDP): {exc.strerror}'
                        raise OSError(exc.errno, msg) from None
                    log.warning(
                        "heartbeat link %s: address %s is not configured (yet); "
                        "link down, binding again every %.1f s",
                        name,
                        link.local,
                        self.rebind_interval_s,
                    )
                    link.rebind = asyncio.create_task(self._rebind(name))
        except BaseException:
            self.close()
            raise

    async def _open(self, name: str) -> None:
        link = self._links[name]
        if link.closed:
            return
        sock = _bind(link.local, link.net.port)
        link.loop = asyncio.get_running_loop()
        link.loop.add_reader(sock.fileno(), self._readable, name, sock)
        link.sock = sock

    async def _rebind(self, name: str) -> None:
        link = self._links[name]
        while link.sock is None and not link.closed:
            await asyncio.sleep(self.rebind_interval_s)
            try:
                await self._open(name)
            except OSError as exc:
                # Still missing is the normal case; anything else (in use) deserves a look.
                level = logging.DEBUG if exc.errno == errno.EADDRNOTAVAIL else logging.WARNING
                log.log(level, "heartbeat link %s: bind %s: %s", name, link.local, exc)
            else:
                log.info("heartbeat link %s: bound to %s", name, link.local)

    def close(self) -> None:
        for name in self._links:
            self.close_link(name)

    def close_link(self, name: str) -> None:
        """Stop sending and receiving on one network for good (tests; link out of service)."""
        link = self._links[name]
        link.closed = True
        if link.rebind is not None:
            link.rebind.cancel()
            link.rebind = None
        if link.sock is not None and link.loop is not None:
            link.loop.remove_reader(link.sock.fileno())
            link.sock.close()
            link.sock = None

    def send(self, hb: Heartbeat) -> int:
        """Send ``hb`` on every open link, stamped with cluster, node id and link name,
        split into parts (``split.py``); returns the number of parts.

        The caller sets boot_id/seq (one pair per pulse, the same on every link). Never
        raises for network errors: a down link is normal, Liveness on the peer sees it.
        """
        out = Heartbeat()
        out.CopyFrom(hb)
        out.cluster = self.cluster_name
        out.node_id = self.node_id
        out.echo_boot_id = self.liveness.peer_boot_id  # answers the peer's challenge
        out.features = FEATURE_PARTS
        out.protocol_major, out.protocol_minor = PROTOCOL.major, PROTOCOL.minor
        out.agent_version = VERSION
        # An older peer takes one datagram per pulse (IP fragments it, as it always did).
        budget = MAX_DATAGRAM if self.liveness.legacy_peer else BUDGET
        parts = split(out, budget, list(self._links))
        for name, link in self._links.items():
            if link.sock is None:
                continue
            for part in parts:
                part.link = name
                data = encode(part, self._secret)
                try:
                    # Direct non-blocking send: a full buffer (EAGAIN) drops this part
                    # rather than queueing stale heartbeats behind it.
                    link.sock.sendmsg([data], [link.source_cmsg], 0, (link.peer, link.net.port))
                except OSError as exc:
                    self._send_failed(name, exc)
                else:
                    link.sent += 1
                    link.largest = max(link.largest, len(data))
        return len(parts)

    def link_io(self) -> dict[str, LinkIo]:
        return {
            name: LinkIo(link.sock is not None, link.sent, link.send_errors, link.largest)
            for name, link in self._links.items()
        }

    def link_timing(self, name: str) -> LinkTiming:
        return self._links[name].timing

    def _send_failed(self, name: str, exc: Exception) -> None:
        self._links[name].send_errors += 1
        log.debug("heartbeat link %s: %s", name, exc)

    def _readable(self, name: str, sock: socket.socket) -> None:
        """Read every datagram waiting, not one per loop iteration (as asyncio's datagram
        transport does): a pulse comes in several datagrams, and on a loop busy with
        other work (64 modules starting) one read per iteration let them queue for
        seconds -- late heartbeats, a peer that looks silent. Bounded, so a flood cannot
        keep the loop from the rest of its work."""
        for _ in range(MAX_READS):
            if self._links[name].sock is not sock:
                return  # closed by a callback of the datagram just handled
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM + 1)  # + 1: oversize is seen
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # Asynchronous socket errors (ICMP reports): expected on a flaky link,
                # counted, never fatal. Synchronous send errors are caught in send().
                self._send_failed(name, exc)
                return
            self._received(name, data, addr)

    def _received(self, name: str, data: bytes, addr: tuple) -> None:
        now = self._clock()
        link = self._links[name]
        try:
            source_ok = ipaddress.ip_address(addr[0]) == link.peer_ip
        except ValueError:
            source_ok = False
        # Source first: cheaper than the HMAC, and a wrong source is a misrouted
        # datagram (or a probe) even when it is well signed.
        if not source_ok:
            self.liveness.reject(name, UNEXPECTED_SOURCE, now)
            log.debug("heartbeat link %s: datagram from unexpected %s", name, addr)
            return
        try:
            hb = decode(data, self._secret)
        except HeartbeatRejected as exc:
            self.liveness.reject(name, exc.reason, now)
            log.debug("heartbeat link %s: rejected (%s) from %s", name, exc.reason, addr)
            return
        echoed = self.liveness.peer_boot_id
        reason = self.liveness.accept(name, hb, now)
        if self.liveness.peer_boot_id != echoed and self._on_peer_boot is not None:
            self._on_peer_boot()  # the peer (re)started: answer its challenge now
        if reason == INCOMPATIBLE and self.liveness.peer_build != self._refused_build:
            self._refused_build = self.liveness.peer_build  # once per peer build, not per pulse
            verdict = judge(PeerBuild(PROTOCOL, VERSION), self._refused_build)
            log.error("peer %s: %s", self.liveness.peer_id, verdict.message)
        if reason is not None:
            log.debug("heartbeat link %s: rejected (%s) from %s", name, reason, addr)
            return
        link.timing.heard((hb.boot_id, hb.seq), now, time.time() - hb.sent_time)
        try:
            self._on_heartbeat(name, hb)
        except Exception:
            # A bug in the consumer must not stop heartbeat reception.
            log.exception("on_heartbeat callback failed")


class HeartbeatSender:
    """Sends a heartbeat every pulse (and at once after ``urgent()``), numbering them.

    ``build`` returns the content (modules, witness_reachable); this class stamps
    boot_id, a strictly increasing seq and sent_time, so replay checks hold.
    """

    def __init__(
        self,
        transport: HeartbeatTransport,
        pulse: Pulse,
        build: Callable[[], Heartbeat],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = transport
        self.pulse = pulse
        self._build = build
        self.boot_id = transport.liveness.boot_id  # the one the peer must echo
        self.seq = 0
        self._clock = clock
        self._wake = asyncio.Event()

    def urgent(self) -> None:
        """A local state changed: send now."""
        self.pulse.urgent()
        self._wake.set()

    def send_now(self, leaving_s: float = 0.0) -> None:
        """Send a pulse now; ``leaving_s``: this agent exits leaving its modules running,
        the peer counts it alive that long (Liveness.peer_leaving)."""
        hb = self._build()
        hb.leaving_ms = round(leaving_s * 1000)
        self.seq += 1
        hb.boot_id = self.boot_id
        hb.seq = self.seq
        hb.sent_time = time.time()
        self.transport.send(hb)
        self.pulse.sent(self._clock())

    async def run(self) -> None:
        """Send until cancelled; a failing ``build`` is logged and retried next pulse."""
        while True:
            now = self._clock()
            if self.pulse.due(now):
                try:
                    self.send_now()
                except Exception:
                    log.exception("building or sending a heartbeat failed")
                    self.pulse.sent(now)  # no busy loop on a persistent failure
            self._wake.clear()
            delay = self.pulse.delay(self._clock())
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):  # wait_for may swallow a cancel
                        await self._wake.wait()
