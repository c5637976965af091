"""`mirrorpair verify MODULE`: compare both nodes' copies of a module's replicated
directories by zone hashes and list every difference (the seed product's `rfsverify`).

Both agents hash their own copy (DigestModule) at the same time; only hashes cross the
network. ``diff_trees`` is the pure comparison; the rest fetches and prints.
"""

from __future__ import annotations

import argparse
import json
import stat
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc

from node_agent.cli.client import (
    AgentCallError,
    AgentClient,
    AgentClientError,
    AgentUnavailable,
    DigestStream,
)
from node_agent.cli.commands import Context
from node_agent.cli.exits import Exit
from node_agent.config.model import NODE_IDS
from protos import mirrorpair_pb2 as pb

FALLBACK_HASH = "blake2b-128"  # every agent has it
_LABELS = {"kind": "type", "target": "symlink target", "error": "read error"}  # else: `what`

Key = tuple[int, str]  # (directory index, path relative to it)


@dataclass
class Entry:
    kind: str  # file, dir, symlink, other
    size: int = 0
    mode: int = 0
    uid: int = 0
    gid: int = 0
    target: str = ""
    hashes: list[bytes] = field(default_factory=list)
    error: str = ""


Tree = dict[Key, Entry]


@dataclass
class Difference:
    directory: int
    path: str
    what: str  # missing, kind, mode, owner, target, size, zones, error
    values: dict[str, str] = field(default_factory=dict)  # node -> its value, as text
    zones: list[tuple[int, int]] = field(default_factory=list)  # inclusive zone ranges
    byte_ranges: list[tuple[int, int]] = field(default_factory=list)  # [start, end)
    inside: int = 0  # "missing" directory: entries under it, also missing (not listed)


@dataclass
class Stats:
    files: int = 0  # regular files present on both nodes
    bytes: int = 0


