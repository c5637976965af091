"""An attacker on the heartbeat links: record the heartbeats a node receives, replay them.

``python -m tests.integration.hb_capture capture OUT SECONDS PORT`` (inside the receiving
node's network namespace) records, for SECONDS, every UDP datagram to PORT that arrives on
any interface, as JSON lines ``{"t", "wall", "src", "dst", "data"}`` (t relative to the
first, wall: time.time() when it arrived).
``python -m tests.integration.hb_capture replay FILE`` (inside the sender's namespace, whose
addresses the datagrams came from) sends them again from their source addresses to their
destinations, at the recorded pace, and prints ``done``.
"""

from __future__ import annotations

import base64
import json
import select
import socket
import struct
import sys
import time
from pathlib import Path

ETH_P_IP = 0x0800
PACKET_OUTGOING = 4


def capture(out: Path, seconds: float, port: int) -> None:
    # SOCK_DGRAM packet socket: IP packets without the link-layer header, every interface.
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
    start: float | None = None
    deadline = time.monotonic() + seconds
    with sock, open(out, "w") as fh:
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([sock], [], [], left)[0]:
                continue
            packet, addr = sock.recvfrom(65535)
            if addr[2] == PACKET_OUTGOING or packet[9] != socket.IPPROTO_UDP:
                continue
            ihl = (packet[0] & 0x0F) * 4
            dport = struct.unpack_from("!H", packet, ihl + 2)[0]
            if dport != port:
                continue
            now = time.monotonic()
            start = now if start is None else start
            record = {"t": now - start, "wall": time.time(),
                      "src": socket.inet_ntoa(packet[12:16]),
                      "dst": [socket.inet_ntoa(packet[16:20]), dport],
                      "data": base64.b64encode(packet[ihl + 8:]).decode()}  # fmt: skip
            fh.write(json.dumps(record) + "\n")
            fh.flush()
    print("captured", flush=True)


def replay(path: Path) -> None:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    socks: dict[str, socket.socket] = {}
    start = time.monotonic()
    for r in records:
        time.sleep(max(0.0, start + r["t"] - time.monotonic()))
        if r["src"] not in socks:
            socks[r["src"]] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks[r["src"]].bind((r["src"], 0))
        socks[r["src"]].sendto(base64.b64decode(r["data"]), tuple(r["dst"]))
    print("done", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "capture":
        capture(Path(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == "replay":
        replay(Path(sys.argv[2]))
    else:
        sys.exit(f"usage: {sys.argv[0]} capture OUT SECONDS PORT | replay FILE")
