"""AlertPolicy (node_agent/alerts/policy.py): which transitions reach the operator, when,
and that what the operator was told last is true -- for hand-written stories and for
any sequence of transitions hypothesis can make up."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from node_agent.alerts.policy import (
    FLAP_WINDOW_S,
    MAX_BACKOFF_DOUBLINGS,
    Alert,
    AlertKind,
    AlertPolicy,
    Transition,
    redundant,
    unprotected,
)
from node_agent.core.states import Readiness, State

S, W, A, P, X = State.STOP, State.WAIT, State.ALONE, State.PRIM, State.SECOND
R, T, N = Readiness.READY, Readiness.TRANSIENT, Readiness.NOT_READY
SETTLE = 10.0


class Story:
    """One module on node2: transitions at given times, the policy polled in between."""

    def __init__(self, settle: float = SETTLE, events: frozenset[str] | None = None) -> None:
        self.policy = AlertPolicy("node2", "node1", settle, events)
        self.state = S
        self.now = 0.0
        self.alerts: list[Alert] = []
        self.marks: list[int] = []  # len(alerts) as each transition was observed

    def go(self, at: float, state: State, ready: Readiness, cause: str = "rule") -> None:
        self.poll(at)
        t = Transition(at, "web", self.state, state, ready, cause, f"reason {cause}")
        self.state = state
        self.marks.append(len(self.alerts))
        self.alerts += self.policy.observe(t)

    def poll(self, until: float, step: float = 0.5) -> None:
        while self.now + step <= until:
            self.now += step
            self.alerts += self.policy.due(self.now)
        self.now = max(self.now, until)

    def kinds(self) -> list[str]:
        return [a.kind.value for a in self.alerts]


def test_failover_is_sent_at_once_and_restored_once_the_pair_stays_in_sync() -> None:
    s = Story()
    s.go(0, W, T, "start")
    s.go(1, X, R, "peer-primary")
    s.go(100, A, T, "peer-lost")  # node1 died: node2 takes over
    assert s.kinds() == ["failover"]
    a = s.alerts[0]
    assert (a.module, a.node, a.peer, a.state, a.cause, a.time) == (
        "web", "node2", "node1", "ALONE/TRANSIENT", "peer-lost", 100
    )  # fmt: skip
    assert "node2 took over" in a.message and "reason peer-lost" in a.message
    s.go(101, A, R, "resource")
    s.poll(200)  # alone a long time: the failover said so already, no "degraded" too
    assert s.kinds() == ["failover"]
    s.go(200, P, T, "peer-second")  # node1 back, resynchronizing
    s.go(230, P, R, "resource")
    s.poll(230 + SETTLE - 1)
    assert s.kinds() == ["failover"]
    s.poll(230 + SETTLE + 1)
    assert s.kinds() == ["failover", "restored"]
    assert "node2 PRIM with node1 SECOND in sync" in s.alerts[-1].message
    s.poll(10_000)
    assert s.kinds() == ["failover", "restored"]


def test_a_secondary_back_within_settle_sends_nothing() -> None:
    s = Story()
    s.go(0, A, R, "elected")
    s.go(2, P, T, "peer-second")
    s.go(5, P, R, "resource")  # a normal start: alone 5 s < settle
    s.go(50, A, R, "peer-lost")
    s.go(55, P, T, "peer-second")
    s.go(58, P, R, "resource")
    s.poll(1000)
    assert s.kinds() == []


def test_degraded_after_settle_then_restored() -> None:
    s = Story()
    s.go(0, A, R, "elected")
    s.go(1, P, R, "peer-second")
    s.go(50, A, R, "replication-failed")
    s.poll(50 + SETTLE - 0.5)
    assert s.kinds() == []
    s.poll(50 + SETTLE + 0.5)
    assert s.kinds() == ["degraded"]
    assert "without redundancy (no secondary)" in s.alerts[0].message
    s.go(70, P, T, "peer-second")  # resync: still degraded, not again
    s.poll(200)
    assert s.kinds() == ["degraded"]
    s.go(200, P, R, "resource")
    s.poll(200 + SETTLE + 1)
    assert s.kinds() == ["degraded", "restored"]


def test_split_brain_is_sent_by_the_node_that_steps_down_and_restored_when_it_resyncs() -> None:
    s = Story()
    s.go(0, W, T, "start")
    s.go(3, W, N, "split-brain")
    assert s.kinds() == ["split-brain"]
    assert "split brain" in s.alerts[0].message
    s.go(100, X, T, "second")
    s.go(120, X, R, "resync-done")
    s.poll(200)
    assert s.kinds() == ["split-brain", "restored"]
    assert "node1 PRIM with node2 SECOND in sync" in s.alerts[-1].message


def test_a_stop_ends_the_episode_silently() -> None:
    s = Story()
    s.go(0, X, R, "peer-primary")
    s.go(10, A, R, "peer-lost")
    s.go(20, S, N, "stop")
    s.go(30, W, T, "start")
    s.go(31, X, T, "peer-primary")
    s.go(40, X, R, "resync-done")
    s.poll(500)
    assert s.kinds() == ["failover"]


def test_events_filter_what_is_sent_not_what_is_tracked() -> None:
    s = Story(events=frozenset({"restored"}))
    s.go(0, X, R, "peer-primary")
    s.go(10, A, R, "peer-lost")
    s.go(20, P, R, "peer-second")
    s.poll(100)
    assert s.kinds() == ["restored"]


def test_flapping_doubles_the_wait_for_restored() -> None:
    s = Story()
    s.go(0, A, R, "elected")
    t = 0.0
    restored_times = []
    for _ in range(4):
        s.go(t + 1, A, R, "peer-lost")  # not yet primary-with-secondary: loss
        s.go(t + 1 + SETTLE + 1, P, R, "peer-second")
        start = t + 1 + SETTLE + 1
        s.poll(start + 20 * SETTLE)
        restored_times.append(s.alerts[-1].time - start)
        t = s.now
    assert s.kinds() == ["degraded", "restored"] * 4
    assert restored_times == [SETTLE, 2 * SETTLE, 4 * SETTLE, 8 * SETTLE]


# ---- properties over arbitrary sequences -----------------------------------------------
PAIRS = [(S, N), (W, N), (W, T), (A, R), (A, T), (P, R), (P, T), (X, R), (X, T)]
CAUSES = ["peer-lost", "split-brain", "resource", "peer-second", "start", "stop"]


step = st.tuples(
    st.floats(0.0, 60.0, allow_nan=False), st.sampled_from(PAIRS), st.sampled_from(CAUSES)
)


def _run(seq: list[tuple[float, tuple[State, Readiness], str]]) -> tuple[Story, list]:
    s = Story()
    timeline = [(0.0, S, N, "")]  # (time, state, readiness, cause) as observed
    at = 0.0
    for dt, (state, ready), cause in seq:
        at += dt
        s.go(at, state, ready, cause)
        timeline.append((at, state, ready, cause))
    s.poll(at + 40 * SETTLE)
    return s, timeline


def _held_since(s: Story, timeline: list, j: int, pred) -> float | None:  # type: ignore[no-untyped-def]
    """When the run of observations satisfying ``pred`` in force as alert ``j`` was made
    began (None: not in force). Transition i came before alert j iff marks[i] <= j."""
    since = None
    for i, (t, state, ready, _cause) in enumerate(timeline):
        if i > 0 and s.marks[i - 1] > j:
            break
        since = (since if since is not None else t) if pred(state, ready) else None
    return since


@settings(max_examples=400, deadline=None)
@given(st.lists(step, max_size=40))
def test_alerts_alternate_and_are_never_repeated_within_an_episode(seq) -> None:  # type: ignore[no-untyped-def]
    s, timeline = _run(seq)
    episode: set[str] = set()
    # A STOP sends nothing: the alerts from index stops[k] on come after it.
    stops = [s.marks[i] for i, (_t, st_, _r, _c) in enumerate(timeline[1:]) if st_ is S]
    for j, a in enumerate(s.alerts):
        while stops and stops[0] <= j:
            stops.pop(0)
            episode = set()  # a stop ended the episode
        assert a.kind.value not in episode, f"{a.kind} twice in one episode: {s.kinds()}"
        if a.kind is AlertKind.DEGRADED:
            assert "failover" not in episode, "degraded after a failover that said so"
        if a.kind is AlertKind.RESTORED:
            assert episode, "restored without a loss reported before it"
            episode = set()
        else:
            episode.add(a.kind.value)


@settings(max_examples=400, deadline=None)
@given(st.lists(step, max_size=40))
def test_alerts_are_true_when_sent(seq) -> None:  # type: ignore[no-untyped-def]
    s, timeline = _run(seq)
    restored: list[float] = []
    for j, a in enumerate(s.alerts):
        if a.kind is AlertKind.FAILOVER:
            assert any(t == a.time and st_ is A for t, st_, _r, _c in timeline)
        if a.kind is AlertKind.SPLIT_BRAIN:
            assert any(t == a.time and c == "split-brain" for t, _s, _r, c in timeline)
        if a.kind is AlertKind.DEGRADED:
            since = _held_since(s, timeline, j, unprotected)
            assert since is not None and a.time - since >= SETTLE
        if a.kind is AlertKind.RESTORED:
            since = _held_since(s, timeline, j, redundant)
            recent = len([t for t in restored if a.time - t < FLAP_WINDOW_S])
            wait = SETTLE * 2 ** min(recent, MAX_BACKOFF_DOUBLINGS)
            assert since is not None and a.time - since >= wait, "restored before it settled"
            restored.append(a.time)


@settings(max_examples=400, deadline=None)
@given(st.lists(step, max_size=40))
def test_every_takeover_is_reported_and_the_last_word_is_true(seq) -> None:  # type: ignore[no-untyped-def]
    s, timeline = _run(seq)
    episode_start = 0  # index in s.alerts where the current episode's alerts begin
    for i, ((_t0, old, _r0, _c0), (_t, new, _r, _c)) in enumerate(
        zip(timeline, timeline[1:], strict=False)
    ):
        mark = s.marks[i]
        for j in range(episode_start, mark):
            if s.alerts[j].kind is AlertKind.RESTORED:
                episode_start = j + 1
        if new is S:
            episode_start = mark  # a STOP sends nothing; the next alert opens an episode
        if old is X and new is A:
            now = s.alerts[mark : mark + 1]
            before = s.alerts[episode_start:mark]
            assert (now and now[0].kind is AlertKind.FAILOVER) or any(
                a.kind is AlertKind.FAILOVER for a in before
            ), f"takeover at step {i} not reported: {s.kinds()}"
    _t, state, ready, _c = timeline[-1]
    stops = [i for i, (_t, st_, _r, _c) in enumerate(timeline[1:]) if st_ is S]
    after = s.alerts[s.marks[stops[-1]] :] if stops else s.alerts
    if after:
        if redundant(state, ready):
            assert after[-1].kind is AlertKind.RESTORED, s.kinds()  # it settled at the end
        elif unprotected(state, ready):
            assert after[-1].kind is not AlertKind.RESTORED, s.kinds()


def test_the_config_knows_every_kind_of_alert() -> None:
    from node_agent.config.model import ALERT_EVENTS

    assert tuple(k.value for k in AlertKind) == ALERT_EVENTS


def test_an_episode_taken_up_after_a_restart_sends_no_second_degraded_but_restored() -> None:
    before = Story()
    before.go(0, W, T, "start")
    before.go(1, X, R, "peer-primary")
    before.go(100, A, R, "peer-lost")
    assert before.kinds() == ["failover"]
    kept = before.policy.memory()
    assert kept == {"web": (["failover"], [])}
    after = Story()  # the agent restarted: a new policy, the module adopted ALONE
    for module, (kinds, restored_at) in kept.items():
        after.policy.remember(module, kinds, restored_at)
    after.go(200, A, R, "adopted")
    after.poll(200 + 5 * SETTLE)  # still alone: the failover said so before the restart
    assert after.kinds() == []
    after.go(300, P, T, "peer-second")
    after.go(330, P, R, "resource")
    after.poll(330 + SETTLE + 1)
    assert after.kinds() == ["restored"]
    assert after.policy.memory() == {"web": ([], [330 + SETTLE])}  # its restored, timed
    forgot = Story()  # what happened before this change: "degraded" again, after settle_s
    forgot.go(200, A, R, "adopted")
    forgot.poll(200 + SETTLE + 1)
    assert forgot.kinds() == ["degraded"]
