"""The systemd notify decisions (node_agent.host.service_plan): environment, STATUS line,
what is sent when."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from node_agent.host.service_plan import (
    STATUS_MAX,
    NotifyPlan,
    read_service_env,
    status_line,
)
from protos import mirrorpair_pb2 as pb


# ----- environment ----------------------------------------------------------------------
def test_env_outside_systemd_is_empty():
    env = read_service_env({}, 100)
    assert env.notify_socket == "" and env.watchdog_s is None and env.problems == ()


def test_env_watchdog_half_is_the_pet_period():
    env = read_service_env({"NOTIFY_SOCKET": "@sd", "WATCHDOG_USEC": "10000000"}, 100)
    assert env.notify_socket == "@sd" and env.watchdog_s == 10.0
    assert NotifyPlan(env.watchdog_s).pet_every_s == 5.0


def test_env_watchdog_of_another_pid_is_not_ours():
    environ = {"NOTIFY_SOCKET": "/run/sd", "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "7"}
    assert read_service_env(environ, 100).watchdog_s is None
    assert read_service_env(environ, 7).watchdog_s == 2.0


def test_env_bad_values_are_named_and_ignored():
    env = read_service_env({"NOTIFY_SOCKET": "relative", "WATCHDOG_USEC": "soon"}, 1)
    assert env.notify_socket == "" and env.watchdog_s is None
    text = " ".join(env.problems)
    assert "NOTIFY_SOCKET" in text and "WATCHDOG_USEC" in text
    env = read_service_env({"NOTIFY_SOCKET": "@sd", "WATCHDOG_USEC": "0"}, 1)
    assert env.watchdog_s is None and "WATCHDOG_USEC" in env.problems[0]


def test_env_watchdog_without_socket_is_off():
    env = read_service_env({"WATCHDOG_USEC": "1000000"}, 1)
    assert env.watchdog_s is None and "NOTIFY_SOCKET" in env.problems[0]


# ----- STATUS line ----------------------------------------------------------------------
def _module(name, state=pb.STATE_PRIM, readiness=pb.READINESS_READY, **kw):
    return pb.ModuleStatus(name=name, state=state, readiness=readiness, **kw)


def _node(*modules, alive=True):
    return pb.NodeStatus(node_id="node1", peer_id="node2", peer_alive=alive, configured=True,
                         modules=list(modules))  # fmt: skip


def test_status_names_each_module_state_and_resync():
    resync = pb.ResyncProgress(active=True, bytes_done=40, bytes_total=100)
    line = status_line(_node(_module("web"), _module("db", pb.STATE_SECOND, resync=resync)))
    assert line == "node1: web PRIM, db SECOND (resync 40%); peer node2 answers"


def test_status_says_what_needs_a_look():
    line = status_line(_node(
        _module("a", pb.STATE_ALONE, degraded=True),
        _module("b", pb.STATE_WAIT, pb.READINESS_NOT_READY, split_brain=True),
        _module("c", pb.STATE_UP, pb.READINESS_TRANSIENT), alive=False,
    ))  # fmt: skip
    assert line == ("node1: a ALONE (degraded), b WAIT (split brain, not ready), "
                    "c UP (transient); peer node2 silent")  # fmt: skip


def test_status_unconfigured_and_empty():
    assert "no cluster configuration" in status_line(pb.NodeStatus(configured=False))
    assert status_line(_node()) == "node1: no modules; peer node2 answers"


def test_status_of_many_modules_counts_and_shows_the_odd_ones():
    mods = [_module(f"m{i:02}", pb.STATE_PRIM if i % 2 else pb.STATE_SECOND) for i in range(64)]
    mods[10] = _module("m10", pb.STATE_ALONE, degraded=True)
    line = status_line(_node(*mods))
    assert len(line) <= STATUS_MAX
    assert line.startswith("node1: 64 modules: 32 PRIM, 31 SECOND, 1 ALONE; m10 ALONE (degraded)")
    assert line.endswith("; peer node2 answers")


states = st.sampled_from([pb.STATE_STOP, pb.STATE_WAIT, pb.STATE_ALONE, pb.STATE_PRIM,
                          pb.STATE_SECOND, pb.STATE_UP])  # fmt: skip
modules = st.builds(
    _module, st.text("abcdefghij-_0123456789", min_size=1, max_size=40), states,
    st.sampled_from([pb.READINESS_READY, pb.READINESS_NOT_READY, pb.READINESS_TRANSIENT]),
    degraded=st.booleans(), split_brain=st.booleans(),
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(modules, max_size=80), st.booleans())
def test_status_fits_one_line_and_counts_every_module(mods, alive):
    line = status_line(_node(*mods, alive=alive))
    assert len(line) <= STATUS_MAX and "\n" not in line
    if line.startswith(f"node1: {len(mods)} modules: "):  # too many to name: counted
        counted = line.split(": ", 2)[2].split(";")[0]
        assert sum(int(part.split()[0]) for part in counted.split(", ")) == len(mods)
    else:
        for m in mods:
            assert f"{m.name} {pb.ModuleState.Name(m.state)[6:]}" in line


# ----- what is sent when ------------------------------------------------------------------
def step(plan: NotifyPlan, now: float, **facts) -> list[str]:
    """A tick whose lines reached systemd."""
    out = plan.tick(now, **facts)
    plan.sent(out)
    return out


def test_ready_once_when_up_with_status_and_pets():
    plan = NotifyPlan(watchdog_s=2.0)
    assert step(plan, 0.0, up=False, status="starting") == ["STATUS=starting", "WATCHDOG=1"]
    assert step(plan, 0.5, up=False, status="starting") == []
    assert step(plan, 0.6, up=True, status="n: web PRIM") == ["READY=1", "STATUS=n: web PRIM"]
    assert step(plan, 1.0, up=True, status="n: web PRIM") == ["WATCHDOG=1"]
    assert step(plan, 1.5, up=True, status="n: web PRIM") == []
    assert step(plan, 2.0, up=True, status="n: web PRIM") == ["WATCHDOG=1"]


def test_status_changes_are_sent_at_most_once_a_second_and_never_lost():
    plan = NotifyPlan(watchdog_s=None)
    assert step(plan, 0.0, up=True, status="a") == ["READY=1", "STATUS=a"]
    assert step(plan, 0.3, up=True, status="b") == []  # held back...
    assert step(plan, 0.9, up=True, status="c") == []
    assert step(plan, 1.0, up=True, status="c") == ["STATUS=c"]  # ...the latest one goes
    assert step(plan, 5.0, up=True, status="c") == []


def test_stopping_once_and_no_ready_after_it():
    plan = NotifyPlan(watchdog_s=None)
    assert step(plan, 0.0, up=False, status="s", stopping=True) == ["STOPPING=1", "STATUS=s"]
    assert step(plan, 1.0, up=True, status="s", stopping=True) == []


def test_a_dropped_ready_is_sent_again_on_the_next_tick():
    plan = NotifyPlan(watchdog_s=2.0)
    out = plan.tick(0.0, up=True, status="n: web PRIM")
    assert out == ["READY=1", "STATUS=n: web PRIM", "WATCHDOG=1"]  # dropped: sent() not called
    assert plan.tick(0.5, up=True, status="n: web PRIM") == ["READY=1", "STATUS=n: web PRIM"]
    plan.sent(["READY=1", "STATUS=n: web PRIM"])
    assert plan.tick(1.0, up=True, status="n: web PRIM") == ["WATCHDOG=1"]
    assert plan.tick(1.5, up=True, status="n: web PRIM") == []


def test_a_dropped_stopping_is_sent_again_and_never_followed_by_ready():
    plan = NotifyPlan(watchdog_s=None)
    assert plan.tick(0.0, up=True, status="s", stopping=True) == ["STOPPING=1", "STATUS=s"]
    assert step(plan, 0.5, up=True, status="s", stopping=True) == ["STOPPING=1", "STATUS=s"]
    assert step(plan, 1.0, up=True, status="s", stopping=True) == []


@settings(max_examples=300, deadline=None)
@given(
    st.floats(0.02, 60.0),
    st.lists(st.tuples(st.floats(0.001, 3.0), st.booleans(), st.sampled_from("abc"),
                       st.booleans(), st.booleans()), max_size=60),
)  # fmt: skip
def test_plan_invariants(watchdog_s, steps):
    """Whatever systemd drops (``drop``), what reaches it is right, and READY/STOPPING
    are offered on every tick until one gets through."""
    plan = NotifyPlan(watchdog_s)
    now, pets, ready, stopping, last_status = 0.0, [], 0, 0, None
    period = plan.tick_every_s()
    assert period <= watchdog_s / 2
    stop_asked = False
    for dt, up, status, stop, drop in steps:
        now += min(dt, period)  # the driver ticks at least every period
        stop_asked = stop_asked or stop
        out = plan.tick(now, up=up, status=status, stopping=stop_asked)
        assert len(out) == len(set(out))
        assert ("STOPPING=1" in out) == (stop_asked and stopping == 0)
        assert ("READY=1" in out) == (up and not stop_asked and ready == 0)
        if "WATCHDOG=1" in out:
            pets.append(now)
        if drop:
            continue
        plan.sent(out)
        ready += out.count("READY=1")
        stopping += out.count("STOPPING=1")
        for line in out:
            if line.startswith("STATUS="):
                assert line[7:] != last_status
                last_status = line[7:]
    assert ready <= 1 and stopping <= 1
    # pets: never closer than half the watchdog, never further than half + one period
    for a, b in zip(pets, pets[1:], strict=False):
        assert watchdog_s / 2 - 1e-9 <= b - a <= watchdog_s / 2 + period + 1e-9
