"""A module driver's checkers: which run, when a probe counts, what its verdict tells
the automaton, and when a start is over (every probe of the application passed)."""

from __future__ import annotations

import math
import time

from node_agent.config.model import (
    CheckerAction,
    CheckerConfig,
    CheckerKind,
    CheckerWhen,
    ModuleConfig,
)
from node_agent.core.states import Readiness, State
from node_agent.engine.driver_face import DriverFace
from node_agent.resources.checkers import counts_as_failure
from protos import mirrorpair_pb2 as pb


def checker_configs(cfg: ModuleConfig) -> list[CheckerConfig]:
    cfgs = list(cfg.checkers)
    has_process = any(c.kind is CheckerKind.PROCESS for c in cfgs)
    if (cfg.check or cfg.kind == "vm") and not has_process:
        # The module's own check command (a VM: its domain's state) is its process
        # checker.
        cfgs.insert(
            0,
            CheckerConfig(
                "process",
                CheckerKind.PROCESS,
                "",
                interval_s=5.0,
                timeout_s=cfg.check_timeout_s,
            ),
        )
    if cfg.kind == "vm" and not any(c.kind is CheckerKind.HOST for c in cfgs):
        # A secondary whose libvirt could not start the VM waits, saying why, rather
        # than being offered a swap or a failover it would fail.
        cfgs.append(CheckerConfig("libvirt", CheckerKind.HOST, "", interval_s=3.0,
                                  timeout_s=cfg.check_timeout_s, failures=2,
                                  action=CheckerAction.WAIT))  # fmt: skip
    return cfgs


async def run_checks_once(d: DriverFace) -> None:
    for cfg, checker, tracker in d.checkers:
        if not check_applies(d, cfg) or not tracker.due(time.monotonic()):
            continue
        launched = d._launched
        result = await checker.check()
        if d._launched != launched or not check_applies(d, cfg):
            # The resource was started or stopped while the probe ran (a swap, say):
            # its answer is about a world that is gone, so it must not trip an action.
            continue
        now = time.monotonic()
        if result.unknown:
            tracker.wait(now, result.detail)  # neither: asked again later
            continue
        if not result.ok and not counts_as_failure(
            result, cfg.runs is CheckerWhen.PRIMARY, d._started_at,
            d.cfg.start_timeout_s, now,
        ):  # fmt: skip
            tracker.wait(now, f"starting: {result.detail}")  # asked again later
            continue
        verdict = tracker.record(result.ok, now, result.detail)
        time_start(d)
        m = d.machine
        if verdict.trip:
            m.checker_failed(cfg.action.value, f"{cfg.name}: {result.detail}", d._env())
            d.after_step()
        elif verdict.cleared and not any(t.failing for _c, _k, t in d.checkers):
            m.checker_cleared(d._env())
            d.after_step()


def time_start(d: DriverFace) -> None:
    """A start is over once every probe of the application passed after it (a VM's
    boot: the guest answers), and its time is shown (issue 11: boot after failover)."""
    began = d._started_at
    if began is None:
        return
    mine = [t for c, _k, t in d.checkers if c.runs is CheckerWhen.PRIMARY]
    if all(t.last_ok and t.last_time is not None and t.last_time >= began for t in mine):
        d.last_start_s = time.monotonic() - began
        d._started_at = None
        d.machine.resource_answered(d._env())
        d._app_log("info", f"{d.resource.kind} up and answering its checks "
                   f"{d.last_start_s:.1f}s after its start")  # fmt: skip
        d._on_change()  # no longer "booting"


def probe_now(d: DriverFace) -> None:
    for cfg, _checker, tracker in d.checkers:
        if cfg.kind is CheckerKind.PROCESS:
            tracker.next_due = -math.inf
    d._on_change()


def check_applies(d: DriverFace, cfg: CheckerConfig) -> bool:
    """A probe of the application (``when = "primary"``) only while it runs here; a
    probe of the node's surroundings (``"both"``) while the module is started at all.
    Never during a start or stop."""
    if d._op is not None and not d._op.done():
        return False
    return checker_runs_here(d, cfg)


def checker_runs_here(d: DriverFace, cfg: CheckerConfig) -> bool:
    if cfg.runs is CheckerWhen.PRIMARY:
        return d.running
    if cfg.runs is CheckerWhen.STANDBY:
        # Where it does not run, once this copy is complete (or while such a checker
        # holds it waiting): a resynchronizing copy is no takeover candidate anyway.
        m = d.machine
        complete = m.state is State.SECOND and m.readiness is Readiness.READY
        return not d.running and (complete or (m.state is State.WAIT and m.checker_wait))
    return d.machine.state is not State.STOP


def checker_status(d: DriverFace) -> list[pb.CheckerStatus]:
    return [
        pb.CheckerStatus(
            name=cfg.name,
            kind=cfg.kind.value,
            ok=not tracker.failing,
            detail=tracker.last_detail,
            consecutive_failures=tracker.consecutive_failures,
            action=cfg.action.value,
            when=cfg.runs.value,
            active=checker_runs_here(d, cfg),
        )
        for cfg, _checker, tracker in d.checkers
    ]
