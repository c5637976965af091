"""Splitting a pulse into datagrams of bounded size, and joining it again
(node_agent/heartbeat/split.py, peer_modules.py). Pure; sizes are measured on the real
encoded datagrams (MAGIC + HMAC + payload)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node_agent.core import generations as gens
from node_agent.core.env import PeerView
from node_agent.core.states import Readiness, State
from node_agent.engine.convert import view_to_pb
from node_agent.heartbeat import history_sync as hs
from node_agent.heartbeat.codec import MAX_DATAGRAM, decode, encode
from node_agent.heartbeat.peer_modules import ABSENT, PeerModules
from node_agent.heartbeat.split import BUDGET, FEATURE_PARTS, MAX_PARTS, split
from protos.heartbeat_pb2 import Heartbeat, PeerModuleView

SECRET = b"split-secret"
LONG = 64  # the longest name the configuration allows (module, cluster, link)


def history(n: int, node: str = "node1", start: int = 0) -> tuple[str, ...]:
    ids = (gens.new_generation_id(1_700_000_000 + i, node, 0xFFFFFFFF - i) for i in range(n))
    return tuple(ids)[start:]


def whole_view(name: str, hist: tuple[str, ...], busy: bool = True) -> PeerModuleView:
    """A module's view with every field as long as it gets (``busy``), history in full."""
    view = PeerView(
        State.PRIM, Readiness.TRANSIENT, True, hist, primary_since=1_700_000_000.123,
        handover=busy, swap_request=busy, split_brain=busy, candidate=busy,
        resource_up=busy, fullsync=busy, outdate="f" * 32 if busy else "",
        outdated="e" * 32 if busy else "", kept_over=hist[-1] if busy and hist else "",
    )  # fmt: skip
    msg = view_to_pb(name, view, config_version=4_000_000_000)
    summary = hs.Summary.of(hist)
    msg.history_length, msg.history_latest = summary.length, summary.latest
    msg.history_digest = summary.digest
    return msg


def tail(msg: PeerModuleView) -> PeerModuleView:
    out = PeerModuleView()
    out.CopyFrom(msg)
    del out.generations[:]
    return out


def pulse(views: list[PeerModuleView], cluster: str = "c" * LONG) -> Heartbeat:
    return Heartbeat(
        cluster=cluster, node_id="node2", boot_id=2**63 + 12345, seq=2**40, link="",
        sent_time=1_700_000_000.5, modules=views, witness_reachable=True,
        echo_boot_id=2**63 + 999, config_version=2**32 - 1, features=FEATURE_PARTS,
    )  # fmt: skip


def datagrams(hb: Heartbeat, links: list[str], budget: int = BUDGET) -> dict[str, list[bytes]]:
    parts = split(hb, budget, links)
    out: dict[str, list[bytes]] = {}
    for link in links:
        for part in parts:
            part.link = link
            out.setdefault(link, []).append(encode(part, SECRET))
    return out


def rejoin(data: list[bytes], names: list[str]) -> dict[str, object]:
    peers = PeerModules(3.0)
    for d in data:
        peers.receive(decode(d, SECRET), 1.0, lambda _name: None)
    return {name: peers.view(name, 1.0) for name in names}


LINKS = ["l" * LONG, "direct"]


def test_64_modules_of_32_generations_fit_the_budget(capsys: pytest.CaptureFixture) -> None:
    """The case of issue 13: 64 modules, 32 generations each, names as long as allowed.
    One datagram would be ~70 KB (above MAX_DATAGRAM: the node fell silent). Whole
    histories (first contact) and summaries (every pulse after) both fit in datagrams of
    at most BUDGET bytes, and join back to exactly the views sent. ``busy``: every
    optional field set as long as it gets (tokens, kept_over, all flags): the worst case;
    else a plain PRIM view."""
    names = [f"{i:02d}" + "m" * (LONG - 2) for i in range(64)]
    report = []
    for busy in (False, True):
        views = [whole_view(n, history(gens.MAX_HISTORY), busy) for n in names]
        one = len(pulse(views).SerializeToString()) + 36
        assert one > MAX_DATAGRAM
        sizes = {}
        for kind, sent in (("whole", views), ("summary", [tail(v) for v in views])):
            per_link = datagrams(pulse(sent), LINKS)
            for data in per_link.values():
                assert max(len(d) for d in data) <= BUDGET
            sizes[kind] = [len(d) for d in per_link["direct"]]
            # Parts of one pulse from either link complete each other.
            mixed = [per_link[LINKS[i % 2]][i] for i in range(len(per_link["direct"]))]
            if kind == "whole":
                assert rejoin(mixed, names) == dict(zip(names, views, strict=True))
        assert len(sizes["summary"]) <= (24 if busy else 12)
        report.append(
            f"{'worst case' if busy else 'plain PRIM'}: one datagram would be {one} B; "
            f"whole histories {len(sizes['whole'])} datagrams (max {max(sizes['whole'])} B); "
            f"summaries {len(sizes['summary'])} datagrams (max {max(sizes['summary'])} B, "
            f"{sum(sizes['summary'])} B per pulse and link)"
        )
    with capsys.disabled():
        print("\n64 modules x 32 generations, 64-byte names, budget", BUDGET, "B:")
        print("\n".join(report))


