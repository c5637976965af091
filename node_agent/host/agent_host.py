"""The agent process around its engine (issue 12): paired or not, configured or not.

    no configuration, not paired   pairing open: a code printed and logged, the
                                   self-signed pairing certificate served, only the
                                   Pairing calls answered, advertised over mDNS
    paired, no configuration       the cluster's mTLS; status says configured = false;
                                   waits for the console's first configuration
    configured                     the engine runs the modules

A commit of a configuration (``apply_config``) starts the engine on a node that had
none, or hands the new version to the running engine. ``mirrorpair-agent
--open-pairing`` on the server reopens pairing: the agent notices the code file and
serves the pairing calls until the wizard pairs it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from pathlib import Path

import grpc

from node_agent.api.server import ApiBindError, serve_services
from node_agent.api.servicer import AgentServicer
from node_agent.config.configurator import Configurator
from node_agent.config.load import load_config
from node_agent.config.model import ClusterConfig
from node_agent.config.store import ConfigStore
from node_agent.engine.node import VERSION, NodeEngine
from node_agent.host import facts
from node_agent.host.mdns import Advert, Advertiser
from node_agent.host.observability import Observability
from node_agent.host.pairing import Pairing
from node_agent.host.pairing_service import PairingServicer, closed_agent_servicer
from node_agent.host.state import StateDir, fingerprint
from node_agent.host.unconfigured import EngineSlot, UnconfiguredEngine
from node_agent.protocol import PROTOCOL
from protos import mirrorpair_pb2 as pb
from protos.security.credentials import TlsError, server_credentials

log = logging.getLogger(__name__)

WATCH_FILES_S = 1.0  # how often the pairing code file is looked at
SWITCH_DELAY_S = 0.3  # lets the CompletePairing reply leave before the server restarts


class AgentHost:
    def __init__(
        self, *, config_path: Path, state_dir: Path, node_id: str, listen: str,
        mdns: bool = True,
    ) -> None:  # fmt: skip
        self.config_path = Path(config_path)
        self.state = StateDir(state_dir)
        self.node_id = node_id
        self.listen = listen
        self.pairing = Pairing(self.state)
        self.config: ClusterConfig | None = None
        self.engine: NodeEngine | None = None
        self.slot: EngineSlot | None = None
        self._engine_task: asyncio.Task[None] | None = None
        self._server: grpc.aio.Server | None = None
        self._address = listen
        self._mode = ""  # "pairing" or "cluster"
        self._advertiser = Advertiser() if mdns else None
        self._switch = asyncio.Event()
        self._advert_tasks: set[asyncio.Future[None]] = set()
        self._served = ""  # the address the running server listens on
        self._advert_lock = asyncio.Lock()
        self.configurator: Configurator | None = None  # start(): configuration changes
        self.obs = Observability(lambda: self.engine, self._log)  # health, metrics

    # ----- start ------------------------------------------------------------------
    async def start(self) -> None:
        """Load what exists, open pairing if the node has nothing, start serving."""
        paired = self.state.paired()
        if self.config_path.exists():
            self.config = load_config(self.config_path, str(self.state.root))
            self.node_id = self.node_id or (paired.node_id if paired else "")
            if self.node_id not in ("node1", "node2"):
                raise ValueError("--node must be node1 or node2 (this node's id in the config)")
        elif paired is not None:
            if self.node_id and self.node_id != paired.node_id:
                raise ValueError(f"--node {self.node_id}: this server was paired as "
                                 f"{paired.node_id} of cluster {paired.cluster!r}")  # fmt: skip
            self.node_id = paired.node_id
        elif self.state.code() is None:
            self.state.open_pairing()
        # Configuration changes from the console (two phases): installed in config_path,
        # then applied by apply_config (the engine's reconfigure, or its start).
        self.configurator = Configurator(
            ConfigStore(self.config_path), self.node_id, self.apply_config, self.config,
            self._log, state_dir=str(self.state.root),
        )  # fmt: skip
        if self.config is not None:
            self.engine = NodeEngine(self.config, self.node_id)
            await self.engine.open()
            self._engine_task = asyncio.get_running_loop().create_task(self.engine.run())
            self.slot = EngineSlot(self.engine)
            self._address = self.config.nodes[self.node_id].api
        else:
            cluster = paired.cluster if paired else ""
            self.slot = EngineSlot(UnconfiguredEngine(self.node_id, cluster, self.listen))
        self.obs.start()
        self.obs.configure(self.config, self.node_id)
        await self._serve()
        print(f"mirrorpair-agent {self.node_id or '(unpaired)'} ready on {self._address}",
              file=sys.stderr, flush=True)  # fmt: skip

    @property
    def up(self) -> bool:
        """The API listens and, configured, the heartbeats run: systemd's READY=1."""
        return self._server is not None and (self.engine is None or self.engine.started)

    def _announce_code(self) -> None:
        code = self.state.code()
        if code is None:
            return
        fp = fingerprint(self.state.pairing_identity()[0])
        msg = (f"pairing is open: code {code}  (certificate fingerprint {fp[:16]}…); "
               f"enter the code in the console's setup wizard")  # fmt: skip
        # Logged only: where the agent logs is where its operator looks (a terminal's
        # stderr, the journal, the log file); also printed, it was twice in the journal.
        log.warning(msg)

    # ----- serving ----------------------------------------------------------------
    def _wanted_mode(self) -> str:
        # Cluster mode needs an identity: an unpaired agent whose code file was removed
        # keeps answering the pairing calls (closed) rather than failing to serve.
        identity = self.config is not None or self.state.paired() is not None
        return "cluster" if identity and not self.pairing.open else "pairing"

    async def _serve(self) -> None:
        """(Re)start the server in the wanted mode. Credentials are built before the old
        server stops (a bad file leaves it serving); an address that cannot be bound
        (a configuration moving the API) leaves the server on the address it had."""
        mode = self._wanted_mode()
        pairing = PairingServicer(self.pairing, self.host_info, self._paired)
        try:
            if mode == "pairing":
                cert, key = self.state.pairing_identity()
                creds = grpc.ssl_server_credentials([(key, cert)], require_client_auth=False)
                agent: object = closed_agent_servicer()
            else:
                creds = server_credentials(self._tls_paths())
                assert self.slot is not None
                agent = AgentServicer(self.slot, host_info=self.host_info,  # type: ignore[arg-type]
                                      configurator=self.configurator)  # fmt: skip
        except TlsError as e:
            if self._server is None:
                raise
            log.error("cannot serve %s: %s; serving as before", mode, e)
            return
        if self._server is not None:
            await self._server.stop(grace=0.5)
            self._server = None
        board = self.obs.health  # what the health service says (api/health_board.py)
        try:
            self._server = await serve_services(self._address, creds, agent, pairing, board)  # type: ignore[arg-type]
        except ApiBindError as e:
            if not self._served or self._served == self._address:
                raise
            log.error("%s; the API stays on %s", e, self._served)
            self._address = self._served
            self._server = await serve_services(self._address, creds, agent, pairing, board)  # type: ignore[arg-type]
        self._mode, self._served = mode, self._address
        if mode == "pairing":
            self._announce_code()
        log.info("serving %s on %s", "the pairing calls" if mode == "pairing" else
                 "the cluster's API (mTLS)", self._address)  # fmt: skip
        # In the background (mDNS probing takes a second; the API serves already), one
        # publication after the other: a half-done one must not leave a stale advert.
        self._advert_tasks.add(asyncio.ensure_future(self._advertise()))

    def _tls_paths(self):  # type: ignore[no-untyped-def]
        if self.config is not None:
            return self.config.paths_for(self.node_id)
        return self.state  # ca / cert / key attributes: what pairing installed

    def _served_fingerprint(self) -> str:
        try:
            if self._mode == "pairing":
                return fingerprint(self.state.pairing_identity()[0])
            return fingerprint(Path(self._tls_paths().cert).read_bytes())
        except (OSError, ValueError):
            return ""

    def _log(self, level: str, message: str) -> None:
        """The engine's log book (who changed the configuration), or ours before it runs."""
        if self.engine is not None:
            self.engine.logbook.add(level, message)
        else:
            log.log(getattr(logging, level.upper(), logging.INFO), "%s", message)

    def _paired(self) -> None:
        paired = self.state.paired()
        if paired is not None:
            self.node_id = paired.node_id
            if self.configurator is not None:
                self.configurator.node_id = paired.node_id
            if isinstance(self.slot and self.slot.current, UnconfiguredEngine):
                self.slot.current.node_id, self.slot.current.cluster = (  # type: ignore[union-attr]
                    paired.node_id, paired.cluster)  # fmt: skip
        self._switch.set()

    async def host_info(self) -> pb.HostInfo:
        paired = self.state.paired()
        return pb.HostInfo(
            hostname=facts.hostname(), version=VERSION, paired=paired is not None,
            pairing_open=self.pairing.open, cluster_name=paired.cluster if paired else "",
            node_id=self.node_id, fingerprint=self._served_fingerprint(),
            addresses=await asyncio.to_thread(facts.addresses),
            config_version=self.config.version if self.config else 0,
            memory_bytes=facts.memory_bytes(), api_address=self._address,
            protocol=str(PROTOCOL),
        )  # fmt: skip

    async def _advertise(self) -> None:
        if self._advertiser is None:
            return
        async with self._advert_lock:
            await self._publish(self._advertiser)

    async def _publish(self, advertiser: Advertiser) -> None:
        paired = self.state.paired()
        host, _, port = self._address.rpartition(":")
        await advertiser.publish(
            Advert(
                hostname=facts.hostname(),
                port=int(port),
                version=VERSION,
                paired=paired is not None,
                pairing_open=self.pairing.open,
                fingerprint=self._served_fingerprint(),
                node_id=self.node_id if paired else "",
                cluster=paired.cluster if paired else "",
                listen_host=host.strip("[]"),
            )  # fmt: skip
        )

    # ----- configuration ----------------------------------------------------------
    async def apply_config(self, config: ClusterConfig) -> list[str]:
        """A committed configuration: start the engine, or hand it the new version."""
        if self.engine is not None:
            changes = await self.engine.reconfigure(config)  # type: ignore[attr-defined]
            self.config = config
            self.obs.configure(config, self.node_id)
            return list(changes)
        engine = NodeEngine(config, self.node_id)
        await engine.open()
        self.engine, self.config = engine, config
        self.obs.configure(config, self.node_id)
        self._engine_task = asyncio.get_running_loop().create_task(engine.run())
        assert self.slot is not None
        old, self.slot.current = self.slot.current, engine
        if isinstance(old, UnconfiguredEngine):
            old.end()
        changes = [f"started the cluster engine with {len(config.modules)} module(s)"]
        address = config.nodes[self.node_id].api
        if not _covers(self._address, address):
            self._address = address
            self._switch.set()  # rebind after this commit's reply has left
            changes.append(f"API moved to {address}")
        return changes

    # ----- running ----------------------------------------------------------------
    async def run(self) -> None:
        """Serve until cancelled; then stop the engine cleanly and the server."""
        was_open = self.pairing.open
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._switch.wait(), WATCH_FILES_S)
                if was_open and not self.pairing.open and self.state.paired() is None:
                    # The code file was removed by hand: say so (nothing else shows it).
                    log.warning("pairing closed: the pairing code file %s is gone; "
                                "--open-pairing opens it again", self.state.code_file)  # fmt: skip
                was_open = self.pairing.open
                if self._switch.is_set():
                    self._switch.clear()
                    await asyncio.sleep(SWITCH_DELAY_S)
                    await self._serve()
                elif self._wanted_mode() != self._mode:
                    await self._serve()  # reopened by the local command (or closed)
                if self._engine_task is not None and self._engine_task.done():
                    self._engine_task.result()  # the engine died: the agent must too
                    return
        finally:
            await self.close()

    async def close(self) -> None:
        await self.obs.close()  # NOT_SERVING from now on
        if self._engine_task is not None and not self._engine_task.done():
            self._engine_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._engine_task
        if self._server is not None:
            await self._server.stop(grace=1.0)
        for task in self._advert_tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._advertiser is not None:
            await self._advertiser.close()


def _covers(listening: str, wanted: str) -> bool:
    """Whether a server on ``listening`` already answers at ``wanted``."""
    lhost, _, lport = listening.rpartition(":")
    whost, _, wport = wanted.rpartition(":")
    return lport == wport and (lhost.strip("[]") in ("0.0.0.0", "::", "") or lhost == whost)
