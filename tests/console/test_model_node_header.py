"""The server column header's words for the server and its peer (console/model/node_header.py)."""

from __future__ import annotations

from dataclasses import replace

from console.model.node_header import reach_text
from console.model.views import NodeView

ONLINE = NodeView(node_id="node1", address="10.0.0.1:7700", reachable=True, connecting=False,
                  error="", peer_alive=True, links=(), version="0.1.0", witness="",
                  last_update=1.0)  # fmt: skip


def test_a_peer_heard_answers_and_a_silent_one_is_silent() -> None:
    assert reach_text(ONLINE) == "online · peer answering"
    assert reach_text(replace(ONLINE, peer_alive=False)) == "online · peer silent"
    assert reach_text(replace(ONLINE, peer_alive=None)) == "online"


def test_a_peer_alive_only_on_its_word_is_not_said_to_answer() -> None:
    restarting = replace(ONLINE, peer_leaving_s=14.2)
    assert reach_text(restarting) == "online · peer's agent restarting (14 s left)"
    # Once the grace is over the peer is judged by its heartbeats again.
    assert reach_text(replace(restarting, peer_alive=False)) == "online · peer silent"


def test_the_server_itself_first() -> None:
    assert reach_text(replace(ONLINE, connecting=True)) == "connecting…"
    assert reach_text(replace(ONLINE, reachable=False, peer_leaving_s=5)) == "NOT ANSWERING"
