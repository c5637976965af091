"""The WAIT rules of DESIGN §3 (split out of machine_rules for size): a started node
looking for its role -- elected, joining as secondary, waiting for the witness, handing
over in a swap. ``WaitRulesMixin`` is a base of ``RulesMixin`` and uses its shared actions
(_go_alone, _begin_resync, _primary_first) and the machine's fields."""

from __future__ import annotations

from typing import TYPE_CHECKING

from node_agent.core.election import Choice, elect
from node_agent.core.env import Env
from node_agent.core.generations import Relation, compare
from node_agent.core.states import Readiness, State

if TYPE_CHECKING:
    from node_agent.core.machine import ModuleMachine

    _Base = ModuleMachine
else:
    _Base = object

SPLIT_BRAIN_MSG = (
    "split brain: both nodes wrote independently; the node primary first keeps serving. "
    "Run `second` here to resync from it (this copy's own changes go to quarantine); to "
    "keep this copy instead, stop the module on the peer, then `prim` here: when the peer "
    "starts again it keeps its own changes in quarantine and resyncs from this copy"
)
KEPT_PEER_MSG = (
    "after the split brain an admin kept the peer's copy (`prim` there): this copy's own "
    "changes go to quarantine, then it resyncs from the peer"
)


class WaitRulesMixin(_Base):
    @property
    def _latest(self) -> str:
        return self.facts.generations[-1] if self.facts.generations else ""

    # ----- wait ----------------------------------------------------------------------
    def _decide_wait(self, env: Env) -> None:
        p, now = env.peer, env.now
        if self.handover:
            self._decide_handover_wait(env)
            return
        if self.split_brain or self.checker_wait:
            return
        if p is None:
            self._decide_wait_alone(env)
            return
        rel = compare(self.facts.generations, p.generations)
        if p.state.is_primary:
            if rel in (Relation.SAME, Relation.PEER_NEWER):
                if now < self.rejoin_after:
                    return  # back off after a replication failure before resyncing
                self._join_as_secondary(env, rel, "peer-primary")
            elif p.kept_over and p.kept_over == self._latest:
                # An admin forced the peer primary over this very copy after a split brain:
                # the choice is made, so do its last step (as `second` here would).
                self.quarantine_wanted = True
                self._begin_resync(env, "survivor-chosen", KEPT_PEER_MSG)
            else:
                self._note_split_brain(p)
                self._set(State.WAIT, Readiness.NOT_READY, "split-brain", now, SPLIT_BRAIN_MSG)
            return
        if p.state is State.SECOND and p.readiness is Readiness.READY:
            self._set(
                State.WAIT,
                Readiness.NOT_READY,
                "peer-second",
                now,
                "waiting for the secondary to take over",
            )
            return
        if rel is Relation.DIVERGED:
            # A peer that saw the split brain first waits (not a candidate any more): the
            # node primary first must still take over, or neither serves.
            if p.candidate or p.state is State.STOP or (p.state is State.WAIT and p.split_brain):
                if not self.facts.uptodate:
                    from node_agent.core.machine import NOT_UPTODATE_MSG

                    self._set(
                        State.WAIT, Readiness.NOT_READY, "not-uptodate", now, NOT_UPTODATE_MSG
                    )
                elif self._primary_first(p):
                    self._go_alone(env, "split-brain-survivor", "primary first: keeps serving")
                else:
                    self._note_split_brain(p)
                    self._set(State.WAIT, Readiness.NOT_READY, "split-brain", now, SPLIT_BRAIN_MSG)
            return
        peer_can_serve = p.uptodate and p.candidate
        choice = elect(rel, self.facts.uptodate, peer_can_serve, self.policy.preferred_here)
        if choice is Choice.ME:
            self._go_alone(env, "elected", f"peer is {p.state.name}; this copy is current")
        elif choice is Choice.PEER:
            self._set(
                State.WAIT,
                Readiness.NOT_READY,
                "elected",
                now,
                "waiting for the peer to become primary",
            )
        elif rel is Relation.PEER_NEWER:
            self._set(
                State.WAIT,
                Readiness.NOT_READY,
                "peer-newer",
                now,
                "the peer has newer data: start the module there, or run `prim` here",
            )
        else:
            from node_agent.core.machine import NOT_UPTODATE_MSG

            self._set(State.WAIT, Readiness.NOT_READY, "not-uptodate", now, NOT_UPTODATE_MSG)

    def _decide_wait_alone(self, env: Env) -> None:
        from node_agent.core.machine import NOT_UPTODATE_MSG

        now = env.now
        if self.lost_peer_wait:
            if self.resume_on_witness and env.witness_allows_takeover and self.facts.uptodate:
                self._go_alone(env, "witness-back", "witness answers again; peer still silent")
            return
        if now - self.waiting_since < self.policy.detection_timeout_s:
            self._set(State.WAIT, Readiness.TRANSIENT, "start", now, "looking for the peer")
        elif not self.facts.uptodate:
            self._set(State.WAIT, Readiness.NOT_READY, "not-uptodate", now, NOT_UPTODATE_MSG)
        elif env.witness_blocks:
            self._set(
                State.WAIT,
                Readiness.NOT_READY,
                "witness",
                now,
                "peer silent and witness unreachable: not serving",
            )
        elif not env.witness_allows_takeover:
            self._set(
                State.WAIT,
                Readiness.TRANSIENT,
                "witness",
                now,
                "peer silent; waiting for the witness to answer",
            )
        else:
            self._go_alone(env, "start-alone", "peer silent; this copy is up to date")

    def _decide_handover_wait(self, env: Env) -> None:
        p, now = env.peer, env.now
        if p is not None and p.state.is_primary:
            self.handover = False
            rel = compare(self.facts.generations, p.generations)
            self._join_as_secondary(env, rel, "swap")
            return
        if p is None or now - self.handover_since > self.policy.handover_timeout_s:
            # The peer never took over: serve again rather than leave the module down.
            self.handover = False
            self._log(now, "WARNING", "swap not completed by the peer: resuming", "swap")
            if p is None and env.witness_blocks:
                self.lost_peer_wait = True
                self._set(
                    State.WAIT,
                    Readiness.NOT_READY,
                    "witness",
                    now,
                    "peer lost during a swap and witness unreachable",
                )
            elif p is None and not env.witness_allows_takeover:
                return
            else:
                self._go_alone(env, "swap-cancelled", "the peer did not take over")

    def _join_as_secondary(self, env: Env, rel: Relation, cause: str) -> None:
        if rel is Relation.SAME and self.facts.uptodate and not self.resync_fullsync:
            self._set_facts(synctime=env.now)
            self._set(State.SECOND, Readiness.READY, cause, env.now, "identical to the primary")
        else:
            self._begin_resync(env, cause, "resynchronizing from the primary")