def compress(indexes: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted inclusive ranges covering ``indexes``: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    out: list[tuple[int, int]] = []
    for i in sorted(set(indexes)):
        if out and out[-1][1] == i - 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out


def _mode_text(mode: int, other: int) -> str:
    # Permission bits only, unless the file types differ too (a fifo vs a device).
    same_type = stat.S_IFMT(mode) == stat.S_IFMT(other)
    return f"{stat.S_IMODE(mode):04o}" if same_type else f"{mode:o}"


def diff_trees(
    a: Tree, b: Tree, zone_size: int, names: tuple[str, str] = ("node1", "node2")
) -> tuple[list[Difference], Stats]:
    """Every difference between two trees, sorted by (directory, path); an entry missing
    on one side hides the entries under it (counted in ``inside``)."""
    diffs: list[Difference] = []
    missing: dict[Key, Difference] = {}
    stats = Stats()
    na, nb = names
    for key in sorted(a.keys() | b.keys()):
        ea, eb = a.get(key), b.get(key)
        if ea is None or eb is None:
            parent = _missing_ancestor(missing, key)
            if parent is not None:
                parent.inside += 1
                continue
            e, have, lack = (ea, na, nb) if ea is not None else (eb, nb, na)
            assert e is not None
            d = Difference(key[0], key[1], "missing", {have: e.kind, lack: "absent"})
            diffs.append(d)
            if e.kind == "dir":
                missing[key] = d
            continue

        def add(what: str, va: str, vb: str, key: Key = key) -> None:
            diffs.append(Difference(key[0], key[1], what, {na: va, nb: vb}))

        if ea.kind != eb.kind:
            add("kind", ea.kind, eb.kind)
            continue
        if ea.mode != eb.mode:
            add("mode", _mode_text(ea.mode, eb.mode), _mode_text(eb.mode, ea.mode))
        if (ea.uid, ea.gid) != (eb.uid, eb.gid):
            add("owner", f"{ea.uid}:{ea.gid}", f"{eb.uid}:{eb.gid}")
        if ea.kind == "symlink" and ea.target != eb.target:
            add("target", ea.target, eb.target)
        if ea.kind != "file":
            continue  # a directory's st_size depends on its history, not its content
        stats.files += 1
        stats.bytes += max(ea.size, eb.size)
        if ea.size != eb.size:
            add("size", str(ea.size), str(eb.size))
        if ea.error or eb.error:
            add("error", ea.error or "-", eb.error or "-")
            continue  # hashes are incomplete: comparing them would invent differences
        zones = _zone_diff(ea.hashes, eb.hashes)
        if zones:
            end = max(ea.size, eb.size)
            d = Difference(key[0], key[1], "zones", zones=compress(zones))
            d.byte_ranges = [(lo * zone_size, min((hi + 1) * zone_size, end)) for lo, hi in d.zones]
            diffs.append(d)
    return diffs, stats


def _missing_ancestor(missing: dict[Key, Difference], key: Key) -> Difference | None:
    d, path = key
    while path:
        path = path.rpartition("/")[0]
        if (d, path) in missing:
            return missing[(d, path)]
    return None


def _zone_diff(ha: list[bytes], hb: list[bytes]) -> list[int]:
    common = min(len(ha), len(hb))
    differ = [z for z in range(common) if ha[z] != hb[z]]
    return differ + list(range(common, max(len(ha), len(hb))))


# ----- fetching ------------------------------------------------------------------------
class DigestError(Exception):
    """An agent's stream made no sense (ended early, a continuation out of place)."""


@dataclass
class NodeDigest:
    node: str
    algorithm: str = ""
    zone_size: int = 0
    note: str = ""
    directories: list[str] = field(default_factory=list)
    tree: Tree = field(default_factory=dict)


def collect(
    node: str,
    chunks: Iterable[pb.DigestChunk],
    on_header: Callable[[NodeDigest], None] = lambda _d: None,
) -> NodeDigest:
    """Assemble one agent's stream (header, files, last) into a NodeDigest."""
    out: NodeDigest | None = None
    last: Key | None = None
    for chunk in chunks:
        if out is None:  # the header: sent before the agent starts scanning
            out = NodeDigest(node, chunk.algorithm, chunk.zone_size, chunk.state_note)
            out.directories = list(chunk.directories)
            on_header(out)
            continue
        for f in chunk.files:
            key = (f.directory, f.path)
            if f.first_zone:
                e = out.tree.get(key)
                if e is None or key != last or len(e.hashes) != f.first_zone:
                    raise DigestError(f"{node}: misplaced continuation of {f.path!r}")
                e.hashes.extend(f.zone_hashes)
                e.error = e.error or f.error
                continue
            out.tree[key] = Entry(
                f.kind, f.size, f.mode, f.uid, f.gid, f.target, list(f.zone_hashes), f.error
            )
            last = key
        if chunk.last:
            return out
    raise DigestError(f"{node}: the digest stream ended early")


Result = NodeDigest | AgentClientError | DigestError


def fetch(clients: dict[str, AgentClient], module: str, zone_size: int) -> dict[str, Result]:
    """Both digests, taken at the same time. node1 picks the algorithm (its header comes
    before any hashing), node2 is asked for the same; if node2 lacks it, both redo it
    with blake2b, which every agent has."""
    n1, n2 = NODE_IDS
    results: dict[str, Result] = {}
    headers: dict[str, NodeDigest] = {}
    header = threading.Event()
    first = clients[n1].digest(module, zone_size)
    streams = [first]
    t1 = _start(n1, first, results, headers, header)
    try:
        header.wait()
        if n1 not in headers:  # failed before its header: nothing to compare with
            t1.join()
            return results
        d1 = headers[n1]
        second = clients[n2].digest(module, d1.zone_size, d1.algorithm)
        streams.append(second)
        _start(n2, second, results, headers).join()
        r2 = results[n2]
        if isinstance(r2, NodeDigest):
            t1.join()
            return results
        first.cancel()  # node2 failed: node1's hashes are useless now
        t1.join()
        results.pop(n1, None)  # (its "ended early" would only confuse)
        if (
            isinstance(r2, AgentCallError)
            and r2.code == grpc.StatusCode.INVALID_ARGUMENT
            and d1.algorithm != FALLBACK_HASH
        ):
            results.clear()
            again = {n: clients[n].digest(module, d1.zone_size, FALLBACK_HASH) for n in NODE_IDS}
            streams += again.values()
            for t in [_start(n, s, results, headers) for n, s in again.items()]:
                t.join()
        return results
    finally:
        for s in streams:  # Ctrl-C or an error: tell the agents to stop hashing
            s.cancel()


def _start(
    node: str,
    stream: DigestStream,
    results: dict[str, Result],
    headers: dict[str, NodeDigest],
    header: threading.Event | None = None,
) -> threading.Thread:
    event = header or threading.Event()

    def on_header(d: NodeDigest) -> None:
        headers[node] = d
        event.set()

    def run() -> None:
        try:
            results[node] = collect(node, stream, on_header)
        except (AgentClientError, DigestError) as e:
            results[node] = e
        finally:
            event.set()  # wake the caller even if the header never came

    t = threading.Thread(target=run, daemon=True, name=f"verify-{node}")  # Ctrl-C must win
    t.start()
    return t


# ----- the command -----------------------------------------------------------------------
def human(n: int) -> str:
    for shift, unit in ((40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} bytes"


def display_path(directories: list[str], d: Difference) -> str:
    base = directories[d.directory] if d.directory < len(directories) else f"[{d.directory}]"
    return f"{base.rstrip('/')}/{d.path}" if d.path else base


def describe(d: Difference, directories: list[str]) -> str:
    p = display_path(directories, d)
    if d.what == "missing":
        (have, kind), _ = sorted(d.values.items(), key=lambda kv: kv[1] == "absent")
        inside = f", {d.inside} entries inside" if d.inside else ""
        return f"{p}: only on {have} ({kind}{inside})"
    if d.what == "zones":
        word = "zone" if len(d.zones) == 1 and d.zones[0][0] == d.zones[0][1] else "zones"
        zones = ", ".join(str(f) if f == last else f"{f}-{last}" for f, last in d.zones)
        spans = ", ".join(f"{s}-{e - 1}" for s, e in d.byte_ranges)
        return f"{p}: content differs in {word} {zones} (bytes {spans})"
    values = ", ".join(f"{v} on {n}" for n, v in sorted(d.values.items()))
    return f"{p}: {_LABELS.get(d.what, d.what)} differs: {values}"


def report(module: str, d1: NodeDigest, d2: NodeDigest, diffs: list[Difference], st: Stats) -> str:
    lines = [
        f"verify {module}: {d1.node} vs {d2.node}, {d1.algorithm} hashes of "
        f"{human(d1.zone_size)} zones"
    ]
    lines += [f"  {d.node}: {d.note}" for d in (d1, d2) if d.note]
    if d1.directories != d2.directories:
        lines.append(f"  warning: directories differ: {d1.directories} vs {d2.directories}")
    lines += [describe(d, d1.directories) for d in diffs]
    size = f" ({human(st.bytes)})" if st.bytes >= 1024 else ""
    compared = f"{st.files} files, {st.bytes} bytes{size} compared"
    if diffs:
        lines.append(f"{len(diffs)} difference{'s' * (len(diffs) != 1)} ({compared})")
    else:
        lines.append(f"identical: {compared}")
    return "\n".join(lines)


def document(
    module: str, d1: NodeDigest, d2: NodeDigest, diffs: list[Difference], st: Stats
) -> dict[str, Any]:
    return {
        "module": module,
        "identical": not diffs,
        "algorithm": d1.algorithm,
        "zone_size": d1.zone_size,
        "nodes": {d.node: {"note": d.note, "directories": d.directories} for d in (d1, d2)},
        "files_compared": st.files,
        "bytes_compared": st.bytes,
        "differences": [
            {
                "path": display_path(d1.directories, d),
                "directory": d.directory,
                "relative_path": d.path,
                "what": d.what,
                "values": d.values,
                "zones": [list(z) for z in d.zones],
                "byte_ranges": [list(r) for r in d.byte_ranges],
                "entries_inside": d.inside,
                "text": describe(d, d1.directories),
            }
            for d in diffs
        ],
    }


def zone_size_arg(text: str) -> int:
    """`--zone-size 65536`, `64K`, `1M`: a power of two."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    try:
        n = int(t[:-1]) * units[t[-1]] if t and t[-1] in units else int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None
    if n < 1 or n & (n - 1):
        raise argparse.ArgumentTypeError(f"must be a power of two, got {n}")
    return n


def add_parsers(sub: Any) -> None:
    v = sub.add_parser(
        "verify",
        help="compare both nodes' copies of a module by zone hashes",
        description="Compare both nodes' copies of MODULE's replicated directories and list "
        "the differences. Exit 0 identical, 1 different, 10 agent unreachable, 11 unknown "
        "module, 13 refused (no replicated directories, zone size).",
    )
    v.add_argument("module", metavar="MODULE", help="the module's name")
    v.add_argument("--json", action="store_true", help="machine-readable JSON")
    v.add_argument(
        "--zone-size", type=zone_size_arg, default=0, metavar="N", help="bytes (default 1M)"
    )
    v.set_defaults(handler=cmd_verify)


def cmd_verify(ctx: Context, args: argparse.Namespace) -> int:
    results = fetch(ctx.clients(), args.module, args.zone_size)
    errors = {n: r for n, r in results.items() if not isinstance(r, NodeDigest)}
    if errors:
        print("\n".join(f"error: {e}" for e in errors.values()), file=sys.stderr)
        if any(isinstance(e, AgentUnavailable) for e in errors.values()):
            return Exit.UNREACHABLE
        codes = {e.code for e in errors.values() if isinstance(e, AgentCallError)}
        return Exit.UNKNOWN_MODULE if grpc.StatusCode.NOT_FOUND in codes else Exit.REFUSED
    d1, d2 = (results[n] for n in NODE_IDS)
    assert isinstance(d1, NodeDigest) and isinstance(d2, NodeDigest)
    hashed = [f"{d.algorithm} over {d.zone_size} bytes" for d in (d1, d2)]
    if hashed[0] != hashed[1]:  # never, unless an agent ignored the request
        print(f"error: the agents hashed differently: {' vs '.join(hashed)}", file=sys.stderr)
        return Exit.REFUSED
    diffs, stats = diff_trees(d1.tree, d2.tree, d1.zone_size, (d1.node, d2.node))
    if args.json:
        print(json.dumps(document(args.module, d1, d2, diffs, stats), indent=2, sort_keys=True))
    else:
        print(report(args.module, d1, d2, diffs, stats))
    return Exit.DIFFERENT if diffs else Exit.OK
