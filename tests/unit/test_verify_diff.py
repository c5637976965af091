"""`mirrorpair verify`: the pure comparison (diff_trees, compress), the stream assembly
(collect), the algorithm negotiation (fetch, with fake agents) and the engine-side
Digester's splitting of big files into continuations."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from node_agent.api.engine_api import BadDigestRequest
from node_agent.cli import verify_cmd as v
from node_agent.cli.client import AgentCallError, AgentUnavailable
from node_agent.core.states import State
from node_agent.engine import digest as dg
from node_agent.replication.local.scan import zone_hashes
from protos import mirrorpair_pb2 as pb

ZS = 1024
H0, H1 = b"\0" * 16, b"\1" * 16


def f(size: int = 0, hashes: list[bytes] | None = None, mode: int = 0o100644, **kw) -> v.Entry:
    return v.Entry("file", size, mode, hashes=list(hashes or []), **kw)


def d(mode: int = 0o40755, size: int = 4096) -> v.Entry:
    return v.Entry("dir", size, mode)


def whats(diffs: list[v.Difference]) -> list[tuple[str, str]]:
    return [(x.path, x.what) for x in diffs]


# ----- compress ------------------------------------------------------------------------
@given(st.sets(st.integers(0, 300)))
def test_compress_covers_exactly_with_maximal_ranges(indexes: set[int]) -> None:
    ranges = v.compress(indexes)
    covered = [i for lo, hi in ranges for i in range(lo, hi + 1)]
    assert covered == sorted(indexes)
    # Maximal: consecutive ranges are separated by at least one missing index.
    assert all(b[0] > a[1] + 1 for a, b in zip(ranges, ranges[1:], strict=False))


def test_compress_example() -> None:
    assert v.compress([7, 1, 3, 2, 2]) == [(1, 3), (7, 7)]
    assert v.compress([]) == []


# ----- diff_trees ----------------------------------------------------------------------
entries = st.one_of(
    st.builds(
        lambda size, hs, mode, uid: f(size, hs, mode, uid=uid),
        st.integers(0, 4 * ZS),
        st.lists(st.sampled_from([H0, H1]), max_size=4),
        st.sampled_from([0o100644, 0o100600]),
        st.sampled_from([0, 1000]),
    ),
    st.builds(d, st.sampled_from([0o40755, 0o40700])),
    st.builds(lambda t: v.Entry("symlink", len(t), 0o120777, target=t), st.sampled_from("ab")),
)
paths = st.sampled_from(["", "a", "a/b", "a/b/c", "a-x", "z"])
trees = st.dictionaries(st.tuples(st.integers(0, 1), paths), entries, max_size=8)


@given(trees)
def test_a_tree_equals_itself(tree: v.Tree) -> None:
    diffs, stats = v.diff_trees(tree, tree, ZS)
    assert diffs == []
    assert stats.files == sum(e.kind == "file" for e in tree.values())


@given(trees, trees)
def test_diff_is_symmetric(a: v.Tree, b: v.Tree) -> None:
    ab, _ = v.diff_trees(a, b, ZS, ("n1", "n2"))
    ba, _ = v.diff_trees(b, a, ZS, ("n2", "n1"))
    assert [(x.directory, x.path, x.what, x.values, x.zones, x.inside) for x in ab] == [
        (x.directory, x.path, x.what, x.values, x.zones, x.inside) for x in ba
    ]
    assert [(x.directory, x.path) for x in ab] == sorted((x.directory, x.path) for x in ab)


@given(trees, trees)
def test_every_entry_is_accounted_for(a: v.Tree, b: v.Tree) -> None:
    """An entry on one side only is either reported or under a reported directory."""
    diffs, _ = v.diff_trees(a, b, ZS)
    reported = {(x.directory, x.path) for x in diffs if x.what == "missing"}
    for key in a.keys() ^ b.keys():
        ancestors = {(key[0], key[1].rpartition("/")[0])}
        p = key[1]
        while p:
            p = p.rpartition("/")[0]
            ancestors.add((key[0], p))
        assert key in reported or ancestors & reported
    assert sum(x.inside for x in diffs) + len(reported) == len(a.keys() ^ b.keys())


def test_zone_difference_with_byte_ranges() -> None:
    a = {(0, "f"): f(3 * ZS + 10, [H0, H0, H0, H0])}
    b = {(0, "f"): f(3 * ZS + 10, [H0, H1, H1, H1])}
    (diff,), stats = v.diff_trees(a, b, ZS)
    assert diff.what == "zones" and diff.zones == [(1, 3)]
    assert diff.byte_ranges == [(ZS, 3 * ZS + 10)]  # clipped to the file's end
    assert (stats.files, stats.bytes) == (1, 3 * ZS + 10)
    text = v.describe(diff, ["/srv/x"])
    assert text == f"/srv/x/f: content differs in zones 1-3 (bytes {ZS}-{3 * ZS + 9})"


def test_size_difference_also_lists_the_extra_zones() -> None:
    a = {(0, "f"): f(ZS, [H0])}
    b = {(0, "f"): f(3 * ZS, [H0, H0, H0])}
    diffs, _ = v.diff_trees(a, b, ZS)
    assert whats(diffs) == [("f", "size"), ("f", "zones")]
    assert diffs[1].zones == [(1, 2)] and diffs[1].byte_ranges == [(ZS, 3 * ZS)]


def test_metadata_differences_and_no_dir_size() -> None:
    a = {(0, ""): d(size=4096), (0, "f"): f(mode=0o100644, uid=0, gid=0)}
    b = {(0, ""): d(size=12288), (0, "f"): f(mode=0o100600, uid=1000, gid=50)}
    diffs, _ = v.diff_trees(a, b, ZS)
    assert whats(diffs) == [("f", "mode"), ("f", "owner")]  # the dir's st_size is ignored
    assert diffs[0].values == {"node1": "0644", "node2": "0600"}
    assert diffs[1].values == {"node1": "0:0", "node2": "1000:50"}
    assert v.describe(diffs[0], ["/srv"]) == "/srv/f: mode differs: 0644 on node1, 0600 on node2"


def test_kind_difference_hides_the_rest() -> None:
    a = {(0, "x"): f(10, [H0], mode=0o100600)}
    b = {(0, "x"): d()}
    diffs, _ = v.diff_trees(a, b, ZS)
    assert [(x.what, x.values) for x in diffs] == [("kind", {"node1": "file", "node2": "dir"})]


def test_missing_directory_is_one_line() -> None:
    a = {(0, ""): d(), (0, "a"): d(), (0, "a/b"): f(), (0, "a/c"): d(), (0, "a/c/d"): f()}
    a[(0, "a-x")] = f()
    b = {(0, ""): d()}
    diffs, _ = v.diff_trees(a, b, ZS)
    assert whats(diffs) == [("a", "missing"), ("a-x", "missing")]
    assert diffs[0].inside == 3
    assert v.describe(diffs[0], ["/m"]) == "/m/a: only on node1 (dir, 3 entries inside)"
    assert v.describe(diffs[1], ["/m"]) == "/m/a-x: only on node1 (file)"


def test_read_error_is_reported_not_compared() -> None:
    a = {(0, "f"): f(2 * ZS, [H0, H0])}
    b = {(0, "f"): f(2 * ZS, [H0], error="PermissionError: denied")}
    diffs, _ = v.diff_trees(a, b, ZS)
    assert whats(diffs) == [("f", "error")]
    assert diffs[0].values == {"node1": "-", "node2": "PermissionError: denied"}


def test_report_summary_lines() -> None:
    d1 = v.NodeDigest("node1", "blake2b-128", ZS, "prim: writing", ["/srv"])
    d2 = v.NodeDigest("node2", "blake2b-128", ZS, "", ["/srv"])
    out = v.report("web", d1, d2, [], v.Stats(2, 2048))
    assert out.splitlines()[-1] == "identical: 2 files, 2048 bytes (2.0 KiB) compared"
    assert "  node1: prim: writing" in out
    diff = v.Difference(0, "f", "size", {"node1": "1", "node2": "2"})
    lines = v.report("web", d1, d2, [diff], v.Stats()).splitlines()
    assert lines[-2:] == [
        "/srv/f: size differs: 1 on node1, 2 on node2",
        "1 difference (0 files, 0 bytes compared)",
    ]


def test_zone_size_argument() -> None:
    assert v.zone_size_arg("64K") == 65536 and v.zone_size_arg("1MiB") == 1 << 20
    assert v.zone_size_arg("4096") == 4096
    for bad in ("3K", "x", "0"):
        with pytest.raises(Exception, match="power of two|not a size"):
            v.zone_size_arg(bad)


# ----- collect ---------------------------------------------------------------------------
def header(**kw) -> pb.DigestChunk:
    return pb.DigestChunk(node_id="node1", algorithm="blake2b-128", zone_size=ZS, **kw)


def test_collect_joins_continuations() -> None:
    chunks = [
        header(directories=["/srv"]),
        pb.DigestChunk(files=[pb.FileDigest(path="f", kind="file", size=3, zone_hashes=[H0])]),
        pb.DigestChunk(files=[pb.FileDigest(path="f", first_zone=1, zone_hashes=[H1, H0])]),
        pb.DigestChunk(last=True),
    ]
    got = v.collect("node1", chunks)
    assert got.directories == ["/srv"] and got.tree[(0, "f")].hashes == [H0, H1, H0]


def test_collect_rejects_broken_streams() -> None:
    cont = pb.FileDigest(path="f", first_zone=2, zone_hashes=[H0])
    first = pb.FileDigest(path="f", kind="file", zone_hashes=[H0])
    with pytest.raises(v.DigestError, match="misplaced continuation"):
        v.collect("node1", [header(), pb.DigestChunk(files=[first, cont], last=True)])
    with pytest.raises(v.DigestError, match="ended early"):
        v.collect("node1", [header(), pb.DigestChunk(files=[first])])


# ----- fetch: algorithm negotiation ----------------------------------------------------
class FakeStream:
    def __init__(self, chunks: list[pb.DigestChunk] | Exception) -> None:
        self.chunks, self.cancelled = chunks, False

    def cancel(self) -> None:
        self.cancelled = True

    def __iter__(self) -> Iterator[pb.DigestChunk]:
        if isinstance(self.chunks, Exception):
            raise self.chunks
        yield from self.chunks


class FakeClient:
    def __init__(self, node: str, algorithms: tuple[str, ...]) -> None:
        self.node, self.algorithms, self.asked = node, algorithms, []

    def digest(self, module: str, zone_size: int = 0, algorithm: str = "") -> FakeStream:
        self.asked.append(algorithm)
        algo = algorithm or self.algorithms[0]
        if algo not in self.algorithms:
            code = grpc.StatusCode.INVALID_ARGUMENT
            return FakeStream(AgentCallError(self.node, "x", code, f"{algo} unavailable"))
        return FakeStream(
            [
                pb.DigestChunk(node_id=self.node, algorithm=algo, zone_size=zone_size or ZS),
                pb.DigestChunk(last=True),
            ]
        )


def test_fetch_uses_node1s_choice_then_falls_back_to_blake2b() -> None:
    n1 = FakeClient("node1", ("xxh3-128", "blake2b-128"))
    n2 = FakeClient("node2", ("blake2b-128",))
    results = v.fetch({"node1": n1, "node2": n2}, "web", 0)  # type: ignore[dict-item]
    assert n1.asked == ["", "blake2b-128"] and n2.asked == ["xxh3-128", "blake2b-128"]
    assert {r.algorithm for r in results.values()} == {"blake2b-128"}  # type: ignore[union-attr]


def test_fetch_same_algorithm_asks_once() -> None:
    n1, n2 = FakeClient("node1", ("xxh3-128",)), FakeClient("node2", ("xxh3-128",))
    results = v.fetch({"node1": n1, "node2": n2}, "web", 4096)  # type: ignore[dict-item]
    assert n1.asked == [""] and n2.asked == ["xxh3-128"]
    assert all(isinstance(r, v.NodeDigest) and r.zone_size == 4096 for r in results.values())


# ----- the engine side: Digester and digest_dirs ------------------------------------------
def test_digester_splits_big_files_and_collect_reassembles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dg, "STEP_BYTES", 3 * 4096)  # 3 zones per step: many continuations
    monkeypatch.setattr(dg, "CHUNK_BYTES", 200)  # a few files per chunk
    top = tmp_path / "copy" / "0"
    (top / "sub").mkdir(parents=True)
    data = random.Random(1).randbytes(10 * 4096 + 7)
    (top / "big").write_bytes(data)
    for i in range(5):
        (top / "sub" / f"s{i}").write_bytes(bytes([i]) * (i * 1000))
    os.symlink("big", top / "ln")

    async def run() -> list[pb.DigestChunk]:
        roots = [top, tmp_path / "copy" / "1"]  # the second copy does not exist: empty
        return [c async for c in dg.digest_dirs("node1", roots, 4096, "blake2b-128")]

    chunks = asyncio.run(run())
    assert len(chunks) > 3 and chunks[-1].last and not chunks[0].files
    got = v.collect("node1", chunks)
    want = zone_hashes(top / "big", 4096, algo="blake2b-128")
    assert got.tree[(0, "big")].hashes == [want[z] for z in sorted(want)]
    assert got.tree[(0, "ln")].target == "big" and got.tree[(0, "sub")].kind == "dir"
    assert {k for k in got.tree if k[1].startswith("sub/")} == {(0, f"sub/s{i}") for i in range(5)}
    assert all(k[0] == 0 for k in got.tree)


def test_state_notes() -> None:
    assert "the application may be writing" in dg.state_note(State.PRIM, True)
    assert dg.state_note(State.STOP, False).startswith("stop: ")


def test_resolve_request_refuses_bad_values() -> None:
    assert dg.resolve_request(0, "")[0] == 1 << 20
    with pytest.raises(BadDigestRequest, match="power of two"):
        dg.resolve_request(3000, "")
    with pytest.raises(BadDigestRequest, match="not available"):
        dg.resolve_request(4096, "md5")


def test_fetch_reports_only_the_failing_node() -> None:
    class Down(FakeClient):
        def digest(self, module: str, zone_size: int = 0, algorithm: str = "") -> FakeStream:
            self.asked.append(algorithm)
            return FakeStream(AgentUnavailable(self.node, "x", "connection refused"))

    n1, n2 = FakeClient("node1", ("xxh3-128",)), Down("node2", ())
    results = v.fetch({"node1": n1, "node2": n2}, "web", 0)  # type: ignore[dict-item]
    assert list(results) == ["node2"] and isinstance(results["node2"], AgentUnavailable)
    assert n1.asked == [""]  # no blake2b retry: node2 is down, not lacking an algorithm


def test_digest_never_blocks_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow disk (every hash call takes 0.2 s) must not stall the agent's loop."""
    for i in range(4):
        (tmp_path / f"f{i}").write_bytes(b"x" * 10_000)

    def slow_hashes(*args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(0.2)
        return zone_hashes(*args, **kwargs)

    monkeypatch.setattr(dg, "zone_hashes", slow_hashes)

    async def run() -> tuple[int, float]:
        gaps: list[float] = []

        async def ticker() -> None:
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        chunks = [c async for c in dg.digest_dirs("node1", [tmp_path], 4096, "blake2b-128")]
        tick.cancel()
        return sum(len(c.files) for c in chunks), max(gaps)

    files, worst_gap = asyncio.run(run())
    assert files == 5  # the root and four files
    assert worst_gap < 0.1, f"the event loop stalled for {worst_gap:.2f}s"