def test_a_small_pulse_is_one_datagram() -> None:
    hb = pulse([tail(whole_view("web", history(3)))], cluster="demo")
    parts = split(hb, BUDGET, ["lan"])
    assert len(parts) == 1 and (parts[0].part, parts[0].parts) == (0, 1)
    assert list(parts[0].modules) == list(hb.modules)
    assert len(split(Heartbeat(seq=1), BUDGET)) == 1  # no modules: one header-only part


def test_every_part_is_a_whole_header() -> None:
    views = [whole_view(f"m{i}", history(20)) for i in range(10)]
    hb = pulse(views)
    parts = split(hb, BUDGET, LINKS)
    assert len(parts) > 1
    for i, part in enumerate(parts):
        bare = Heartbeat()
        bare.CopyFrom(part)
        del bare.modules[:]
        bare.part = bare.parts = 0
        expected = Heartbeat()
        expected.CopyFrom(hb)
        del expected.modules[:]
        assert bare == expected and (part.part, part.parts) == (i, len(parts))


def test_a_history_too_long_for_one_datagram_is_cut_in_chunks() -> None:
    view = whole_view("m" * LONG, history(gens.MAX_HISTORY))
    parts = split(pulse([view]), 700, LINKS)
    chunks = [m for p in parts for m in p.modules]
    assert len(chunks) >= 2
    assert [c.history_offset for c in chunks][0] == 0
    joined = [g for c in chunks for g in c.generations]
    assert tuple(joined) == tuple(view.generations)
    for c in chunks:  # each chunk has every other field
        assert tail(c) == tail(view) or c.history_offset
        assert (c.state, c.history_digest, c.outdate) == (view.state, view.history_digest,
                                                          view.outdate)  # fmt: skip
    # A lost chunk: the module is as if unheard (no view), never a cut history.
    data = datagrams(pulse([view]), ["direct"], 700)["direct"]
    assert rejoin(data, [view.name])[view.name] == view
    assert rejoin(data[1:], [view.name])[view.name] is None
    assert rejoin(data[:-1], [view.name])[view.name] is None


def test_budget_too_small_or_too_many_parts_refused() -> None:
    hb = pulse([whole_view("m", history(3))])
    with pytest.raises(ValueError, match="does not fit"):
        split(hb, 300, LINKS)
    with pytest.raises(ValueError, match="does not fit"):
        split(pulse([tail(whole_view("m" * LONG, history(3)))]), 300, LINKS)
    many = pulse([tail(whole_view(f"m{i:05d}", history(1), busy=False)) for i in range(15000)])
    with pytest.raises(ValueError, match="exceeds"):
        split(many, 400, ["lan"])
    assert MAX_PARTS == 4096


names = st.text("abcdefghijklmnopqrstuvwxyz0123456789_.-", min_size=1, max_size=LONG)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(names, st.integers(0, gens.MAX_HISTORY), st.booleans(), st.booleans()),
        max_size=40,
        unique_by=lambda t: t[0],
    ),
    st.integers(600, 1500),
    st.lists(st.text("abcxyz", min_size=1, max_size=LONG), min_size=1, max_size=3, unique=True),
    st.randoms(use_true_random=False),
)
def test_any_pulse_fits_and_joins_back(modules, budget, links, rnd: random.Random) -> None:
    """Any set of modules, any budget, any links: every datagram is within the budget,
    and all of a pulse's parts, in any order and from any mix of links, give back
    exactly the views sent (whole ones as sent; summaries completed from what the
    receiver holds)."""
    whole = {n: whole_view(n, history(k), busy) for n, k, busy, _ in modules}
    sent = [whole[n] if full else tail(whole[n]) for n, _, _, full in modules]
    per_link = datagrams(pulse(sent), links, budget)
    count = len(per_link[links[0]])
    for data in per_link.values():
        assert len(data) == count and all(len(d) <= budget for d in data)
    mixed = [rnd.choice(links) for _ in range(count)]
    order = [per_link[link][i] for i, link in enumerate(mixed)]
    rnd.shuffle(order)
    # The receiver already holds every summary's history (it completed it before).
    peers = PeerModules(3.0)
    warm = datagrams(pulse(list(whole.values())), ["x"], budget)["x"]
    for d in warm:
        peers.receive(decode(d, SECRET), 0.5, lambda _name: None)
    for d in order:
        peers.receive(decode(d, SECRET), 1.0, lambda _name: None)
    for n in whole:
        assert peers.view(n, 1.0) == whole[n]
    assert peers.view("not-a-module-name!", 1.0) is ABSENT
