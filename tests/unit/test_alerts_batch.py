"""Alerts gathered into one e-mail (node_agent/alerts/batch.py, mail.py): what comes within
the window after the first goes with it, in order; the message says how many, of which
kinds, and lists every module."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from node_agent.alerts.batch import Batch, MailBatcher
from node_agent.alerts.mail import build_message, subject
from node_agent.alerts.policy import Alert, AlertKind
from node_agent.config.model import EmailConfig

T0 = 1_800_000_000.0


def alert(module: str, t: float, kind: AlertKind = AlertKind.FAILOVER) -> Alert:
    return Alert(kind, module, "node2", "node1", "ALONE/READY", "peer-lost",
                 f"module {module}: node2 took over", t)  # fmt: skip


def test_alerts_within_the_window_after_the_first_go_together() -> None:
    b = MailBatcher(5.0)
    assert b.add(alert("m1", T0), T0) == []
    assert b.add(alert("m2", T0 + 1), T0 + 1) == []
    assert b.due(T0 + 4.9) == []
    (batch,) = b.due(T0 + 5)
    assert [a.module for a in batch.alerts] == ["m1", "m2"]
    assert b.due(T0 + 100) == []  # handed out once
    assert b.add(alert("m3", T0 + 6), T0 + 6) == []  # a new window from this one
    assert b.due(T0 + 10.9) == [] and len(b.due(T0 + 11)[0].alerts) == 1


def test_a_window_of_zero_sends_each_alert_alone_and_flush_hands_out_the_rest() -> None:
    b = MailBatcher(0.0)
    (batch,) = b.add(alert("m1", T0), T0)
    assert batch.alerts == (alert("m1", T0),)
    b.window_s = 30.0
    b.add(alert("m2", T0), T0)
    assert [a.module for a in b.flush()[0].alerts] == ["m2"] and b.flush() == []


@given(st.lists(st.tuples(st.floats(0, 20), st.booleans()), max_size=40), st.floats(0, 10))
def test_every_alert_is_handed_out_once_in_order_and_never_later_than_the_window(
    steps: list[tuple[float, bool]], window: float
) -> None:
    b, now, sent, held_since = MailBatcher(window), T0, [], None
    for i, (gap, is_alert) in enumerate(steps):
        now += gap
        out = b.add(alert(f"m{i}", now), now) if is_alert else b.due(now)
        if is_alert and held_since is None:
            held_since = now
        for batch in out:
            assert now - batch.first.time >= window and len(batch.alerts) >= 1
            sent += [a.module for a in batch.alerts]
            held_since = None
        if held_since is not None:
            assert now - held_since < window  # otherwise it would have been handed out
    sent += [a.module for batch in b.flush() for a in batch.alerts]
    assert sent == [f"m{i}" for i, (_, is_alert) in enumerate(steps) if is_alert]


def test_the_message_of_a_batch_names_the_count_the_kinds_and_every_module() -> None:
    cfg = EmailConfig(host="localhost", sender="mp@example.com", to=("ops@example.com",))
    one = alert("web", T0)
    assert subject(one, "prod") == "[MirrorPair prod] FAILOVER: module web on node2"
    same = Batch(tuple(alert(f"m{i}", T0 + i) for i in range(3)))
    assert subject(same, "prod") == "[MirrorPair prod] FAILOVER: 3 modules on node2"
    mixed = Batch((*same.alerts, alert("db", T0 + 4, AlertKind.SPLIT_BRAIN)))
    assert subject(mixed, "prod") == (
        "[MirrorPair prod] 4 alerts on node2: FAILOVER (3), SPLIT-BRAIN (1)"
    )
    body = build_message(cfg, mixed, "prod").get_content()
    assert body.startswith("node2 reports 4 alerts between ")
    for module in ("m0", "m1", "m2", "db"):
        assert f"module {module}: node2 took over" in body
    assert "SPLIT-BRAIN" in body and "peer     node1" in body
