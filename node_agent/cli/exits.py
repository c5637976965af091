"""The exit codes of `mirrorpair`: one per kind of outcome, the same on every command.

0-9 are answers (success; `state` exits with the state, `verify` with 1 when the copies
differ); every failure is 10 or more, so a script reading `state`'s code can never take
a failure for a state. ``EPILOG`` is what `mirrorpair --help` prints; README.md repeats it.
"""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    DIFFERENT = 1  # verify: the two copies differ (an answer, like diff's 1)
    UNREACHABLE = 10  # an agent could not be reached, or refused our TLS
    UNKNOWN_MODULE = 11
    LOCAL = 12  # config, certificate files, which node this is, a demo folder: nothing asked
    REFUSED = 13  # the agent refused, or the command cannot be routed in the current states
    NOT_CONFIRMED = 14  # answered no, or no terminal to ask on and no --yes
    WAIT_FAILED = 15  # --wait: not finished within --wait-timeout
    USAGE = 16  # unknown command or option, missing or bad argument
    NO_CONSOLE = 17  # the console extra is not installed, or no display to open it on
    INTERRUPTED = 130  # Ctrl-C (what a shell reports for SIGINT)


EPILOG = """\
exit codes (the same on every command):
  0    success
  0-5  state MODULE: the state, STOP 0, WAIT 1, ALONE 2, PRIM 3, SECOND 4, UP 5
  1    verify MODULE: the two copies differ
  10   an agent could not be reached (down, wrong address, TLS refused, no answer in time)
  11   unknown module
  12   local problem, nothing was asked: config file, certificate files, which node
       this is (--node), the demo's folder
  13   refused: by the agent, or not possible in the current states (e.g. no primary)
  14   not confirmed: answered no, or no terminal to ask on and no --yes
  15   --wait: the command did not finish within --wait-timeout
  16   usage error: unknown command or option, missing or bad argument
  17   the desktop console cannot open: its extra is not installed, or no display
  130  interrupted (Ctrl-C)
"""
