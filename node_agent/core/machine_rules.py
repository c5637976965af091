"""The rules of DESIGN §3, one method per state, applied by ModuleMachine.step().

Each rule names itself in the cause of the transition it makes ("peer-lost",
"witness", "elected", ...), so the log tells why a module moved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node_agent.core.election import Choice, elect, primary_first
from node_agent.core.env import Env, PeerView
from node_agent.core.generations import Relation, compare
from node_agent.core.machine_wait import SPLIT_BRAIN_MSG, WaitRulesMixin
from node_agent.core.states import Readiness, State
from node_agent.core.transitions import InvalidTransition

if TYPE_CHECKING:
    from node_agent.core.machine import ModuleMachine

    _Base = ModuleMachine
else:
    _Base = object


class RulesMixin(WaitRulesMixin):
    def _decide(self, env: Env) -> None:
        if self.state is State.STOP:
            return
        if self.state.is_primary:
            self._decide_primary(env)
        elif self.state is State.SECOND:
            self._decide_second(env)
        elif self.state is State.WAIT:
            self._decide_wait(env)

    # ----- primary (ALONE / PRIM) --------------------------------------------------
    def _decide_primary(self, env: Env) -> None:
        p, now = env.peer, env.now
        if self.stopping or self.handing_over:
            self._continue_stopping(env)
            return
        if p is None:
            if env.witness_blocks and not self.forced_primary:
                # Alone already (the peer was gone before the witness): nobody else can
                # have taken over since, so serve again once the witness answers.
                resume = self.state is State.ALONE and not self.stopping
                self.lost_peer_wait = True
                self._step_down(env, "witness", "lost the peer and the witness: not serving")
                self.resume_on_witness = resume
            elif self.state is State.PRIM and env.witness_allows_takeover:
                self._go_alone(env, "peer-lost", "peer silent on every heartbeat link")
            elif self.state is State.PRIM:
                self._set(
                    State.PRIM,
                    Readiness.TRANSIENT,
                    "witness",
                    now,
                    "peer silent; waiting for the witness to answer",
                )
            else:
                self._refresh_primary_readiness(env)
            return
        self.forced_primary = False
        if p.state is State.STOP:
            # The peer was stopped (its stream broke on the way): a planned loss of the
            # secondary, shown as "not protected", not as a failed replication.
            self.degraded = False
        if p.state.is_primary:
            if not self._primary_first(p):
                rel = compare(self.facts.generations, p.generations)
                if rel is Relation.DIVERGED:
                    self._note_split_brain(p)
                    self._step_down(env, "split-brain", SPLIT_BRAIN_MSG)
                else:
                    self._step_down(env, "primary-conflict", "the peer was primary first")
            return
        if self.swap_request:
            self.swap_request = False
        if self.outdate_token:
            if p.outdated == self.outdate_token and not p.uptodate:
                # The peer promised not to serve its copy: writes it lacks may be
                # acknowledged (the write gate opens on peer_outdated).
                self.peer_outdated, self.outdate_token = self.outdate_token, ""
                if self.state is State.PRIM and not self.outdate_requested:
                    self._go_alone(
                        env, "replication-failed", "degraded: the peer knows its copy is outdated"
                    )
            elif self.state is State.PRIM:
                self._set(
                    State.PRIM,
                    Readiness.TRANSIENT,
                    "replication-failed",
                    now,
                    "replication interrupted: writes wait until the peer acknowledges "
                    "that its copy is outdated",
                )
                return
        if p.state is State.SECOND:
            same = compare(self.facts.generations, p.generations) is Relation.SAME
            # A Ready secondary still on an older generation has not noticed that we went
            # on alone: it is not our secondary until it resyncs.
            joined = p.readiness is not Readiness.READY or same
            if self.state is State.ALONE and joined:
                self._set(State.PRIM, Readiness.TRANSIENT, "peer-second", now, "peer is secondary")
            self._refresh_primary_readiness(env)
            if self.state is State.PRIM and self.readiness is Readiness.READY and same:
                self._set_facts(kept_over="")  # the peer resynced from this copy
            self._maybe_hand_over(env, p)
            return
        if self.state is State.PRIM and p.handover:
            self._refresh_primary_readiness(env)  # the peer hands over to us: it joins next
            return
        if self.state is State.PRIM:
            self._set_facts(synctime=now)
            self._go_alone(env, "peer-not-second", f"peer is {p.state.name}")
        self._refresh_primary_readiness(env)

    def _refresh_primary_readiness(self, env: Env) -> None:
        p = env.peer
        ready = self.resource_up
        if self.state is State.PRIM:
            ready = (
                ready
                and p is not None
                and p.readiness is Readiness.READY
                and compare(self.facts.generations, p.generations) is Relation.SAME
            )
            reason = "replicating to a ready secondary" if ready else "secondary not ready"
        else:
            reason = "serving without a secondary"
        if not self.resource_up:
            reason = "starting the resource"
        readiness = Readiness.READY if ready else Readiness.TRANSIENT
        self._set(self.state, readiness, "resource", env.now, reason)

    def _maybe_hand_over(self, env: Env, p: PeerView) -> None:
        if self.state is not State.PRIM or self.readiness is not Readiness.READY:
            return
        if p.readiness is not Readiness.READY:
            return
        if p.swap_request:
            self._begin_handover(env, "swap", "peer")
        elif (
            self.policy.defaultprim and not self.policy.preferred_here and not self.defaultprim_done
        ):
            self.defaultprim_done = True
            self._begin_handover(env, "defaultprim", "")

    def _primary_first(self, p: PeerView) -> bool:
        return primary_first(
            self.facts.generations,
            p.generations,
            self.primary_since,
            p.primary_since,
            self.policy.preferred_here,
            concurrent_s=self.policy.detection_timeout_s,
        )

    def _continue_stopping(self, env: Env) -> None:
        if self.handing_over and env.peer is None:
            self.handing_over = False
            self._log(env.now, "WARNING", "swap cancelled: peer lost", "swap")
            return
        if self.resource_up:
            return  # wait for the driver to report the resource stopped
        if self.stopping:
            restart = self.restart_after_stop
            self.restart_after_stop = False
            self._set(State.STOP, Readiness.NOT_READY, self.last_stop_cause, env.now, "stopped",
                      self.last_stop_who)  # fmt: skip
            if restart:
                self._start(env, "stopstart", "")
            return
        self.handover = True
        self.handover_since = env.now
        self._set(State.WAIT, Readiness.TRANSIENT, "swap", env.now, "handing over to the peer")

    # ----- secondary -----------------------------------------------------------------
    def _decide_second(self, env: Env) -> None:
        p, now = env.peer, env.now
        ready = self.readiness is Readiness.READY
        if p is None:
            if not ready and now - self.waiting_since < self.policy.detection_timeout_s:
                self._set(
                    State.SECOND, Readiness.TRANSIENT, "second", now, "looking for the primary"
                )
                return
            self.lost_peer_wait = True
            if not ready:
                self._set(
                    State.WAIT,
                    Readiness.NOT_READY,
                    "peer-lost",
                    now,
                    "peer lost during resync: this copy is not usable",
                )
            elif env.witness_blocks:
                self._set(
                    State.WAIT,
                    Readiness.NOT_READY,
                    "witness",
                    now,
                    "peer lost and witness unreachable: not taking over",
                )
            elif not env.witness_allows_takeover:
                return  # the witness is in doubt: decide when it answers or is lost
            else:
                self._go_alone(env, "peer-lost", "peer silent on every heartbeat link")
            return
        if ready and p.state.is_primary and p.outdate and p.outdate != self.outdated_ack:
            # The primary could not replicate to us: from now on this copy is not current
            # (step() then echoes the token, which lets the primary go on without us).
            self.rejoin_after = now + self.policy.rejoin_delay_s
            self._set(
                State.WAIT,
                Readiness.NOT_READY,
                "outdated",
                now,
                "the primary could not replicate to us: this copy is outdated",
            )
            return
        rel = compare(self.facts.generations, p.generations)
        if p.state.is_primary:
            if self.swap_request and now - self.swap_request_since > self.policy.handover_timeout_s:
                self.swap_request = False
                self._log(now, "WARNING", "swap request timed out", "swap")
            if ready and rel is Relation.SAME:
                return
            if ready and rel is Relation.PEER_NEWER:
                # The primary went on without us (its replication to us failed): this
                # copy is no longer current. Wait a moment, then resync.
                self.rejoin_after = now + self.policy.rejoin_delay_s
                self._set(
                    State.WAIT,
                    Readiness.NOT_READY,
                    "peer-newer",
                    now,
                    "the primary went on without us (replication failed): not up to date",
                )
            elif ready:
                self._note_split_brain(p)
                self._set(State.WAIT, Readiness.NOT_READY, "split-brain", now, SPLIT_BRAIN_MSG)
            elif not self.resync_wanted:
                self._begin_resync(env, "peer-primary", "resynchronizing from the primary")
            return
        if not ready:
            if p.state is State.STOP:
                self._set(
                    State.WAIT,
                    Readiness.NOT_READY,
                    "peer-stopped",
                    now,
                    "peer stopped before the resync finished",
                )
            return  # wait for a primary to resync from
        if p.handover and rel is Relation.SAME:
            # Swap: identical copies, the peer becomes our secondary: no new generation.
            self.swap_request = False
            self._set_facts(uptodate=True)
            self._set(State.PRIM, Readiness.TRANSIENT, "swap", now, "taking over from the peer")
            return
        both_ready = p.state is State.SECOND and p.readiness is Readiness.READY
        if both_ready and elect(rel, True, p.uptodate, self.policy.preferred_here) is not Choice.ME:
            return
        self._go_alone(env, "peer-not-primary", f"peer is {p.state.name}: taking over")

    def _note_split_brain(self, p: PeerView) -> None:
        self.split_brain = True
        self.split_peer_generations = p.generations

    def _begin_resync(self, env: Env, cause: str, reason: str) -> None:
        self.resync_wanted = True
        self._set_facts(uptodate=False)
        self._set(State.SECOND, Readiness.TRANSIENT, cause, env.now, reason)

    # ----- shared actions ------------------------------------------------------------
    def _go_alone(self, env: Env, cause: str, reason: str, who: str = "") -> None:
        """Become (or stay) primary without a secondary: a new data generation starts."""
        if self.state is not State.ALONE and cause != "prim":
            # The safety rules no other rule may break (checked here, in one place).
            if not self.state.is_primary and not self.current:
                raise InvalidTransition(f"{cause}: a copy that is not up to date became primary")
            if env.peer is None and not env.witness_allows_takeover:
                raise InvalidTransition(f"{cause}: took over without peer and witness")
        self.forced_primary = cause == "prim"
        self._new_generation(env.now)
        self.split_brain = False
        self.swap_request = False
        readiness = Readiness.READY if self.resource_up else Readiness.TRANSIENT
        self._set(State.ALONE, readiness, cause, env.now, reason, who)

    def _step_down(self, env: Env, cause: str, reason: str) -> None:
        """Stop serving (resource and VIP go down) and wait."""
        self._set(State.WAIT, Readiness.NOT_READY, cause, env.now, reason)

    def _begin_stop(self, env: Env, cause: str, who: str, restart: bool = False) -> None:
        self.stopping = True
        self.restart_after_stop = restart
        self.last_stop_cause, self.last_stop_who = cause, who
        self._log(env.now, "INFO", "stopping the resource", cause, who)
        self._set(self.state, Readiness.TRANSIENT, cause, env.now, "stopping")
        self._continue_stopping(env)

    def _begin_handover(self, env: Env, cause: str, who: str) -> None:
        self.handing_over = True
        self._log(env.now, "INFO", "swap: stopping the resource to hand over", cause, who)
        self._set(self.state, Readiness.TRANSIENT, cause, env.now, "handing over to the peer")

    def _local_failure(self, env: Env, cause: str) -> None:
        """Restart locally up to maxloop times in loop_interval, then fail over. A restart
        after which the resource never passed its checks counts however old it is: slow
        starts (a VM given start_timeout_s to boot) must not keep maxloop from being hit."""
        now = env.now
        window = self.policy.loop_interval_s
        self.restart_times = [t for t in self.restart_times
                              if now - t < window or t >= self.answered_at]  # fmt: skip
        if len(self.restart_times) < self.policy.maxloop:
            self.restart_times.append(now)
            self.restart_token += 1
            self.resource_up = False
            n = len(self.restart_times)
            self._log(now, "WARNING", f"local restart {n}/{self.policy.maxloop}", cause)
            self._refresh_primary_readiness(env)
            return
        self.restart_times = []
        self._log(now, "WARNING", f"maxloop ({self.policy.maxloop}) reached: failing over", cause)
        self._begin_stop(env, "maxloop", "", restart=True)
