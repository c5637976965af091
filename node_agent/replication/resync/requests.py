"""The resync conversation carried in REQUEST / REPLY frames (docs/replication.md).

stream/wire.py defines the frames (REQUEST/REPLY: opaque payload, seq = request id,
FLAG_FAILED on a refused request); this module defines what is inside them. A payload is::

    u32 n (big-endian) | n bytes: a JSON object (UTF-8, ASCII-escaped) | raw tail

The JSON object always has "t" (the message type); the raw tail is only used by
``hashes_r`` (the digests, back to back). Paths are strings relative to the module's
copy root ("0/disk.img": directory index, then the path inside it); a Linux file name
that is not UTF-8 travels as surrogate escapes (``\\udcXX`` in JSON), as in stream/wire.py.

=========  ====================================================  ===============================
request    fields                                                reply
=========  ====================================================  ===============================
begin      node (str), generation (str), hashes [str],           begin_r: generation (str|null),
           zone_size (int)                                       hashes [str], activity (ChangeSet
                                                                 dict|null: its activity log
                                                                 and bitmap), kernel (str|null:
                                                                 its kernel boot id)
list       start (int): index of the first entry; 0 rescans      list_r: entries [[path, kind,
                                                                 mode, uid, gid, size, mtime_ns,
                                                                 atime_ns, target, dev, ino,
                                                                 nlink, rdev]], next (int|null)
hashes     path (str), zones [int] (<= MAX_HASH_ZONES),          hashes_r: zones [int] (those that
           algo (str), zone_size (int)                           exist) + tail: 16 bytes each
done       generation (str), history [str]                       done_r: {}
=========  ====================================================  ===============================

Decoding checks every type and bound and raises ``RequestError``; it never evaluates
anything. No I/O. (The sender's table of requests awaiting a REPLY is in
stream/sender_types.py.)
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from node_agent.replication.local.scan import DIR, FILE, OTHER, SYMLINK, Entry
from node_agent.replication.tracking.zones import check_zone_size

_LEN = struct.Struct(">I")
DIGEST = 16  # every negotiated algorithm is truncated to 128 bits
MAX_HASH_ZONES = 256
MAX_ZONE_SIZE = 64 << 20
MAX_HISTORY = 64
_KINDS = (FILE, DIR, SYMLINK, OTHER)


class RequestError(ValueError):
    """A payload that is not a valid resync message."""


@dataclass(frozen=True)
class Begin:
    node: str
    generation: str
    hashes: tuple[str, ...]
    zone_size: int


@dataclass(frozen=True)
class BeginReply:
    generation: str | None
    hashes: tuple[str, ...]
    # ChangeSet.to_dict() of what the secondary's copy may hold that the primary's does
    # not: its activity log (in flight when it last crashed as a primary) and its bitmap
    # (what it tracked, or applied unacknowledged, since the generation both shared)
    activity: dict[str, Any] | None
    kernel: str | None = None  # the secondary's kernel boot id (peer_doubt.py)


@dataclass(frozen=True)
class ListPage:
    start: int


@dataclass(frozen=True)
class ListReply:
    entries: tuple[Entry, ...]
    next: int | None


@dataclass(frozen=True)
class Hashes:
    path: str
    zones: tuple[int, ...]
    algo: str
    zone_size: int


@dataclass(frozen=True)
class HashesReply:
    hashes: dict[int, bytes]


@dataclass(frozen=True)
class Done:
    generation: str
    history: tuple[str, ...]


@dataclass(frozen=True)
class DoneReply:
    pass


Request = Begin | ListPage | Hashes | Done
Reply = BeginReply | ListReply | HashesReply | DoneReply


def _pack(header: dict[str, Any] | bytes, tail: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":"))
    data = raw.encode("ascii") if isinstance(raw, str) else raw
    return _LEN.pack(len(data)) + data + tail


def _unpack(payload: bytes) -> tuple[dict[str, Any], bytes]:
    if len(payload) < _LEN.size:
        raise RequestError("truncated resync message")
    (n,) = _LEN.unpack_from(payload)
    if n > len(payload) - _LEN.size:
        raise RequestError("resync message header overruns the payload")
    try:
        header = json.loads(payload[_LEN.size : _LEN.size + n])
    except (ValueError, UnicodeDecodeError) as e:
        raise RequestError(f"resync message header is not JSON: {e}") from None
    if not isinstance(header, dict) or not isinstance(header.get("t"), str):
        raise RequestError("resync message header is not an object with a type")
    return header, payload[_LEN.size + n :]


def _field(h: dict[str, Any], key: str, kind: type, *, null: bool = False) -> Any:
    value = h.get(key)
    if value is None and null:
        return None
    # bool is an int in Python: never accept it where a number is meant
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise RequestError(f"field {key!r} of {h['t']!r} is missing or not {kind}")
    if isinstance(value, int) and value < 0:
        raise RequestError(f"field {key!r} of {h['t']!r} is negative")
    return value


def _strings(h: dict[str, Any], key: str, limit: int) -> tuple[str, ...]:
    value = _field(h, key, list)
    if len(value) > limit or not all(isinstance(s, str) for s in value):
        raise RequestError(f"field {key!r} of {h['t']!r} is not a list of at most {limit} strings")
    return tuple(value)


def _zone_size(h: dict[str, Any]) -> int:
    zs = _field(h, "zone_size", int)
    try:
        check_zone_size(zs)
    except ValueError as e:
        raise RequestError(str(e)) from None
    if zs > MAX_ZONE_SIZE:
        raise RequestError(f"zone size {zs} exceeds {MAX_ZONE_SIZE}")
    return zs


# -- requests ---------------------------------------------------------------------------
def encode_request(req: Request) -> bytes:
    if isinstance(req, Begin):
        return _pack({"t": "begin", "node": req.node, "generation": req.generation,
                      "hashes": list(req.hashes), "zone_size": req.zone_size})  # fmt: skip
    if isinstance(req, ListPage):
        return _pack({"t": "list", "start": req.start})
    if isinstance(req, Hashes):
        if len(req.zones) > MAX_HASH_ZONES:
            raise ValueError(f"at most {MAX_HASH_ZONES} zones per hashes request")
        return _pack({"t": "hashes", "path": req.path, "zones": list(req.zones),
                      "algo": req.algo, "zone_size": req.zone_size})  # fmt: skip
    if isinstance(req, Done):
        return _pack({"t": "done", "generation": req.generation, "history": list(req.history)})
    raise TypeError(f"not a resync request: {req!r}")


def decode_request(payload: bytes) -> Request:
    h, tail = _unpack(payload)
    if tail:
        raise RequestError("unexpected raw bytes after a request")
    t = h["t"]
    if t == "begin":
        return Begin(_field(h, "node", str), _field(h, "generation", str),
                     _strings(h, "hashes", 16), _zone_size(h))  # fmt: skip
    if t == "list":
        return ListPage(_field(h, "start", int))
    if t == "hashes":
        zones = _field(h, "zones", list)
        if len(zones) > MAX_HASH_ZONES or not all(
            isinstance(z, int) and not isinstance(z, bool) and z >= 0 for z in zones
        ):
            raise RequestError(f"hashes: zones must be at most {MAX_HASH_ZONES} indexes >= 0")
        return Hashes(_field(h, "path", str), tuple(zones), _field(h, "algo", str), _zone_size(h))
    if t == "done":
        return Done(_field(h, "generation", str), _strings(h, "history", MAX_HISTORY))
    raise RequestError(f"unknown resync request {t!r}")


# -- replies ----------------------------------------------------------------------------
def entry_json(e: Entry) -> str:
    """One listing entry as compact JSON (the server pages by encoded size)."""
    return json.dumps(list(e), separators=(",", ":"))


def encode_list_reply(encoded_entries: list[str], next_start: int | None) -> bytes:
    """A list_r from entries already passed through ``entry_json``."""
    nxt = "null" if next_start is None else str(int(next_start))
    return _pack(f'{{"t":"list_r","next":{nxt},"entries":[{",".join(encoded_entries)}]}}'.encode())


def encode_reply(reply: Reply) -> bytes:
    if isinstance(reply, BeginReply):
        return _pack({"t": "begin_r", "generation": reply.generation,
                      "hashes": list(reply.hashes), "activity": reply.activity,
                      "kernel": reply.kernel})  # fmt: skip
    if isinstance(reply, ListReply):
        return encode_list_reply([entry_json(e) for e in reply.entries], reply.next)
    if isinstance(reply, HashesReply):
        zones = sorted(reply.hashes)
        if any(len(reply.hashes[z]) != DIGEST for z in zones):
            raise ValueError(f"digests must be {DIGEST} bytes")
        return _pack({"t": "hashes_r", "zones": zones}, b"".join(reply.hashes[z] for z in zones))
    if isinstance(reply, DoneReply):
        return _pack({"t": "done_r"})
    raise TypeError(f"not a resync reply: {reply!r}")


def _entry(raw: Any) -> Entry:
    if not isinstance(raw, list) or len(raw) != len(Entry._fields):
        raise RequestError("listing entry is not a list of the right length")
    path, kind, target = raw[0], raw[1], raw[8]
    nums = [raw[i] for i in (2, 3, 4, 5, 6, 7, 9, 10, 11, 12)]
    if not isinstance(path, str) or kind not in _KINDS or not isinstance(target, str | None):
        raise RequestError(f"bad listing entry {raw[:3]!r}")
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in nums):
        raise RequestError(f"bad numbers in listing entry {path!r}")
    return Entry(*raw)


def decode_reply(req: Request, payload: bytes) -> Reply:
    """The reply to ``req``; its type must match the request's."""
    h, tail = _unpack(payload)
    want = {Begin: "begin_r", ListPage: "list_r", Hashes: "hashes_r", Done: "done_r"}[type(req)]
    if h["t"] != want:
        raise RequestError(f"expected {want}, got {h['t']!r}")
    if want != "hashes_r" and tail:
        raise RequestError(f"unexpected raw bytes after {want}")
    if want == "begin_r":
        activity = _field(h, "activity", dict, null=True)
        return BeginReply(_field(h, "generation", str, null=True), _strings(h, "hashes", 16),
                          activity, _field(h, "kernel", str, null=True))  # fmt: skip
    if want == "list_r":
        entries = _field(h, "entries", list)
        return ListReply(tuple(_entry(e) for e in entries), _field(h, "next", int, null=True))
    if want == "hashes_r":
        zones = _field(h, "zones", list)
        if len(tail) != DIGEST * len(zones) or not all(
            isinstance(z, int) and not isinstance(z, bool) for z in zones
        ):
            raise RequestError("hashes_r: zones and digests do not match")
        return HashesReply({z: tail[i * DIGEST : (i + 1) * DIGEST] for i, z in enumerate(zones)})
    return DoneReply()
