"""GetConfig masks the cluster secret in every TOML string form."""

from __future__ import annotations

import tomllib

import pytest

from node_agent.api.servicer import mask_secret

SECRET = "s3cr3t-value-0123456789"


@pytest.mark.parametrize(
    "line",
    [
        f'secret = "{SECRET}"',
        f"secret='{SECRET}'",
        f'  secret   =   "{SECRET}"   # heartbeat key',
        f'"secret" = "{SECRET}"',
        f'secret = """{SECRET}"""',
        f"secret = '''\n{SECRET}\n'''",
        f'secret = "{SECRET}\\"quoted\\" part"',
        f'cluster.secret = "{SECRET}"',
        f'# secret = "{SECRET}"  (the old one)',
    ],
)
def test_secret_forms_are_masked(line: str) -> None:
    text = f'[cluster]\nname = "demo"\n{line}\nsecret_file_note = 1\n'
    masked = mask_secret(text)
    assert SECRET not in masked
    assert '"***"' in masked
    assert 'name = "demo"' in masked


def test_masked_text_is_still_valid_toml() -> None:
    text = f'[cluster]\nname = "demo"\nsecret = "{SECRET}"\npulse_ms = 500\n'
    doc = tomllib.loads(mask_secret(text))
    assert doc["cluster"] == {"name": "demo", "secret": "***", "pulse_ms": 500}


def test_secret_file_path_and_other_keys_are_kept() -> None:
    text = '[cluster]\nsecret_file = "/etc/mirrorpair/secret"\nmy_secret_note = "x"\n'
    assert mask_secret(text) == text


def test_known_value_is_masked_wherever_it_appears() -> None:
    text = f'[cluster]\nsecret = "{SECRET}"\n[[module]]\nstart = "run --key {SECRET}"\n'
    masked = mask_secret(text, SECRET.encode())
    assert SECRET not in masked
    assert 'start = "run --key ***"' in masked
