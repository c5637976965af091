"""Reading an OVMF NVRAM file (its variable store) on the host: which variables it holds.

The store (edk2's authenticated variable format) is a firmware volume whose variables follow
each other, 4-byte aligned, each a 60-byte header (StartId 0x55AA, State, Attributes,
MonotonicCount, TimeStamp, PubKeyIndex, NameSize, DataSize, VendorGuid), then its UTF-16
name and its data. An update appends a new copy and marks the old one deleted (State), so
the live value of a name is its copy whose State is VAR_ADDED.

    boots = mtc(path)   # OVMF's monotonic counter: its high half goes up by one each boot
"""

from __future__ import annotations

import struct
from pathlib import Path

_HEADER = struct.Struct("<HBBIQ16sIII16s")  # 60 bytes
_START_ID = 0x55AA
_VAR_ADDED = 0x3F


def variables(path: Path) -> dict[str, bytes]:
    """The live variables' data by name (names of every vendor GUID together)."""
    data = path.read_bytes()
    found: dict[str, bytes] = {}
    at = data.find(struct.pack("<H", _START_ID))
    while at >= 0 and at + _HEADER.size <= len(data):
        start, state, _r, _attr, _mc, _ts, _pk, name_size, data_size, _guid = _HEADER.unpack_from(
            data, at
        )
        end = at + _HEADER.size + name_size + data_size
        if start != _START_ID or end > len(data) or name_size % 2:
            at = data.find(struct.pack("<H", _START_ID), at + 2)  # not a header: look on
            continue
        name_at = at + _HEADER.size
        name = data[name_at : name_at + name_size].decode("utf-16-le", "replace").rstrip("\0")
        if state == _VAR_ADDED:
            found[name] = data[name_at + name_size : end]
        at = end + (-end % 4)
    return found


def mtc(path: Path) -> int:
    """The store's ``MTC`` variable (the monotonic counter's high 32 bits, which OVMF's
    MonotonicCounterRuntimeDxe increments at each boot); 0 if it has none yet."""
    value = variables(path).get("MTC")
    return struct.unpack("<I", value[:4])[0] if value and len(value) >= 4 else 0
