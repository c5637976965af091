"""Splitting one pulse into datagrams of bounded size (DESIGN §4). Pure, no I/O.

64 modules do not fit one MTU, and a datagram above it is fragmented by IP: losing
any fragment loses the whole datagram, and some paths drop fragments altogether. So
a pulse is sent as ``parts`` datagrams, each at most ``BUDGET`` bytes (MAGIC and HMAC
included; well under a 1500-byte MTU, and under IPv6's 1280-byte minimum, as QUIC's
1200). Every part is a complete ``Heartbeat`` header (cluster, node, boot_id, seq,
link, sent_time, echo, config version, witness) with ``part``/``parts`` and a subset of
the modules, so any part alone keeps its link alive; they share (boot_id, seq), and
``Liveness`` accepts each part of a pulse once.

A view too large for one datagram (a whole history of 32 ids next to a 64-byte name
and a long header) is cut into chunks: copies of the view, each with a slice of
``generations`` starting at ``history_offset`` (``PeerModules`` joins them). Any
chunk alone still carries every other field and the history's summary.

The split is computed once per pulse, sized for the longest link name, so the same
part index holds the same modules on every link: parts of one pulse heard on
different links complete each other.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from node_agent.heartbeat.codec import HEADER_LEN
from protos.heartbeat_pb2 import Heartbeat, PeerModuleView

BUDGET = 1200  # bytes per datagram, MAGIC and HMAC included
MAX_PARTS = 4096  # a receiver refuses more: bounds what one pulse may make it remember
FEATURE_PARTS = 1  # understands parts and history sync: may be sent them


def _varint_len(n: int) -> int:
    size = 1
    while n >= 0x80:
        n >>= 7
        size += 1
    return size


def _field_len(view: PeerModuleView) -> int:
    """Bytes ``view`` adds to a Heartbeat: tag of field 7 (1 byte), length, content."""
    size = view.ByteSize()
    return 1 + _varint_len(size) + size


def _gen_len(gen: str) -> int:
    raw = len(gen.encode())
    return 1 + _varint_len(raw) + raw  # tag of field 5, length, bytes


def split(hb: Heartbeat, budget: int, link_names: Sequence[str] = ()) -> list[Heartbeat]:
    """``hb`` as parts whose datagrams are each at most ``budget`` bytes, whichever of
    ``link_names`` is stamped on them. Raises ValueError if even an empty part with one
    module's smallest chunk does not fit, or the pulse needs more than MAX_PARTS."""
    header = Heartbeat()
    header.CopyFrom(hb)
    del header.modules[:]
    header.link = max([*link_names, hb.link], key=lambda n: len(n.encode()))
    header.part = header.parts = MAX_PARTS - 1  # reserve the widest varints
    room = budget - HEADER_LEN - header.ByteSize()
    groups: list[list[PeerModuleView]] = [[]]
    used = 0
    for view in hb.modules:
        pieces = [view] if _field_len(view) <= room else list(_chunks(view, room, room - used))
        for piece in pieces:
            size = _field_len(piece)
            if used + size > room and groups[-1]:
                groups.append([])
                used = 0
            groups[-1].append(piece)
            used += size
    if len(groups) > MAX_PARTS:
        raise ValueError(f"a pulse of {len(groups)} datagrams exceeds {MAX_PARTS}")
    parts = []
    for index, views in enumerate(groups):
        part = Heartbeat()
        part.CopyFrom(header)
        part.link = hb.link
        part.part, part.parts = index, len(groups)
        part.modules.extend(views)
        parts.append(part)
    return parts


def _chunks(view: PeerModuleView, room: int, first_room: int) -> Iterator[PeerModuleView]:
    """``view`` with its ``generations`` cut in slices that each fit ``room`` bytes (the
    first one ``first_room``, what is left of the current part, if that holds any)."""
    history = list(view.generations)
    if not history:
        raise ValueError(f"module {view.name!r}: its view does not fit a datagram")
    base = PeerModuleView()
    base.CopyFrom(view)
    del base.generations[:]
    base.history_offset = len(history)  # the widest offset any chunk will carry
    base_len = base.ByteSize()
    limit = first_room
    start = 0
    while start < len(history):
        end = start
        size = base_len
        # The field length of the chunk: 1 (tag) + varint(content) + content.
        while end < len(history):
            grown = size + _gen_len(history[end])
            if 1 + _varint_len(grown) + grown > limit:
                break
            size, end = grown, end + 1
        if end == start:
            if limit != room:  # nothing fits in what is left: start on an empty part
                limit = room
                continue
            raise ValueError(f"module {view.name!r}: one generation does not fit a datagram")
        chunk = PeerModuleView()
        chunk.CopyFrom(base)
        chunk.history_offset = start
        chunk.generations.extend(history[start:end])
        yield chunk
        start, limit = end, room
