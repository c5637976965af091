"""`mirrorpair` argument parsing and the exit codes of local problems (no agents)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

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


def test_state_usage_errors_never_look_like_a_state() -> None:
    assert run("state")[0] == 12  # 2 would read as ALONE
    assert run("state", "web", "--node", "node3")[0] == 12
    assert run("status", "--bogus")[0] == 2  # other commands: the usual code


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
