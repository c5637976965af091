"""Send alerts by e-mail over SMTP (smtplib, blocking: the dispatcher runs it in a worker
thread): one alert as it always was, or a batch of them (batch.py) in one message. The
password is read from ``password_file`` at each send."""

from __future__ import annotations

import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from node_agent.alerts.batch import Batch
from node_agent.alerts.hook import alert_fields
from node_agent.alerts.policy import Alert
from node_agent.config.model import EmailConfig

FIELDS = ("cluster", "module", "node", "peer", "state", "cause", "kind", "time")


class EmailError(RuntimeError):
    pass


def subject(alerts: Alert | Batch, cluster: str) -> str:
    batch = alerts if isinstance(alerts, Batch) else Batch((alerts,))
    first, n = batch.first, len(batch.alerts)
    if n == 1:
        return (f"[MirrorPair {cluster}] {first.kind.value.upper()}: module {first.module} "
                f"on {first.node}")  # fmt: skip
    counts = batch.counts()
    modules = len({a.module for a in batch.alerts})
    if len(counts) == 1 and modules == n:
        return (f"[MirrorPair {cluster}] {first.kind.value.upper()}: {n} modules on "
                f"{first.node}")  # fmt: skip
    kinds = ", ".join(f"{kind.upper()} ({k})" for kind, k in counts)
    return f"[MirrorPair {cluster}] {n} alerts on {first.node}: {kinds}"


def build_message(cfg: EmailConfig, alerts: Alert | Batch, cluster: str) -> EmailMessage:
    batch = alerts if isinstance(alerts, Batch) else Batch((alerts,))
    msg = EmailMessage()
    msg["Subject"] = subject(batch, cluster)
    msg["From"], msg["To"] = cfg.sender, ", ".join(cfg.to)
    msg["Date"] = formatdate(batch.alerts[-1].time, localtime=False)
    msg["Message-ID"] = make_msgid("mirrorpair")
    if len(batch.alerts) == 1:
        fields = alert_fields(batch.first, cluster)
        body = [batch.first.message, ""] + [f"{k:8} {fields[k]}" for k in FIELDS]
    else:
        first, last = batch.first, batch.alerts[-1]
        span = f"{_hms(first.time)} and {_hms(last.time)} UTC"
        body = [f"{first.node} reports {len(batch.alerts)} alerts between {span}:", ""]
        body += [f"{_hms(a.time)}  {a.kind.value.upper():11} {a.message}" for a in batch.alerts]
        body += ["", f"{'cluster':8} {cluster}", f"{'node':8} {first.node}",
                 f"{'peer':8} {first.peer}"]  # fmt: skip
    msg.set_content("\n".join(body) + "\n")
    return msg


def _hms(t: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(t))


def _password(cfg: EmailConfig) -> str:
    try:
        return Path(cfg.password_file).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise EmailError(f"alerts.email.password_file: cannot read {cfg.password_file}: "
                         f"{exc}") from None  # fmt: skip


def send_email(cfg: EmailConfig, alerts: Alert | Batch, cluster: str,
               context: ssl.SSLContext | None = None) -> None:  # fmt: skip
    """Blocking. ``context``: TLS settings (default: the system's CAs, hostname checked)."""
    msg = build_message(cfg, alerts, cluster)
    password = _password(cfg) if cfg.user else ""
    tls = context or ssl.create_default_context()
    where = f"{cfg.host}:{cfg.smtp_port}"
    try:
        if cfg.security == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(cfg.host, cfg.smtp_port,
                                                  timeout=cfg.timeout_s, context=tls)  # fmt: skip
        else:
            smtp = smtplib.SMTP(cfg.host, cfg.smtp_port, timeout=cfg.timeout_s)
        with smtp:
            if cfg.security == "starttls":
                smtp.starttls(context=tls)
            if cfg.user:
                smtp.login(cfg.user, password)
            refused = smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:  # ssl.SSLError is an OSError
        raise EmailError(f"SMTP {where}: {exc}") from None
    if refused:
        raise EmailError(f"SMTP {where} refused {', '.join(sorted(refused))}")


def email_problem(cfg: EmailConfig) -> str:
    """What stops every send ("" if nothing seen), said at agent start."""
    if cfg.user:
        try:
            _password(cfg)
        except EmailError as exc:
            return str(exc)
    return ""
