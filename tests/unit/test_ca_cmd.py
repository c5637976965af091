"""``mirrorpair ca init`` / ``ca issue`` through a real argparse parser."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from node_agent.cli.ca_cmd import add_parsers


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="mirrorpair")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_init_and_issue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca = tmp_path / "ca"
    assert run("ca", "init", "--dir", str(ca), "--cluster", "demo") == 0
    out = capsys.readouterr().out
    assert str(ca / "ca.pem") in out and str(ca / "ca.key") in out

    argv = ["ca", "issue", "--dir", str(ca), "--name", "node1", "--ip", "10.0.0.1"]
    assert run(*argv, "--dns", "n1.example", "--out", str(tmp_path / "n")) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "n" / "node1.pem") in out and "mirrorpair-node1" in out
    cert = x509.load_pem_x509_certificate((tmp_path / "n" / "node1.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "n1.example" in san.get_values_for_type(x509.DNSName)

    assert run("ca", "issue", "--dir", str(ca), "--name", "admin", "--client-only") == 0
    assert str(ca / "admin.pem") in capsys.readouterr().out  # --out defaults to the CA dir
    cert = x509.load_pem_x509_certificate((ca / "admin.pem").read_bytes())
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_errors_exit_12_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 12: a local problem (files), as for every other command.
    assert run("ca", "issue", "--dir", str(tmp_path), "--name", "node1") == 12
    assert "ca.pem does not exist" in capsys.readouterr().err
    assert run("ca", "init", "--dir", str(tmp_path), "--cluster", "demo") == 0
    assert run("ca", "init", "--dir", str(tmp_path), "--cluster", "demo") == 12
    assert "refusing to overwrite" in capsys.readouterr().err
    assert run("ca", "init", "--dir", str(tmp_path), "--cluster", "demo", "--force") == 0


def test_bad_ip_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        run("ca", "issue", "--dir", str(tmp_path), "--name", "node1", "--ip", "nope")
    assert info.value.code == 2
    assert "not an IP address" in capsys.readouterr().err
