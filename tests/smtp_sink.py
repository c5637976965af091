"""A small real SMTP server for tests (RFC 5321 subset): EHLO/HELO, STARTTLS, implicit TLS,
AUTH PLAIN/LOGIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT. Enough for smtplib, over real TCP.

In-process: ``async with SmtpSink(...) as sink`` then ``sink.messages``. As a process
(e.g. in a network namespace): ``python -m tests.smtp_sink HOST PORT DIR`` writes each
message to DIR/<n>.json ({mail_from, rcpt, user, tls, data}) once it is complete.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Received:
    mail_from: str
    rcpt: list[str]
    data: str
    user: str = ""  # who logged in ("" if nobody)
    tls: bool = False


@dataclass
class SmtpSink:
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port (see .port once started)
    starttls: ssl.SSLContext | None = None  # offer STARTTLS with this server context
    implicit_tls: ssl.SSLContext | None = None  # TLS from the first byte (SMTPS)
    users: dict[str, str] = field(default_factory=dict)  # AUTH required when not empty
    out_dir: Path | None = None
    messages: list[Received] = field(default_factory=list)

    async def __aenter__(self) -> SmtpSink:
        self._server = await asyncio.start_server(
            self._session, self.host, self.port, ssl=self.implicit_tls
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def serve_forever(self) -> None:
        async with self:
            print(f"smtp sink listening on {self.host}:{self.port}", flush=True)
            await self._server.serve_forever()

    def _store(self, msg: Received) -> None:
        self.messages.append(msg)
        if self.out_dir is not None:
            path = self.out_dir / f"{len(self.messages)}.json"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(msg)))
            tmp.rename(path)  # a reader never sees half a message

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tls = self.implicit_tls is not None
        user, mail_from, rcpt = "", "", []

        async def say(*lines: str) -> None:
            writer.write("".join(f"{line}\r\n" for line in lines).encode())
            await writer.drain()

        async def ask(prompt: str) -> str:
            await say(f"334 {prompt}")
            return base64.b64decode((await reader.readline()).strip()).decode()

        try:
            await say("220 sink ESMTP")
            while line := await reader.readline():
                verb, _, arg = line.decode().rstrip("\r\n").partition(" ")
                verb = verb.upper()
                if verb in ("EHLO", "HELO"):
                    caps = ["sink", "8BITMIME"]
                    caps += ["STARTTLS"] if self.starttls and not tls else []
                    caps += ["AUTH PLAIN LOGIN"] if self.users else []
                    await say(*[f"250-{c}" for c in caps[:-1]], f"250 {caps[-1]}")
                elif verb == "STARTTLS" and self.starttls and not tls:
                    await say("220 go ahead")
                    await writer.start_tls(self.starttls)
                    tls, user, mail_from, rcpt = True, "", "", []
                elif verb == "AUTH":
                    mech, _, initial = arg.partition(" ")
                    if mech.upper() == "PLAIN":
                        raw = base64.b64decode(initial).decode() if initial else await ask("")
                        _, name, password = raw.split("\0")
                    else:
                        name = await ask("VXNlcm5hbWU6")
                        password = await ask("UGFzc3dvcmQ6")
                    if self.users.get(name) == password:
                        user = name
                        await say("235 ok")
                    else:
                        await say("535 authentication failed")
                elif verb == "MAIL":
                    if self.users and not user:
                        await say("530 authentication required")
                        continue
                    mail_from, rcpt = arg.partition(":")[2].split()[0].strip("<>"), []
                    await say("250 ok")
                elif verb == "RCPT":
                    rcpt.append(arg.partition(":")[2].strip().strip("<>"))
                    await say("250 ok")
                elif verb == "DATA":
                    await say("354 end with .")
                    lines = []
                    while (row := await reader.readline()) not in (b".\r\n", b""):
                        lines.append(row[1:] if row.startswith(b"..") else row)
                    self._store(Received(mail_from, rcpt, b"".join(lines).decode(), user, tls))
                    await say("250 queued")
                elif verb == "RSET":
                    mail_from, rcpt = "", []
                    await say("250 ok")
                elif verb == "NOOP":
                    await say("250 ok")
                elif verb == "QUIT":
                    await say("221 bye")
                    break
                else:
                    await say("502 not implemented")
        except (ConnectionError, ssl.SSLError, ValueError):
            pass
        finally:
            writer.close()


def main(argv: list[str]) -> None:
    host, port, out = argv
    Path(out).mkdir(parents=True, exist_ok=True)
    asyncio.run(SmtpSink(host, int(port), out_dir=Path(out)).serve_forever())


if __name__ == "__main__":
    main(sys.argv[1:])
