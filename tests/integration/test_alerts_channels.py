"""The alert channels against real receivers (docs/alerts.md): the hook as a real process
reading its environment and stdin, e-mail through smtplib to a real SMTP server on a local
port (tests/smtp_sink.py) in plain, STARTTLS and implicit-TLS modes with a login, and the
dispatcher never holding up the event loop while a mail server hangs."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import ssl
import sys
from pathlib import Path

import pytest

from node_agent.alerts.dispatcher import AlertDispatcher
from node_agent.alerts.hook import HookError, run_hook
from node_agent.alerts.mail import EmailError, send_email
from node_agent.alerts.policy import Alert, AlertKind
from node_agent.config.load import parse_config
from node_agent.config.model import AlertsConfig, ClusterConfig, EmailConfig, HookConfig
from node_agent.core.states import Readiness, State
from node_agent.core.transitions import LogRecord
from node_agent.engine.logbook import LogBook
from protos.security.ca import create_ca, issue_certificate
from tests.smtp_sink import SmtpSink
from tests.unit.test_config import BASE

ALERT = Alert(AlertKind.FAILOVER, "web", "node2", "node1", "ALONE/READY", "peer-lost",
              "module web: node2 took over (peer silent); it runs without a secondary",
              1_800_000_000.0)  # fmt: skip
DUMP = (
    "import json, os, sys; "
    "env = {k: v for k, v in os.environ.items() if k.startswith('MIRRORPAIR_')}; "
    "open(sys.argv[1], 'a').write(json.dumps({'env': env, 'stdin': sys.stdin.read()}) + '\\n')"
)


def hook_to(path: Path, timeout_s: float = 10.0) -> HookConfig:
    return HookConfig((sys.executable, "-c", DUMP, str(path)), timeout_s)


def test_the_hook_gets_the_alert_in_its_environment_and_as_json(tmp_path: Path) -> None:
    out = tmp_path / "hook.jsonl"
    asyncio.run(run_hook(hook_to(out), ALERT, "prod"))
    (got,) = [json.loads(line) for line in out.read_text().splitlines()]
    env = got["env"]
    assert env["MIRRORPAIR_ALERT"] == "failover" and env["MIRRORPAIR_MODULE"] == "web"
    assert (env["MIRRORPAIR_NODE"], env["MIRRORPAIR_PEER"]) == ("node2", "node1")
    assert env["MIRRORPAIR_STATE"] == "ALONE/READY" and env["MIRRORPAIR_CAUSE"] == "peer-lost"
    assert env["MIRRORPAIR_CLUSTER"] == "prod" and env["MIRRORPAIR_MESSAGE"] == ALERT.message
    assert env["MIRRORPAIR_TIME"] == "2027-01-15T08:00:00Z"
    data = json.loads(got["stdin"])
    assert data["kind"] == "failover" and data["module"] == "web" and data["cluster"] == "prod"


def test_a_failing_missing_or_hung_hook_is_an_error_saying_why(tmp_path: Path) -> None:
    fail = HookConfig((sys.executable, "-c", "print('no pager'); raise SystemExit(3)"))
    with pytest.raises(HookError, match="exited with 3: no pager"):
        asyncio.run(run_hook(fail, ALERT, "prod"))
    with pytest.raises(HookError, match="cannot run /nonexistent/pager"):
        asyncio.run(run_hook(HookConfig(("/nonexistent/pager",)), ALERT, "prod"))
    # A hook that hangs, with a child of its own: both are killed at the timeout.
    pidfile = tmp_path / "child.pid"
    hang = HookConfig(("sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"), timeout_s=2)
    with pytest.raises(HookError, match="did not finish within 2 s: killed"):
        asyncio.run(run_hook(hang, ALERT, "prod"))
    if pidfile.exists() and pidfile.read_text().strip():  # (a loaded machine: maybe not yet)
        child = int(pidfile.read_text())
        assert asyncio.run(_gone(child)), f"the hook's child {child} survived its timeout"


def _proc_state(pid: int) -> str:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "Z"
    return next(line for line in status.splitlines() if line.startswith("State:"))


# -- e-mail ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting its CA) for localhost."""
    d = tmp_path_factory.mktemp("smtp-pki")
    create_ca(d, "smtp-test")
    cert, key = issue_certificate(d, "smtp", d, client=False)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(d / "ca.pem"))
    return server, client


def email(port: int, **kw: object) -> EmailConfig:
    to = ("ops@example.com", "oncall@example.com")
    base = {"host": "localhost", "sender": "mp@example.com", "to": to, "port": port,
            "security": "none"}  # fmt: skip
    return EmailConfig(**{**base, **kw})  # type: ignore[arg-type]


