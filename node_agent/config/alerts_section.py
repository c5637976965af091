"""Reading the ``[alerts]`` section of the cluster file (docs/alerts.md).

Like every section, each bad value raises ``ConfigError`` naming its dotted key. The SMTP
password is never in the TOML: ``password_file`` names a file read at each send, so the
file may differ per node and the console can check the configuration without it.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from node_agent.config.model import ALERT_EVENTS, AlertsConfig, EmailConfig, HookConfig
from node_agent.config.table import ConfigError, Table, abspath_value, bad, host_value

# Deliberately loose: the SMTP server is the judge; this only catches obvious typos.
_ADDRESS_RE = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+|[^@\s<>,;]+@localhost")
_SECURITY = ("starttls", "ssl", "none")
MAX_TIMEOUT_S = 600.0
MAX_BATCH_S = 300.0


def _address(value: Any, key: str) -> str:
    if not isinstance(value, str) or not _ADDRESS_RE.fullmatch(value):
        raise bad(key, 'an e-mail address like "ops@example.com"', value)
    return value


def _timeout(t: Table, default: float) -> float:
    value = t.number("timeout_s", default)
    if value > MAX_TIMEOUT_S:
        raise bad(t.key("timeout_s"), f"a number > 0 and <= {MAX_TIMEOUT_S:g}", value)
    return value


def _hook(data: Any) -> HookConfig:
    t = Table(data, "alerts.hook", ["command", "timeout_s"])
    command = t.get("command")
    ok = isinstance(command, list) and command and all(isinstance(a, str) for a in command)
    if not ok or not command[0].strip():
        allowed = (
            "an array of strings, the program first (run without a shell), like "
            '["/usr/local/bin/page", "--team", "ops"]'
        )
        raise bad(t.key("command"), allowed, command)
    return HookConfig(tuple(command), _timeout(t, HookConfig.timeout_s))


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _email(data: Any) -> EmailConfig:
    keys = ["host", "port", "security", "user", "password_file", "from", "to", "timeout_s"]
    t = Table(data, "alerts.email", keys)
    to = t.items("to", _address)
    if not to:
        raise ConfigError(t.key("to"), "must list at least one address")
    user = t.string("user", "", empty=True)
    password_file = t.get("password_file", "")
    if password_file != "":
        password_file = abspath_value(password_file, t.key("password_file"))
    if user and not password_file:
        raise ConfigError(t.key("password_file"), f'is required with user = "{user}" (the '
                          "file holding the SMTP password; the password is never in this "
                          "file)")  # fmt: skip
    if password_file and not user:
        raise ConfigError(t.key("user"), "is required with password_file")
    host = host_value(t.get("host"), t.key("host"))
    security = t.choice("security", _SECURITY, "starttls")
    if user and security == "none" and not _loopback(host):
        raise ConfigError(t.key("security"), f'"none" with user = "{user}" would send the '
                          f"SMTP password in clear to {host}: use starttls or ssl (none is "
                          "allowed with a user only for a relay on this server)")  # fmt: skip
    return EmailConfig(
        host=host,
        sender=_address(t.get("from"), t.key("from")),
        to=to,
        port=t.integer("port", 0, lo=1, hi=65535) if "port" in t.data else 0,
        security=security,
        user=user,
        password_file=password_file,
        timeout_s=_timeout(t, EmailConfig.timeout_s),
    )


def parse_alerts(data: Any) -> AlertsConfig:
    t = Table(data, "alerts", ["events", "settle_s", "batch_s", "hook", "email"])
    events = t.items("events", _event) if "events" in t.data else ALERT_EVENTS
    if len(set(events)) != len(events):
        raise bad(t.key("events"), "a list without duplicates", list(events))
    settle = t.number("settle_s", AlertsConfig.settle_s)
    if settle > 3600:
        raise bad(t.key("settle_s"), "a number > 0 and <= 3600", settle)
    batch = t.get("batch_s", AlertsConfig.batch_s)
    if type(batch) not in (int, float) or not 0 <= batch <= MAX_BATCH_S:
        raise bad(t.key("batch_s"), f"a number >= 0 and <= {MAX_BATCH_S:g} (0: every alert "
                  "in a message of its own)", batch)  # fmt: skip
    return AlertsConfig(
        events=events,
        settle_s=settle,
        batch_s=float(batch),
        hook=_hook(t.get("hook")) if "hook" in t.data else None,
        email=_email(t.get("email")) if "email" in t.data else None,
    )


def _event(value: Any, key: str) -> str:
    if value not in ALERT_EVENTS:
        raise bad(key, "one of " + ", ".join(f'"{e}"' for e in ALERT_EVENTS), value)
    return value
