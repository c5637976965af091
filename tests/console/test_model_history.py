"""Log store, state timeline and resync series (pure model)."""

from __future__ import annotations

from console.model.cluster import ClusterModel
from console.model.history import LogStore, ResyncHistory, record_from_pb
from protos import mirrorpair_pb2 as pb
from tests.console.builders import module, node

ADDR = {"node1": "127.0.0.1:1", "node2": "127.0.0.2:2"}


def entry(seq: int, t: float, message: str, node_id: str = "node1", **kw: object) -> pb.LogEntry:
    return pb.LogEntry(
        seq=seq, time=t, node_id=node_id, module="web", level="INFO", message=message, **kw
    )  # type: ignore[arg-type]


def test_transition_readiness_from_fields_or_message() -> None:
    old = record_from_pb(
        entry(
            1,
            1.0,
            "WAIT/TRANSIENT -> SECOND/READY: identical",
            old_state=pb.STATE_WAIT,
            new_state=pb.STATE_SECOND,
        )
    )
    assert old.is_transition and old.transition_text() == "WAIT Transient → SECOND Ready"
    assert old.colour == "green"
    new = record_from_pb(
        entry(
            2,
            2.0,
            "x",
            old_state=pb.STATE_PRIM,
            new_state=pb.STATE_ALONE,
            old_readiness=pb.READINESS_READY,
            new_readiness=pb.READINESS_TRANSIENT,
        )
    )
    assert new.transition_text() == "PRIM Ready → ALONE Transient" and new.colour == "orange"
    assert not record_from_pb(entry(3, 3.0, "hello")).is_transition


def test_log_store_dedups_orders_and_bounds() -> None:
    store = LogStore(capacity=4)
    recs = [record_from_pb(entry(i, float(i), f"m{i}")) for i in (1, 2, 3)]
    new, appended = store.add(recs)
    assert len(new) == 3 and appended
    new, appended = store.add(recs[1:])  # a reconnect re-reads history
    assert new == [] and appended
    restarted = record_from_pb(entry(1, 10.0, "after restart"))  # seq starts again
    new, appended = store.add([restarted])
    assert new == [restarted] and appended
    older = record_from_pb(entry(7, 0.5, "late", node_id="node2"))
    new, appended = store.add([older])
    assert not appended and store.records()[0].message == "m1"  # bounded: oldest dropped
    assert [r.message for r in store.records()] == ["m1", "m2", "m3", "after restart"]


def test_resync_series_follow_progress_and_restart() -> None:
    m, h = ClusterModel("c", ADDR), ResyncHistory(min_interval_s=0.0)
    m.apply_snapshot("node1", node("node1", module()), 0.0)
    for i, t in enumerate((1.0, 2.0, 3.0)):
        m.apply_snapshot(
            "node2",
            node(
                "node2",
                module(
                    state="SECOND",
                    readiness="Transient",
                    resync=((i + 1) * 100, 400, 100.0, 3.0 - i),
                ),
            ),
            t,
        )
        assert h.observe(m, t) == {"web"}
    series = h.series("web", "node2")
    assert [p.percent for p in series] == [25.0, 50.0, 75.0] and h.active("web", "node2")
    m.apply_snapshot("node2", node("node2", module(state="SECOND")), 4.0)
    assert h.observe(m, 4.0) == {"web"} and not h.active("web", "node2")  # it ended
    assert h.observe(m, 4.5) == set()
    assert len(h.series("web", "node2")) == 3  # the last run stays visible
    m.apply_snapshot(
        "node2",
        node("node2", module(state="SECOND", readiness="Transient", resync=(10, 1000, 5.0, 200.0))),
        5.0,
    )
    h.observe(m, 5.0)
    assert [p.bytes_done for p in h.series("web", "node2")] == [10]  # a new run, a new graph


def test_the_primary_s_resync_progress_belongs_to_the_node_it_resynchronizes() -> None:
    # What agents do: the primary (node1) publishes the progress of the resync it sends.
    m, h = ClusterModel("c", ADDR), ResyncHistory(min_interval_s=0.0)
    m.apply_snapshot("node2", node("node2", module(state="SECOND", readiness="Transient")), 0.0)
    for i, t in enumerate((1.0, 2.0)):
        sending = module(state="PRIM", readiness="Transient", resync=((i + 1) * 100, 400, 50, 4))
        m.apply_snapshot("node1", node("node1", sending), t)
        assert h.observe(m, t) == {"web"}
    assert h.active("web", "node2") and not h.active("web", "node1")
    assert [p.percent for p in h.series("web", "node2")] == [25.0, 50.0]
    assert h.source("web", "node2") == "node1" and not h.series("web", "node1")
    web = m.module("web")
    assert web is not None
    target, source = web.nodes["node2"], web.nodes["node1"]
    assert target.resync is not None and target.resync.source == "node1"
    assert target.badges[0].text.startswith("resync 50%")
    assert target.badges[0].tooltip == "resynchronizing from node1"
    # The primary's own copy is not resynchronized; its card row says whom it resyncs.
    assert source.resync is None
    assert [b.text for b in source.badges if "resync" in b.text] == ["resyncing node2 50%"]


def test_start_up_is_not_an_alarm_a_lost_peer_is() -> None:
    # The agent logs every entry into WAIT or ALONE at WARNING, a start-up's too.
    def wait(cause: str, who: str = "") -> object:
        return record_from_pb(
            pb.LogEntry(seq=1, time=1.0, node_id="node2", module="web", level="WARNING",
                        message="WAIT/TRANSIENT -> WAIT/NOT_READY: x", old_state=pb.STATE_WAIT,
                        new_state=pb.STATE_WAIT, cause=cause, who=who)
        )  # fmt: skip

    elected = wait("elected")  # waiting for the peer to become primary: start-up
    assert elected.colour == "grey" and elected.shown_level == "INFO"  # type: ignore[attr-defined]
    stopped = record_from_pb(
        entry(2, 2.0, "x", old_state=pb.STATE_PRIM, new_state=pb.STATE_STOP, cause="stop",
              who="root@desk")
    )  # fmt: skip
    assert stopped.colour == "grey"  # an operator's stop is not an alarm either
    lost = wait("peer-lost")  # peer lost during resync: this copy is not usable
    assert lost.colour == "red" and lost.shown_level == "WARNING"  # type: ignore[attr-defined]
    unknown = wait("some-new-rule")  # a rule this console does not know: not guessed fine
    assert unknown.colour == "red" and unknown.shown_level == "WARNING"  # type: ignore[attr-defined]
    alone = record_from_pb(
        entry(3, 3.0, "x", old_state=pb.STATE_WAIT, new_state=pb.STATE_ALONE,
              new_readiness=pb.READINESS_READY, old_readiness=pb.READINESS_TRANSIENT,
              cause="elected")
    )  # fmt: skip
    assert alone.colour == "orange"  # serving alone is never green, even at start-up
