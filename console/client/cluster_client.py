"""Both agents of one cluster: two NodeClients sharing one event sink, and commands
sent as background tasks whose results come back as ``CommandResult`` events."""

from __future__ import annotations

import asyncio
import getpass
import itertools
import socket
from collections.abc import Callable

import grpc

from console.client.credentials import TlsIdentity, build_credentials, key_is_encrypted
from console.client.events import CommandResult
from console.client.node_client import EventSink, NodeClient, Timeouts
from protos import mirrorpair_pb2 as pb
from protos.security.credentials import server_name

NODE_IDS = ("node1", "node2")


def operator_name() -> str:
    """Who issues commands, as the agents log it (they append our certificate's name)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()} (mirrorpair console)"


class ClusterClient:
    def __init__(
        self,
        name: str,
        addresses: dict[str, str],
        identity: TlsIdentity,
        sink: EventSink,
        passphrase: Callable[[], str | None] = lambda: None,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.name = name
        self._identity = identity
        self._passphrase = passphrase
        self._sink = sink
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self.nodes = {
            n: NodeClient(name, n, addresses[n], server_name(n), self._credentials, sink, timeouts)
            for n in NODE_IDS
        }

    async def _credentials(self) -> grpc.ChannelCredentials:
        # Built on every (re)connection: fixed certificate files are picked up without a
        # console restart; a TlsError shows on the node as its reason.
        passphrase = None
        if key_is_encrypted(self._identity.key):
            # The OS keyring may block (D-Bus, an unlock prompt): never on the GUI thread.
            passphrase = await asyncio.to_thread(self._passphrase)
        return build_credentials(self._identity, passphrase)

    def start(self) -> None:
        for node in self.nodes.values():
            node.start()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*(n.stop() for n in self.nodes.values()), return_exceptions=True)

    def next_request_id(self) -> int:
        return next(self._ids)

    def send_command(
        self,
        node_id: str,
        module: str,
        command: int,
        request_id: int | None = None,
        fullsync: bool = False,
    ) -> int:
        """Schedule a command on the loop and return at once; the result arrives as a
        ``CommandResult`` event with the returned request id."""
        rid = request_id if request_id is not None else self.next_request_id()
        task = asyncio.ensure_future(self._send(node_id, module, command, rid, fullsync))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return rid

    async def _send(
        self, node_id: str, module: str, command: int, rid: int, fullsync: bool
    ) -> None:
        try:
            result = await self.nodes[node_id].run_command(
                module, command, operator_name(), rid, fullsync
            )
        except Exception as e:  # run_command reports failures itself; this is a bug
            result = CommandResult(
                self.name,
                node_id,
                module,
                command,
                rid,
                False,
                f"the console could not send it: {e}",
                delivered=False,
            )
        self._sink(result)


def command_from_name(name: str) -> int:
    return pb.Command.Value(f"COMMAND_{name.upper()}")
