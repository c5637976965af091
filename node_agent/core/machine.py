"""The module automaton of one node (DESIGN §3): pure, level-triggered, time passed in.

Every call takes an ``Env`` (now, the peer's advertised view or None when the
peer is silent, the witness). The machine decides; a driver around it starts and
stops the resource, persists ``facts`` when ``facts_dirty`` is set (before acting),
and feeds results back (``resource_started``/``resource_stopped``/``resync_done``).
All state changes go through ``_set``, which checks the transition table and
logs old -> new with the rule or command that caused it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from node_agent.core import generations as gens
from node_agent.core.env import Env, PeerView
from node_agent.core.facts import Facts
from node_agent.core.machine_commands import CommandsMixin
from node_agent.core.machine_rules import RulesMixin
from node_agent.core.states import Readiness, State
from node_agent.core.transitions import LogRecord, check, transition_level


@dataclass(frozen=True)
class Policy:
    module: str
    node_id: str
    preferred: str
    maxloop: int = 3
    loop_interval_s: float = 300.0
    defaultprim: bool = False
    detection_timeout_s: float = 3.0  # how long `start` looks for the peer
    handover_timeout_s: float = 30.0  # a swap the peer does not complete is cancelled
    rejoin_delay_s: float = 5.0  # a secondary left behind waits this long before resyncing

    @property
    def preferred_here(self) -> bool:
        return self.preferred == self.node_id


@dataclass(frozen=True)
class Outcome:
    accepted: bool
    message: str


NOT_UPTODATE_MSG = "data may not be up to date; run `prim` on this node only if you are sure"


class ModuleMachine(RulesMixin, CommandsMixin):
    def __init__(self, policy: Policy, facts: Facts, now: float, nonce_seed: int = 0) -> None:
        self.policy = policy
        self.facts = facts
        self.facts_dirty = False
        self.state = State.STOP
        self.readiness = Readiness.NOT_READY
        self.reason = "stopped"
        self.last_rule = ""
        self.state_since = now
        self.primary_since = 0.0
        self.degraded = False
        self.split_brain = False
        self.split_peer_generations: tuple[str, ...] = ()  # the peer's, when split brain began
        self.stopping = False  # primary stopping its resource before STOP
        self.restart_after_stop = False  # stopstart
        self.last_stop_cause = "stop"
        self.last_stop_who = ""  # who asked for the stop, named on the STOP it leads to
        self.handing_over = False  # primary stopping its resource for a swap
        self.handover = False  # resource stopped, waiting for the peer to take over
        self.handover_since = 0.0
        self.swap_request = False
        self.swap_request_since = 0.0
        self.checker_wait = False
        self.data_plane_down = False  # checker_wait is held for a dead data plane
        # After adopt(): until then a silent peer means "not heard yet", not "gone".
        self.adopted_until = -math.inf
        self.forced_primary = False  # `prim`: serve even without peer and witness
        self.resume_on_witness = False  # stepped down from ALONE only for the witness
        self.lost_peer_wait = False  # WAIT after losing the peer: never ALONE on silence
        self.waiting_since = now
        self.resource_up = False
        self.forced = False  # forcestop: the driver kills instead of stopping politely
        self.restart_token = 0  # bumped for a local restart of the resource
        self.restart_times: list[float] = []
        # When the resource last passed all its checks after a start: a local restart not
        # followed by one keeps counting towards maxloop however long its start took.
        self.answered_at = -math.inf
        self.resync_wanted = False
        self.resync_fullsync = False
        self.rejoin_after = 0.0
        self.quarantine_wanted = False
        self.defaultprim_done = False
        # Outdate handshake (see PeerView.outdate). Primary side: the token we advertise
        # until the peer echoes it, whether the break was asked for (a fullsync: no
        # degraded, no new generation), and the last token the peer acknowledged (what
        # opens the write gate). Secondary side: the last token we acknowledged.
        self.outdate_token = ""
        self.outdate_requested = False
        self.peer_outdated = ""
        self.outdated_ack = ""
        # The break the automaton last took in (its token) and our generation then: the
        # write gate opens on a silent peer only in a newer one (core/write_gate.py).
        self.hold_seen = ""
        self.hold_generation = ""
        self._nonce = nonce_seed
        self._logs: list[LogRecord] = []

    # ----- what the driver reads -------------------------------------------------
    @property
    def want_running(self) -> bool:
        return self.state.is_primary and not self.stopping and not self.handing_over

    def view(self) -> PeerView:
        """What we advertise to the peer in every heartbeat."""
        return PeerView(
            state=self.state,
            readiness=self.readiness,
            uptodate=self.current,
            generations=self.facts.generations,
            primary_since=self.primary_since if self.state.is_primary else 0.0,
            handover=self.handover,
            swap_request=self.swap_request,
            split_brain=self.split_brain,
            candidate=self.candidate,
            resource_up=self.resource_up,
            fullsync=self.resync_wanted and self.resync_fullsync,
            outdate=self.outdate_token if self.state.is_primary else "",
            outdated=self.outdated_ack,
            kept_over=self.facts.kept_over,
        )

    @property
    def current(self) -> bool:
        """This copy is complete and current right now.

        A secondary persists uptodate=False (if its agent dies, the primary may go
        on alone), yet while it is SECOND Ready it is current.
        """
        return self.facts.uptodate or (
            self.state is State.SECOND and self.readiness is Readiness.READY
        )

    @property
    def candidate(self) -> bool:
        return (
            self.state is State.WAIT
            and not self.split_brain
            and not self.checker_wait
            and not self.handover
        )

    def drain_logs(self) -> list[LogRecord]:
        out, self._logs = self._logs, []
        return out

    # ----- inputs ----------------------------------------------------------------
    def step(self, env: Env) -> None:
        """Re-evaluate the rules until nothing changes (a few rounds at most)."""
        if env.peer is None and env.now < self.adopted_until:
            return  # just adopted: the restarted agent has not heard the peer yet
        for _ in range(6):
            before = self._snapshot()
            self._decide(env)
            if self._snapshot() == before:
                break
        p = env.peer
        if p is not None and p.outdate and not self.current:
            # Acknowledge only once the rules above made this copy non-current (and it
            # stays so: a secondary persists uptodate=False), so the echo is a promise.
            self.outdated_ack = p.outdate

    def resource_started(self, ok: bool, detail: str, env: Env) -> None:
        if not self.want_running:
            # A start that finished after we decided to stop: the driver stops it.
            self.step(env)
            return
        self.resource_up = ok
        if not ok:
            self._log(env.now, "ERROR", f"resource failed to start: {detail}", "resource")
            self._local_failure(env, "resource-start-failed")
        self.step(env)

    def resource_answered(self, env: Env) -> None:
        """Every check of the resource passed after its start (a VM's guest booted)."""
        self.answered_at = env.now

    def resource_stopped(self, ok: bool, detail: str, env: Env) -> None:
        if ok:
            self.resource_up = False
            self.step(env)
            return
        # If in doubt, wait: the peer must not start a resource that may still run here.
        self._log(env.now, "ERROR", f"resource failed to stop: {detail}", "resource")
        self.step(env)
        self.reason = f"stop failed ({detail}); run `forcestop`"

    def resync_done(self, env: Env) -> None:
        peer = env.peer
        if self.state is not State.SECOND or peer is None or not peer.state.is_primary:
            return
        self.resync_wanted = False
        self.resync_fullsync = False
        self._set_facts(generations=peer.generations, synctime=env.now)
        self._set(State.SECOND, Readiness.READY, "resync-done", env.now, "identical to primary")
        self.step(env)

    def replication_failed(
        self, reason: str, env: Env, token: str, requested: bool = False
    ) -> None:
        """The synchronous stream to the secondary broke; the writes it lacks are in the
        bitmap and the replicator holds them (``token`` names this break). The peer is
        asked to acknowledge that its copy is outdated; once it has, this node goes on
        alone (a new generation, flagged degraded) and the write gate opens. A silent
        peer is left to the peer-loss rules and the witness. ``requested``: the secondary
        asked for it (a full resync): the same handshake, but no degraded flag and no new
        generation."""
        if self.state.is_primary and token:
            self.hold_seen, self.outdate_token, self.outdate_requested = token, token, requested
            self.hold_generation = self.facts.generations[-1] if self.facts.generations else ""
            if not requested:
                self.degraded = True
                self._log(env.now, "WARNING", f"replication failed: {reason}", "replication")
            if self.state is State.ALONE and not requested:
                # Alone already (the peer joined a moment ago): nothing written from now on
                # is on the peer, so it belongs to a new generation -- if the peer serves
                # its copy meanwhile, the histories diverge and show it.
                self._go_alone(env, "replication-failed", f"degraded: {reason}")
        self.step(env)

    def adopt(
        self, state: State, env: Env, primary_since: float = 0.0, current: bool = False,
        why: str = "the data plane kept serving through an agent restart",
    ) -> None:  # fmt: skip
        """Agent restart while the module's data plane kept serving (issue 13): take up
        the role it holds rather than start over. PRIM or ALONE: its mounts serve and the
        resource was found running; SECOND: it receives the stream (``current``: its copy
        is complete). No new generation: the data did not change hands."""
        if self.state is not State.STOP:
            return
        self.adopted_until = env.now + self.policy.detection_timeout_s
        if state.is_primary:
            self.resource_up = True
            self.answered_at = env.now
            self._set(state, Readiness.TRANSIENT, "adopted", env.now, why)
            self.primary_since = primary_since or env.now
            self._refresh_primary_readiness(env)
        elif state is State.SECOND:
            ready = Readiness.READY if current else Readiness.TRANSIENT  # resynchronizing
            self._set(State.SECOND, ready, "adopted", env.now, why)
        self.step(env)

    def data_plane_lost(self, detail: str, env: Env) -> None:
        """The module's data plane died: its mounts and stream are gone. A primary stops
        serving (the peer takes over, as after a crash of this node), a secondary's copy
        is no longer current; neither is a candidate until ``data_plane_back``."""
        self._log(env.now, "ERROR", f"data plane died: {detail}", "data-plane")
        if self.state is not State.STOP:
            # Held like a checker saying "wait": not a candidate, not joining as SECOND.
            self.checker_wait = self.data_plane_down = True
            self._step_down(env, "data-plane", f"data plane died ({detail}): restarting it")
        self.step(env)

    def data_plane_back(self, env: Env) -> None:
        if self.data_plane_down:
            self.data_plane_down = False
            self.checker_wait = False
            self._log(env.now, "INFO", "data plane restarted", "data-plane")
        self.step(env)

    def checker_failed(self, action: str, detail: str, env: Env) -> None:
        self._checker_failed(action, detail, env)
        self.step(env)  # every input re-evaluates the rules against the current env

    def _checker_failed(self, action: str, detail: str, env: Env) -> None:
        self._log(env.now, "WARNING", f"checker failed: {detail}", "checker")
        if self.want_running:
            if action == "restart":
                self._local_failure(env, "checker")
            elif action == "stopstart":
                self._begin_stop(env, "checker", "", restart=True)
            else:
                self.checker_wait = True
                self._step_down(env, "checker", f"checker says wait: {detail}")
            return
        if self.state in (State.SECOND, State.WAIT):
            self.checker_wait = True
            if self.state is State.SECOND:
                self._set(State.WAIT, Readiness.NOT_READY, "checker", env.now, detail)
            self.reason = f"checker failed: {detail}"

    def checker_cleared(self, env: Env) -> None:
        if self.checker_wait:
            self.checker_wait = False
            self._log(env.now, "INFO", "checkers clear again", "checker")
        self.step(env)

    # ----- helpers shared with the rules -------------------------------------------
    def _snapshot(self) -> tuple:
        return (
            self.state,
            self.readiness,
            self.facts,
            self.split_brain,
            self.stopping,
            self.handing_over,
            self.handover,
            self.swap_request,
            self.lost_peer_wait,
            self.reason,
            self.outdate_token,
        )

    def _set(
        self,
        state: State,
        readiness: Readiness,
        cause: str,
        now: float,
        reason: str,
        who: str = "",
    ) -> None:
        old_state, old_ready = self.state, self.readiness
        check(old_state, state)
        self.reason = reason
        if state is old_state and readiness is old_ready:
            return
        self.state, self.readiness = state, readiness
        if state is not old_state:
            self.state_since = now
            self.last_rule = cause + (f" by {who}" if who else "")
            if state.is_primary and not old_state.is_primary:
                self.primary_since = now
            if state is State.PRIM or not state.is_primary:
                # "degraded" is a primary's replication failing; with a secondary again
                # (resynchronizing, then Ready), or as no primary at all, it is over.
                self.degraded = False
            if not state.is_primary:
                self.primary_since = 0.0
                self.stopping = self.handing_over = False
                self.outdate_token, self.outdate_requested = "", False
            if state is not State.WAIT:
                self.lost_peer_wait = self.resume_on_witness = False
                self.checker_wait = self.checker_wait and state is State.STOP
            if state is State.SECOND:
                self._set_facts(uptodate=False)
            else:
                self.resync_wanted = False
        self._logs.append(
            LogRecord(
                time=now,
                module=self.policy.module,
                level=transition_level(state, cause),
                message=f"{old_state.name}/{old_ready.name} -> {state.name}/{readiness.name}: "
                + reason,
                cause=cause,
                who=who,
                old_state=old_state,
                new_state=state,
                old_readiness=old_ready,
                new_readiness=readiness,
            )
        )

    def _log(self, now: float, level: str, message: str, cause: str, who: str = "") -> None:
        self._logs.append(LogRecord(now, self.policy.module, level, message, cause, who))

    def _set_facts(self, **changes: object) -> None:
        new = replace(self.facts, **changes)
        if new != self.facts:
            self.facts = new
            self.facts_dirty = True

    def _new_generation(self, now: float) -> None:
        self._nonce += 1
        gen = gens.new_generation_id(now, self.policy.node_id, self._nonce)
        self._set_facts(generations=gens.append(self.facts.generations, gen), uptodate=True)
