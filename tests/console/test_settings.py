"""The console's cluster list, its secrets (keyring or memory only), TLS identity."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from console.app import load_entries, parse_args
from console.client.credentials import PassphraseNeeded, TlsIdentity, build_credentials
from console.settings.clusters import (
    SettingsError,
    entry_from_cluster_toml,
    load_clusters,
    make_entry,
    save_clusters,
)
from console.settings.secrets import SERVICE, SecretStore
from node_agent.demo_cluster import build_demo_cluster
from protos.security.ca import load_private_key
from tests.keyrings import MemoryKeyring


def test_round_trip_and_no_secret_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mirrorpair" / "console.toml"
    assert load_clusters(path) == []
    a = make_entry(
        "site-a", "10.0.0.1:7700", "10.0.0.2:7700", "/c/ca.pem", "/c/me.pem", "/c/me.key"
    )
    b = make_entry("site-b", "h1:1", "h2:2", "~/ca.pem", "~/me.pem", "~/me.key")
    save_clusters(path, [a, b])
    assert load_clusters(path) == [a, b]
    text = path.read_text()
    assert "passphrase" not in text and "secret" not in text.split("\n", 1)[1]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[cluster]]\nname = "x"\n', "cluster[0].node1: a string is required"),
        (
            '[[cluster]]\nname="x"\nnode1="a"\nnode2="b:1"\nca="c"\ncert="d"\nkey="e"\n',
            "cluster[0].node1: expected host:port, got 'a'",
        ),
        (
            '[[cluster]]\nname="x y"\nnode1="a:1"\nnode2="b:1"\nca="c"\ncert="d"\nkey="e"\n',
            "cluster[0].name",
        ),
        (
            '[[cluster]]\nname="x"\nnode1="a:1"\nnode2="b:1"\nca="c"\ncert="d"\nkey="e"\n'
            'password="p"\n',
            "unknown key 'password'",
        ),
        ("[[cluster]\n", "console.toml"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "console.toml"
    path.write_text(body)
    with pytest.raises(SettingsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_clusters(path)


def test_entry_from_a_cluster_file_and_the_command_line(tmp_path: Path) -> None:
    demo = build_demo_cluster(tmp_path / "demo", name="hq")
    entry = entry_from_cluster_toml(demo.config_path, demo.admin_cert, demo.admin_key)
    assert entry.name == "hq" and entry.addresses == demo.api and entry.ca == demo.ca
    args = parse_args(
        [
            "--cluster-config",
            str(demo.config_path),
            "--cert",
            str(demo.admin_cert),
            "--key",
            str(demo.admin_key),
        ]
    )
    entries, settings = load_entries(args)
    assert entries == [entry] and settings is None  # nothing is saved in this mode
    with pytest.raises(SystemExit):
        parse_args(["--cluster-config", str(demo.config_path)])
    settings_file = tmp_path / "console.toml"
    assert load_entries(parse_args(["--config", str(settings_file)])) == ([], settings_file)


def test_secrets_go_to_the_keyring(memory_keyring: MemoryKeyring) -> None:
    store = SecretStore()
    assert store.available()
    assert store.set("site-a", "s3cret") is True
    assert memory_keyring.store[(SERVICE, "site-a:key-passphrase")] == "s3cret"
    assert SecretStore().get("site-a") == "s3cret"  # a new session reads it back
    store.delete("site-a")
    assert SecretStore().get("site-a") is None


def test_without_a_keyring_secrets_stay_in_memory(tmp_path: Path) -> None:
    store = SecretStore()  # this machine has no keyring backend
    assert not store.available()
    assert "No OS keyring" in store.unavailable_message()
    assert store.set("site-a", "s3cret") is False
    assert store.get("site-a") == "s3cret"  # for this session only
    assert SecretStore().get("site-a") is None


def test_encrypted_key_needs_its_passphrase(tmp_path: Path) -> None:
    demo = build_demo_cluster(tmp_path / "demo")
    key = load_private_key(demo.admin_key)
    locked = tmp_path / "locked.key"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"open sesame"),
        )
    )
    identity = TlsIdentity(demo.ca, demo.admin_cert, locked)
    with pytest.raises(PassphraseNeeded, match="is encrypted: enter its passphrase"):
        build_credentials(identity)
    with pytest.raises(PassphraseNeeded, match="wrong passphrase"):
        build_credentials(identity, "nope")
    assert build_credentials(identity, "open sesame") is not None
    assert build_credentials(TlsIdentity(demo.ca, demo.admin_cert, demo.admin_key))
    assert b"ENCRYPTED" in locked.read_bytes()  # never rewritten in clear
