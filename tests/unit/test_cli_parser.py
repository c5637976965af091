"""`mirrorpair` argument parsing and the exit codes of local problems (no agents)."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
from pathlib import Path

import pytest

from node_agent.cli.exits import EPILOG, Exit
from node_agent.cli.main import build_parser, main
from node_agent.demo_cluster import build_demo_cluster


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(argv))
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


def test_global_node_and_target_node_are_separate() -> None:
    args = build_parser().parse_args(["--node", "node1", "swap", "web", "--node", "node2"])
    assert (args.local_node, args.target_node, args.command) == ("node1", "node2", "swap")
    args = build_parser().parse_args(["second", "web", "--node", "node2", "--fullsync", "-y"])
    assert args.fullsync and args.yes
    with pytest.raises(SystemExit):
        build_parser().parse_args(["prim", "web", "--fullsync"])  # second only


def test_config_default_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIRRORPAIR_CONFIG", "/x/cluster.toml")
    assert build_parser().parse_args(["status"]).config == "/x/cluster.toml"
    monkeypatch.delenv("MIRRORPAIR_CONFIG")
    assert build_parser().parse_args(["status"]).config == "/etc/mirrorpair/cluster.toml"


def test_usage_errors_have_one_code_on_every_command() -> None:
    # 16 everywhere: argparse's usual 2 would read as ALONE from `state`.
    for argv in (
        ("state",),
        ("state", "web", "--node", "node3"),
        ("status", "--bogus"),
        ("prim", "web"),  # prim acts on one node: --node is required
        ("swap", "web", "--wait-timeout", "soon"),
        ("log", "--level", "LOUD"),
        ("ca", "issue", "--dir", "/x"),
        ("--timeout", "-1", "status"),
        (),
    ):
        rc, _, err = run(*argv)
        assert rc == Exit.USAGE == 16, (argv, rc, err)
        assert "usage: mirrorpair" in err, err


def test_a_misspelt_command_gets_a_suggestion() -> None:
    rc, _, err = run("stauts")
    assert rc == 16
    assert "unknown command 'stauts'; did you mean 'status'" in err, err
    rc, _, err = run("ca", "isue")
    assert rc == 16 and "did you mean 'issue'?" in err, err
    rc, _, err = run("frobnicate")  # nothing close: the list, no guess
    assert rc == 16 and "did you mean" not in err and "(commands: state, status," in err


def test_version() -> None:
    rc, out, _ = run("--version")
    assert rc == 0 and out == f"mirrorpair {importlib.metadata.version('mirrorpair')}\n"


def _subparsers(p: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser, str]]:
    """(name, parser, help in the command list) of every command, nested ones too."""
    found = []
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                found.append((name, sub, helps.get(name) or ""))
                found += _subparsers(sub)
    return found


def test_every_command_and_option_has_help() -> None:
    commands = _subparsers(build_parser())
    assert {"state", "status", "prim", "log", "verify", "console", "ca", "init", "demo"} <= {
        name for name, _, _ in commands
    }
    for name, parser, listed in commands:
        assert listed, f"{name} has no line in its parent's command list"
        assert parser.description, f"`{name} --help` has no description"
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"{name}: {action.option_strings or action.dest} has no help"


def test_exit_codes_are_documented_in_help_and_readme() -> None:
    rc, out, _ = run("--help")
    assert rc == 0
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for code in Exit:
        if code is Exit.OK:
            continue
        assert f"\n  {code.value:<4} " in out, f"exit {code.value} ({code.name}) not in --help"
        assert f"\n  {code.value:<4} " in readme, f"exit {code.value} ({code.name}) not in README"
    assert EPILOG in readme  # the README shows the same table
    # The states' codes stay what scripts rely on; every failure is above them.
    assert "STOP 0, WAIT 1, ALONE 2, PRIM 3, SECOND 4, UP 5" in out
    assert all(c >= 10 for c in Exit if c not in (Exit.OK, Exit.DIFFERENT))


def test_yes_means_the_same_before_and_after_the_command() -> None:
    parse = build_parser().parse_args
    assert parse(["--yes", "prim", "web", "--node", "node2"]).yes
    assert parse(["prim", "web", "--node", "node2", "-y"]).yes
    assert parse(["-y", "forcestop", "web", "--node", "node1"]).yes
    assert not parse(["prim", "web", "--node", "node2"]).yes
    assert parse(["--yes", "status"]).yes  # accepted everywhere, asks nothing there


def test_wait_timeout_implies_wait() -> None:
    args = build_parser().parse_args(["swap", "web", "--wait-timeout", "7"])
    assert args.wait_timeout == 7.0
    with pytest.raises(SystemExit):
        build_parser().parse_args(["start", "web", "--wait"])  # swap and migrate only


def test_missing_config_is_a_setup_error(tmp_path: Path) -> None:
    rc, _, err = run("--config", str(tmp_path / "none.toml"), "status")
    assert rc == 12 and "cannot read config file" in err


def test_unknown_local_node_for_node_paths(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MIRRORPAIR_NODE", raising=False)
    demo = build_demo_cluster(tmp_path / "demo")
    # Both demo API hosts are local: without --node the [tls] {node} paths are ambiguous.
    rc, _, err = run("--config", str(demo.config_path), "status")
    assert rc == 12 and "give --node" in err
    rc, _, err = run(
        "--config",
        str(demo.config_path),
        "--cert",
        str(tmp_path / "no.pem"),
        "--key",
        str(demo.admin_key),
        "status",
    )
    assert rc == 12 and "does not exist" in err


def test_nothing_listening_is_unreachable(tmp_path: Path) -> None:
    demo = build_demo_cluster(tmp_path / "demo")  # agents never started
    rc, out, _ = run(*demo.cli_args(), "status")
    assert rc == 10 and out.count("connection refused") == 2, out
    rc, _, err = run(*demo.cli_args(), "state", "web", "--node", "node2")
    assert rc == 10 and "agent node2 at 127.0.0.2:" in err and "connection refused" in err
    rc, _, err = run(*demo.cli_args(), "swap", "web")
    assert rc == 10


def test_ca_and_demo_are_registered(tmp_path: Path) -> None:
    rc, out, _ = run("ca", "init", "--dir", str(tmp_path), "--cluster", "c")
    assert rc == 0 and "created the CA" in out
    args = build_parser().parse_args(["demo", "--keep", "--no-console", "--dir", "/tmp/x"])
    assert args.keep and args.no_console and args.dir == Path("/tmp/x")
