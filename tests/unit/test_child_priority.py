"""Application commands at nice 0 / oom_score_adj 0 (node_agent.resources.child_priority):
the argv decided, and the wrapper run for real."""

from __future__ import annotations

import shutil
import subprocess

from hypothesis import given
from hypothesis import strategies as st

from node_agent.resources.child_priority import RESET_OOM, Priority, at_default_priority

CMD = ["/bin/sh", "-c", "myapp &"]


def test_an_agent_at_the_defaults_runs_the_command_as_it_is():
    assert at_default_priority(CMD, Priority(0, 0), "/usr/bin/nice") == CMD
    assert at_default_priority(CMD, Priority(0, None), "/usr/bin/nice") == CMD


def test_a_favoured_agent_undoes_both():
    argv = at_default_priority(CMD, Priority(-5, -900), "/usr/bin/nice")
    assert argv == ["/bin/sh", "-c", RESET_OOM, "sh", "/usr/bin/nice", "-n", "5", *CMD]


@given(st.integers(-20, 19), st.one_of(st.none(), st.integers(-1000, 1000)))
def test_only_values_below_zero_are_undone(nice, oom):
    argv = at_default_priority(CMD, Priority(nice, oom), "/usr/bin/nice")
    assert argv[-3:] == CMD
    assert ("/usr/bin/nice" in argv) == (nice < 0)
    assert (RESET_OOM in argv) == (oom is not None and oom < 0)
    if nice < 0:
        assert argv[argv.index("/usr/bin/nice") + 2] == str(-nice)


def test_no_nice_command_still_resets_the_oom_adjustment():
    assert at_default_priority(CMD, Priority(-5, -900), None) == [
        "/bin/sh", "-c", RESET_OOM, "sh", *CMD]  # fmt: skip


def test_the_wrapper_gives_a_forked_daemon_nice_0_and_oom_0():
    """Run for real from a process at nice -5 and oom_score_adj 300 (below 0 needs
    CAP_SYS_RESOURCE, which a container may lack; the write is the same): the command's
    background child reads 0 and 0."""
    nice_bin = shutil.which("nice")
    choom = shutil.which("choom")
    assert nice_bin and choom, "coreutils nice and util-linux choom are needed"
    probe = ("sleep 5 & p=$!; set -- $(sed 's/.*) //' /proc/$p/stat); "
             'echo "${17} $(cat /proc/$p/oom_score_adj)"; kill $p')  # fmt: skip
    argv = at_default_priority(["/bin/sh", "-c", probe], Priority(-5, -900), nice_bin)
    r = subprocess.run([nice_bin, "-n", "-5", choom, "-n", "300", "--", *argv],
                       capture_output=True, text=True, timeout=30)  # fmt: skip
    assert r.returncode == 0 and r.stdout.split() == ["0", "0"], (r.stdout, r.stderr)
