"""Admin commands on one module of one node (DESIGN §3). Each returns an Outcome:
accepted (the machine acted) or refused with the reason a person can act on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from node_agent.core.env import Env
from node_agent.core.generations import Relation, compare
from node_agent.core.states import Readiness, State

if TYPE_CHECKING:
    from node_agent.core.machine import ModuleMachine, Outcome

    _Base = ModuleMachine
else:
    _Base = object

COMMANDS = (
    "start",
    "stop",
    "restart",
    "stopstart",
    "forcestop",
    "swap",
    "migrate",
    "prim",
    "second",
)


class CommandsMixin(_Base):
    def command(self, name: str, who: str, env: Env, fullsync: bool = False) -> Outcome:
        from node_agent.core.machine import Outcome

        handler = getattr(self, f"_cmd_{name}", None)
        if name not in COMMANDS or handler is None:
            return Outcome(False, f"unknown command {name!r}; known: {', '.join(COMMANDS)}")
        result: Outcome = handler(env, who, fullsync)
        level = "INFO" if result.accepted else "WARNING"
        verdict = "accepted" if result.accepted else "refused"
        self._log(env.now, level, f"command {name} {verdict}: {result.message}", name, who)
        self.step(env)  # every input re-evaluates the rules against the current env
        return result

    def _start(self, env: Env, cause: str, who: str) -> None:
        self.waiting_since = env.now
        self.lost_peer_wait = False
        self._set(State.WAIT, Readiness.TRANSIENT, cause, env.now, "looking for the peer", who)

    def _cmd_start(self, env: Env, who: str, _fullsync: bool) -> Outcome:
        from node_agent.core.machine import Outcome

        if self.state is not State.STOP:
            return Outcome(False, f"already started ({self.state.name})")
        self._start(env, "start", who)
        return Outcome(True, "starting: looking for the peer")

    def _cmd_stop(self, env: Env, who: str, _fullsync: bool) -> Outcome:
        from node_agent.core.machine import Outcome

        if self.state is State.STOP:
            return Outcome(False, "already stopped")
        if self.state.is_primary:
            self._begin_stop(env, "stop", who)
            p = env.peer
            if p is not None and p.state is State.SECOND and p.readiness is Readiness.READY:
                return Outcome(True, "stopping the resource; the ready secondary takes over")
            return Outcome(True, "stopping the resource; no ready secondary: the module stops")
        self.split_brain = self.handover = self.checker_wait = False
        self._set(State.STOP, Readiness.NOT_READY, "stop", env.now, "stopped", who)
        return Outcome(True, "stopped")

    def _cmd_forcestop(self, env: Env, who: str, _fullsync: bool) -> Outcome:
        from node_agent.core.machine import Outcome

        if self.state is State.STOP and not self.resource_up:
            return Outcome(False, "already stopped")
        self.forced = True
        self.split_brain = self.handover = self.checker_wait = False
        if self.state is State.SECOND and self.readiness is not Readiness.READY:
            self._set_facts(uptodate=False)
        self._set(State.STOP, Readiness.NOT_READY, "forcestop", env.now, "force-stopped", who)
        return Outcome(True, "force-stopped")

    def _cmd_restart(self, env: Env, who: str, _fullsync: bool) -> Outcome:
        from node_agent.core.machine import Outcome

        if not self.want_running:
            return Outcome(
                False, f"the resource runs only on the primary (this node is {self.state.name})"
            )
        self.restart_token += 1
        self.resource_up = False
        self._refresh_primary_readiness(env)
        return Outcome(True, "restarting the resource locally")

    def _cmd_stopstart(self, env: Env, who: str, _fullsync: bool) -> Outcome:
        from node_agent.core.machine import Outcome

        if self.state.is_primary:
            self._begin_stop(env, "stopstart", who, restart=True)
            return Outcome(True, "stopping (a ready secondary takes over), then starting again")
        if self.state is State.STOP:
            self._start(env, "stopstart", who)
            return Outcome(True, "starting")
        self._set(State.STOP, Readiness.NOT_READY, "stopstart", env.now, "stopped", who)
        self._start(env, "stopstart", who)
        return Outcome(True, "stopped and started again")

    def _cmd_swap(self, env: Env, who: str, _fullsync: bool) -> Outcome:
        from node_agent.core.machine import Outcome

        p = env.peer
        if p is None:
            return Outcome(False, "the peer is not answering: nothing to swap with")
        if self.state is State.PRIM:
            if p.state is not State.SECOND or p.readiness is not Readiness.READY:
                return Outcome(
                    False,
                    f"the peer is not a ready secondary ({p.state.name}/"
                    f"{p.readiness.name}): a swap would interrupt service",
                )
            if self.stopping or self.handing_over:
                return Outcome(False, "already stopping or handing over")
            self._begin_handover(env, "swap", who)
            return Outcome(True, "handing over to the peer")
        if self.state is State.SECOND:
            if self.readiness is not Readiness.READY:
                return Outcome(False, "this node is still resynchronizing: it cannot take over")
            if not p.state.is_primary:
                return Outcome(False, f"the peer is {p.state.name}, not primary")
            self.swap_request = True
            self.swap_request_since = env.now
            return Outcome(True, "asked the primary to hand over")
        if self.state is State.ALONE:
            return Outcome(False, "no ready secondary to hand over to: the peer is "
                           f"{p.state.name}/{p.readiness.name}")  # fmt: skip
        return Outcome(
            False, f"swap needs a primary with a ready secondary (this node is {self.state.name})"
        )

    def _cmd_migrate(self, env: Env, who: str, fullsync: bool) -> Outcome:
        # With two nodes, moving a module to the other node is a swap of that module.
        return self._cmd_swap(env, who, fullsync)

    def _cmd_prim(self, env: Env, who: str, _fullsync: bool) -> Outcome:
        from node_agent.core.machine import Outcome

        p = env.peer
        if self.state.is_primary:
            return Outcome(False, f"already primary ({self.state.name})")
        if p is not None and p.state.is_primary:
            return Outcome(False, f"the peer is primary ({p.state.name}): stop it there or swap")
        forced = "" if self.facts.uptodate else " (this copy was NOT up to date)"
        self.checker_wait = self.handover = False
        # Forced over a copy it diverged from (a split brain): the admin chose this copy.
        theirs = p.generations if p is not None and p.generations else self.split_peer_generations
        diverged = bool(theirs) and compare(self.facts.generations, theirs) is Relation.DIVERGED
        self._log(env.now, "WARNING", f"forced primary{forced}", "prim", who)
        self._go_alone(env, "prim", f"forced primary by {who or 'admin'}{forced}", who)
        if diverged:
            self._set_facts(kept_over=theirs[-1])
            self._log(env.now, "WARNING", "this copy is kept over the peer's (split brain): "
                      "when the peer starts it keeps its own changes in quarantine and "
                      "resyncs from this copy", "prim", who)  # fmt: skip
            return Outcome(True, f"primary{forced}; kept over the peer's copy, which "
                           "resyncs from this one when it starts (its own changes go to "
                           "quarantine)")  # fmt: skip
        return Outcome(True, f"primary{forced}")

    def _cmd_second(self, env: Env, who: str, fullsync: bool) -> Outcome:
        from node_agent.core.machine import Outcome

        p = env.peer
        if self.state.is_primary:
            return Outcome(False, "this node is primary: use swap or stop first")
        if self.state is State.SECOND and not fullsync:
            return Outcome(False, "already secondary")
        # A copy with writes the primary lacks keeps them (the driver quarantines them
        # first): a split-brain loser, even once a stop has cleared the flag.
        own = p is not None and compare(self.facts.generations, p.generations) in (
            Relation.LOCAL_NEWER,
            Relation.DIVERGED,
        )
        self.quarantine_wanted = self.split_brain or own
        self.split_brain = self.handover = self.checker_wait = False
        self.resync_fullsync = fullsync
        if self.state is State.STOP:
            self._set(State.WAIT, Readiness.TRANSIENT, "second", env.now, "starting", who)
        self.waiting_since = env.now
        self._begin_resync(
            env,
            "second",
            "resynchronizing from the primary" + (" (full compare)" if fullsync else ""),
        )
        where = f"from {p.state.name} peer" if p is not None else "once the peer is primary"
        return Outcome(True, f"secondary: resync {where}")
