"""journald's native protocol encoder (node_agent/journal.py) and its sender."""

from __future__ import annotations

import array
import os
import socket
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node_agent.journal import JournalDecodeError, JournalSocket, decode, encode, field_name

KEYS = st.from_regex(r"[A-Z][A-Z0-9_]{0,63}", fullmatch=True)
VALUES = st.one_of(st.binary(max_size=300), st.text(max_size=100).map(str.encode))


def test_plain_and_binary_safe_forms() -> None:
    assert encode([("MESSAGE", "hello"), ("PRIORITY", "6")]) == b"MESSAGE=hello\nPRIORITY=6\n"
    # A newline in the value: KEY\n, 64-bit little-endian length, the bytes, \n.
    assert encode([("MESSAGE", "a\nb")]) == b"MESSAGE\n" + struct.pack("<Q", 3) + b"a\nb\n"
    assert encode([("MESSAGE", "")]) == b"MESSAGE=\n"
    assert encode([("M", "é")]) == "M=é\n".encode()


@given(st.lists(st.tuples(KEYS, VALUES), max_size=12))
def test_decode_inverts_encode(fields: list[tuple[str, bytes]]) -> None:
    assert decode(encode(fields)) == fields


@given(st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=5), st.data())
def test_a_cut_entry_is_refused_or_a_prefix(fields: list[tuple[str, bytes]], data) -> None:  # type: ignore[no-untyped-def]
    raw = encode(fields)
    cut = data.draw(st.integers(0, len(raw) - 1))
    try:
        got = decode(raw[:cut])
    except JournalDecodeError:
        return
    # Only a cut at a field boundary decodes: to the fields before it.
    assert got == fields[: len(got)] and len(got) < len(fields)


@pytest.mark.parametrize("bad", ["message", "_PID", "1X", "A-B", "A" * 65, "", "A B"])
def test_invalid_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid journal field name"):
        encode([(bad, "x")])


@given(st.text(max_size=80))
def test_field_name_makes_any_name_valid(name: str) -> None:
    key = field_name(name)
    assert decode(encode([(key, "v")])) == [(key, b"v")]


def test_field_name_keeps_valid_names() -> None:
    assert field_name("module") == "MODULE" and field_name("CODE_LINE") == "CODE_LINE"
    assert field_name("_PID") == "PID" and field_name("9lives") == "X_9LIVES"


def _receiver(tmp_path: Path) -> tuple[socket.socket, str]:
    path = str(tmp_path / "journal.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    return sock, path


def test_socket_sends_a_datagram(tmp_path: Path) -> None:
    rx, path = _receiver(tmp_path)
    tx = JournalSocket(path)
    try:
        tx.send(encode([("MESSAGE", "one")]))
        assert decode(rx.recv(65536)) == [("MESSAGE", b"one")]
    finally:
        tx.close()
        rx.close()


def test_an_entry_too_large_for_a_datagram_goes_in_a_sealed_memfd(tmp_path: Path) -> None:
    rx, path = _receiver(tmp_path)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    tx = JournalSocket(path)
    big = os.urandom(4 << 20)  # beyond any unix datagram (wmem_max)
    try:
        tx.send(encode([("MESSAGE", big)]))
        msg, anc, _, _ = rx.recvmsg(16, socket.CMSG_SPACE(4))
        assert msg == b""
        fds = array.array("i")
        for level, kind, payload in anc:
            if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        assert len(fds) == 1, anc
        with os.fdopen(fds[0], "rb") as f:
            f.seek(0)  # journald reads it from the start (the offset is shared)
            assert decode(f.read()) == [("MESSAGE", big)]
    finally:
        tx.close()
        rx.close()


def test_no_journal_is_an_oserror(tmp_path: Path) -> None:
    tx = JournalSocket(str(tmp_path / "none.sock"))
    with pytest.raises(OSError):
        tx.send(b"MESSAGE=x\n")
    tx.close()
