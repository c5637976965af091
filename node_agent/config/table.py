"""Reading one TOML table of the cluster file: the checks every section shares, and
the error that names the dotted key (split out of load.py, which reads the sections).
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from pathlib import PurePosixPath
from typing import Any

NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
HOST_RE = re.compile(rf"(?=.{{1,253}}$){LABEL}(\.{LABEL})*")
IFNAME_RE = re.compile(r"[^\s/]{1,15}")
MISSING: Any = object()


class ConfigError(ValueError):
    """An invalid config. ``key`` is the dotted path ("" for file-level problems)."""

    def __init__(self, key: str, detail: str, source: str = "", line: int | None = None,
                 col: int | None = None) -> None:  # fmt: skip
        self.key, self.detail, self.source, self.line, self.col = key, detail, source, line, col
        msg = f"config error at {key}: {detail}" if key else f"config error: {detail}"
        if source and source != "<string>":
            msg = f"{source}: {msg}"
        super().__init__(msg)


def show(value: Any) -> str:
    """A value as the user wrote it in TOML (strings quoted, true/false, short arrays)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, str | list):
        text = json.dumps(value, ensure_ascii=False, default=str)
        return text if len(text) <= 80 else text[:77] + "..."
    return str(value)


def bad(key: str, allowed: str, value: Any) -> ConfigError:
    return ConfigError(key, f"must be {allowed}, got {show(value)}")


class Table:
    """A TOML table being read: knows its dotted path and rejects unknown keys at once."""

    def __init__(self, data: Any, path: str, allowed: Iterable[str]) -> None:
        if not isinstance(data, dict):
            raise bad(path, "a table", data)
        self.data: dict[str, Any] = data
        self.path = path
        allowed = list(allowed)
        for k in data:
            if k not in allowed:
                hint = difflib.get_close_matches(k, allowed, n=1)
                tip = f' (did you mean "{hint[0]}"?)' if hint else ""
                allowed_text = ", ".join(allowed)
                raise ConfigError(self.key(k), f'unknown key "{k}"; allowed: {allowed_text}{tip}')

    def key(self, k: str) -> str:
        return f"{self.path}.{k}" if self.path else k

    def get(self, k: str, default: Any = MISSING) -> Any:
        if k in self.data:
            return self.data[k]
        if default is MISSING:
            raise ConfigError(self.key(k), "is required")
        return default

    def want(self, k: str, default: Any, ok: Callable[[Any], Any], allowed: str) -> Any:
        v = self.get(k, default)
        if not ok(v):
            raise bad(self.key(k), allowed, v)
        return v

    def string(self, k: str, default: Any = MISSING, *, empty: bool = False) -> str:
        if empty:
            return self.want(k, default, lambda v: isinstance(v, str), "a string")
        return self.want(
            k, default, lambda v: isinstance(v, str) and v.strip(), "a non-empty string"
        )

    def name(self, k: str = "name") -> str:
        ok = lambda v: isinstance(v, str) and NAME_RE.fullmatch(v)  # noqa: E731
        return self.want(k, MISSING, ok, "1 to 64 characters from A-Z a-z 0-9 _ . -")

    def integer(
        self, k: str, default: Any = MISSING, lo: int = 0, hi: int | None = None, what: str = ""
    ) -> int:
        v = self.get(k, default)
        ok = isinstance(v, int) and not isinstance(v, bool) and v >= lo and (hi is None or v <= hi)
        if not ok:
            rng = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
            raise bad(self.key(k), what or f"an integer {rng}", v)
        return v

    def number(self, k: str, default: Any = MISSING) -> float:
        ok = lambda v: type(v) in (int, float) and 0 < v < float("inf")  # noqa: E731
        return float(self.want(k, default, ok, "a number > 0"))

    def flag(self, k: str, default: Any = MISSING) -> bool:
        return self.want(k, default, lambda v: isinstance(v, bool), "true or false")

    def choice(self, k: str, choices: Iterable[str], default: Any = MISSING) -> str:
        v = self.get(k, default)
        choices = list(choices)
        if v not in choices:
            raise bad(self.key(k), "one of " + ", ".join(f'"{c}"' for c in choices), v)
        return v

    def items(self, k: str, item: Callable[[Any, str], str]) -> tuple[str, ...]:
        v = self.get(k, [])
        if not isinstance(v, list):
            raise bad(self.key(k), "an array", v)
        return tuple(item(x, f"{self.key(k)}[{i}]") for i, x in enumerate(v))

    def tables(self, k: str) -> list[Any]:
        v = self.get(k, [])
        if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
            raise bad(self.key(k), f"an array of tables ([[{k}]] sections)", v)
        return v


def is_ip(text: str, prefix: bool = False) -> bool:
    """An IP address; with ``prefix`` an address with a prefix length ("10.0.0.1/24")."""
    try:
        if prefix:
            return "/" in text and bool(ipaddress.ip_interface(text))
        return bool(ipaddress.ip_address(text))
    except ValueError:
        return False


def checked(ok: Callable[[str], Any], allowed: str) -> Callable[[Any, str], str]:
    """A value checker for strings: returns the value or raises naming the key."""

    def check(value: Any, key: str) -> str:
        if not isinstance(value, str) or not ok(value):
            raise bad(key, allowed, value)
        return value

    return check


ip_value = checked(is_ip, "an IP address like 10.0.0.1")
host_value = checked(lambda v: is_ip(v) or HOST_RE.fullmatch(v), "an IP address or host name")
abspath_value = checked(lambda v: PurePosixPath(v).is_absolute(), "an absolute path")
ifname_value = checked(
    lambda v: IFNAME_RE.fullmatch(v) and v not in (".", ".."),
    "a network interface name (1-15 characters, no spaces or /)",
)


def is_hostport(text: str) -> bool:
    host, _, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):  # IPv6 literal
        valid_host = ":" in host and is_ip(host[1:-1])
    else:
        valid_host = ":" not in host and bool(is_ip(host) or HOST_RE.fullmatch(host))
    return valid_host and port.isascii() and port.isdigit() and 1 <= int(port) <= 65535


hostport_value = checked(
    is_hostport, 'host:port with port 1..65535 (e.g. "10.0.0.1:7700", "[fd00::1]:7700")'
)