def test_plain_smtp_delivers_the_alert_with_a_subject_naming_it() -> None:
    async def go() -> list:
        async with SmtpSink() as sink:
            await asyncio.to_thread(send_email, email(sink.port), ALERT, "prod")
            return sink.messages

    (msg,) = asyncio.run(go())
    assert msg.mail_from == "mp@example.com"
    assert msg.rcpt == ["ops@example.com", "oncall@example.com"]
    assert "Subject: [MirrorPair prod] FAILOVER: module web on node2" in msg.data
    assert ALERT.message in msg.data and "peer-lost" in msg.data and not msg.tls


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_and_login_with_the_password_from_its_file(
    security: str, tls: tuple[ssl.SSLContext, ssl.SSLContext], tmp_path: Path
) -> None:
    server, client = tls
    (tmp_path / "pw").write_text("s3cret\n")
    mode = {"starttls": server} if security == "starttls" else {"implicit_tls": server}

    async def go(password_file: Path) -> list:
        async with SmtpSink(users={"mp": "s3cret"}, **mode) as sink:  # type: ignore[arg-type]
            cfg = email(sink.port, security=security, user="mp", password_file=str(password_file))
            await asyncio.to_thread(send_email, cfg, ALERT, "prod", client)
            return sink.messages

    (msg,) = asyncio.run(go(tmp_path / "pw"))
    assert msg.tls and msg.user == "mp" and "FAILOVER: module web on node2" in msg.data
    (tmp_path / "bad").write_text("wrong")
    with pytest.raises(EmailError, match="Authentication|535"):
        asyncio.run(go(tmp_path / "bad"))
    with pytest.raises(EmailError, match="alerts.email.password_file: cannot read"):
        asyncio.run(go(tmp_path / "missing"))


