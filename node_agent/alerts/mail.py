"""Send an alert by e-mail over SMTP (smtplib, blocking: the dispatcher runs it in a
worker thread). The password is read from ``password_file`` at each send."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from node_agent.alerts.hook import alert_fields
from node_agent.alerts.policy import Alert
from node_agent.config.model import EmailConfig


class EmailError(RuntimeError):
    pass


def subject(alert: Alert, cluster: str) -> str:
    return (f"[MirrorPair {cluster}] {alert.kind.value.upper()}: module {alert.module} "
            f"on {alert.node}")  # fmt: skip


def build_message(cfg: EmailConfig, alert: Alert, cluster: str) -> EmailMessage:
    fields = alert_fields(alert, cluster)
    msg = EmailMessage()
    msg["Subject"] = subject(alert, cluster)
    msg["From"], msg["To"] = cfg.sender, ", ".join(cfg.to)
    msg["Date"] = formatdate(alert.time, localtime=False)
    msg["Message-ID"] = make_msgid("mirrorpair")
    body = [alert.message, ""]
    body += [f"{k:8} {fields[k]}" for k in ("cluster", "module", "node", "peer", "state",
                                            "cause", "kind", "time")]  # fmt: skip
    msg.set_content("\n".join(body) + "\n")
    return msg


def _password(cfg: EmailConfig) -> str:
    try:
        return Path(cfg.password_file).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise EmailError(f"alerts.email.password_file: cannot read {cfg.password_file}: "
                         f"{exc}") from None  # fmt: skip


def send_email(cfg: EmailConfig, alert: Alert, cluster: str,
               context: ssl.SSLContext | None = None) -> None:  # fmt: skip
    """Blocking. ``context``: TLS settings (default: the system's CAs, hostname checked)."""
    msg = build_message(cfg, alert, cluster)
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