def test_a_server_that_does_not_trust_us_or_answer_is_an_error(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server, _client = tls

    async def go() -> None:
        async with SmtpSink(starttls=server) as sink:  # the system CAs do not know this one
            await asyncio.to_thread(send_email, email(sink.port, security="starttls"), ALERT, "p")

    with pytest.raises(EmailError, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(go())


# -- the dispatcher ----------------------------------------------------------------------
def _record(t: float, old: State, new: State, ready: Readiness, cause: str,
            module: str = "web") -> LogRecord:  # fmt: skip
    msg = f"{old.name}/X -> {new.name}/{ready.name}: reason {cause}"
    return LogRecord(t, module, "INFO", msg, cause, "", old, new, Readiness.READY, ready)


def test_a_server_taking_over_many_modules_sends_one_mail_and_a_hook_run_each(
    tmp_path: Path,
) -> None:
    base = parse_config(BASE)
    out = tmp_path / "hook.jsonl"
    modules = [f"m{i}" for i in range(12)]

    async def go() -> tuple[list, list[str]]:
        async with SmtpSink() as sink:
            # A slow hook (0.3 s a run, 3.6 s for all) must not split the mail.
            slow = HookConfig((sys.executable, "-c", "import time; time.sleep(0.3); " + DUMP,
                               str(out)))  # fmt: skip
            alerts = AlertsConfig(hook=slow, email=email(sink.port), batch_s=1)
            cfg: ClusterConfig = dataclasses.replace(base, alerts=alerts)
            book = LogBook("node2", None)
            d = AlertDispatcher(lambda: cfg, "node2", "node1", book)
            runner = asyncio.create_task(d.run())
            for i, m in enumerate(modules):
                d.observe(_record(100.0 + i / 10, State.STOP, State.SECOND, Readiness.READY,
                                  "peer-primary", m))  # fmt: skip
                d.observe(_record(101.0 + i / 10, State.SECOND, State.ALONE, Readiness.READY,
                                  "peer-lost", m))  # fmt: skip
            lines = lambda: out.read_text().splitlines() if out.exists() else []  # noqa: E731
            while not sink.messages or len(lines()) < len(modules):
                await asyncio.sleep(0.05)
            await asyncio.sleep(2.5)  # more than the window and a tick: no second mail
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            return sink.messages, [e.message for e in book.query()]

    messages, log = asyncio.run(go())
    (mail,) = messages
    assert f"Subject: [MirrorPair {base.name}] FAILOVER: 12 modules on node2" in mail.data
    for m in modules:
        assert f"module {m}: node2 took over" in mail.data
    hooked = [json.loads(line)["env"]["MIRRORPAIR_MODULE"] for line in out.read_text().splitlines()]
    assert hooked == modules  # the hook: once per alert, in order
    mailed = [m for m in log if "e-mailed to" in m]
    assert len(mailed) == 12 and all("(one message with 11 other alerts)" in m for m in mailed)


def test_the_dispatcher_sends_on_every_channel_and_a_hung_server_holds_nothing_up(
    tmp_path: Path,
) -> None:
    base = parse_config(BASE)
    out = tmp_path / "hook.jsonl"

    async def go() -> tuple[list, list[str], int]:
        silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)  # never answers
        hung = silent.sockets[0].getsockname()[1]
        async with SmtpSink() as sink:
            alerts = AlertsConfig(hook=hook_to(out), email=email(sink.port), settle_s=1)
            cfg: ClusterConfig = dataclasses.replace(base, alerts=alerts)
            book = LogBook("node2", None)
            d = AlertDispatcher(lambda: cfg, "node2", "node1", book)
            runner = asyncio.create_task(d.run())
            d.observe(_record(100.0, State.STOP, State.SECOND, Readiness.READY, "peer-primary"))
            d.observe(_record(101.0, State.SECOND, State.ALONE, Readiness.READY, "peer-lost"))
            while len(sink.messages) < 1 or not out.exists():
                await asyncio.sleep(0.05)
            # Now a mail server that accepts and never answers: the loop keeps turning.
            cfg = dataclasses.replace(cfg, alerts=dataclasses.replace(
                alerts, email=email(hung, timeout_s=1.5)))  # fmt: skip
            ticks = 0
            d.observe(_record(102.0, State.ALONE, State.STOP, Readiness.NOT_READY, "stop"))
            d.observe(_record(103.0, State.STOP, State.WAIT, Readiness.NOT_READY, "split-brain"))
            while not any("e-mail failed" in e.message for e in book.query()):
                ticks += 1
                await asyncio.sleep(0.01)
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            silent.close()
            return sink.messages, [e.message for e in book.query()], ticks

    messages, log, ticks = asyncio.run(go())
    assert ["FAILOVER" in m.data for m in messages] == [True]
    hooked = [json.loads(line)["env"]["MIRRORPAIR_ALERT"] for line in out.read_text().splitlines()]
    assert hooked == ["failover", "split-brain"]
    assert "alert failover: e-mailed to ops@example.com, oncall@example.com" in log
    assert any(m.startswith("alert failover: hook ") and m.endswith(" run") for m in log)
    assert any(m.startswith("alert split-brain: e-mail failed: SMTP localhost:") for m in log)
    assert ticks > 10  # the loop ran on while smtplib waited on the hung server


def test_mails_held_for_company_leave_when_the_agent_stops(tmp_path: Path) -> None:
    base = parse_config(BASE)
    out = tmp_path / "hook.jsonl"

    async def go() -> tuple[list, list]:
        async with SmtpSink() as sink:
            alerts = AlertsConfig(hook=hook_to(out), email=email(sink.port), batch_s=300)
            cfg: ClusterConfig = dataclasses.replace(base, alerts=alerts)
            d = AlertDispatcher(lambda: cfg, "node2", "node1", LogBook("node2", None))
            runner = asyncio.create_task(d.run())

            def take_over(module: str) -> None:
                d.observe(_record(100.0, State.STOP, State.SECOND, Readiness.READY,
                                  "peer-primary", module))  # fmt: skip
                d.observe(_record(101.0, State.SECOND, State.ALONE, Readiness.READY,
                                  "peer-lost", module))  # fmt: skip

            take_over("web")
            while not out.exists():  # the hook ran: the alert is held for the e-mail
                await asyncio.sleep(0.05)
            assert not sink.messages
            d.flush_mails()  # the agent begins to stop (before its modules)
            for _ in range(200):
                if sink.messages:
                    break
                await asyncio.sleep(0.05)
            first = list(sink.messages)
            take_over("db")
            runner.cancel()  # ... and stops, 300 s before this mail was due
            await asyncio.gather(runner, return_exceptions=True)
            return first, sink.messages

    first, mails = asyncio.run(go())
    assert len(first) == 1 and "FAILOVER: module web on node2" in first[0].data
    assert len(mails) == 2 and "FAILOVER: module db on node2" in mails[1].data


def test_a_cancelled_hook_leaves_no_process_behind(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    hang = HookConfig(("sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"), timeout_s=60)

    async def go() -> None:
        task = asyncio.create_task(run_hook(hang, ALERT, "prod"))
        while not pidfile.exists() or not pidfile.read_text().strip():
            await asyncio.sleep(0.02)
        task.cancel()  # the agent stops
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    child = int(pidfile.read_text())
    assert asyncio.run(_gone(child)), f"hook child {child} still runs after the cancel"


async def _gone(pid: int, polls: int = 200) -> bool:
    for _ in range(polls):
        if "Z" in _proc_state(pid):
            return True
        await asyncio.sleep(0.05)
    return False


def test_the_dispatcher_says_at_start_what_would_make_every_alert_fail(tmp_path: Path) -> None:
    alerts = AlertsConfig(
        hook=HookConfig(("/nonexistent/pager",)),
        email=email(25, user="mp", password_file=str(tmp_path / "missing")),
    )
    cfg = dataclasses.replace(parse_config(BASE), alerts=alerts)
    book = LogBook("node1", None)
    problems = AlertDispatcher(lambda: cfg, "node1", "node2", book).check()
    assert (
        problems[0] == "alerts.hook.command: /nonexistent/pager is not an executable program here"
    )
    assert problems[1].startswith("alerts.email.password_file: cannot read")
    assert [e.level for e in book.query()] == ["ERROR", "ERROR"]
    ok = dataclasses.replace(cfg, alerts=AlertsConfig(hook=HookConfig((sys.executable,))))
    assert AlertDispatcher(lambda: ok, "node1", "node2", book).check() == []
