"""``[metrics] listen`` (docs/metrics.md): parsed, checked against the nodes' ports,
errors naming the key, and a change applied live."""

from __future__ import annotations

import pytest

from node_agent.config.changes import diff
from node_agent.config.load import load_config, parse_config
from node_agent.config.table import ConfigError
from tests.unit.metrics_example import example_with_metrics
from tests.unit.test_config import BASE, EXAMPLE


def with_metrics(body: str, version: int = 1) -> str:
    text = BASE.replace("[cluster]\n", f"[cluster]\nversion = {version}\n", 1)
    return text + f"\n[metrics]\n{body}\n"


def test_absent_or_empty_is_off() -> None:
    assert parse_config(BASE).metrics.listen == ""
    assert parse_config(with_metrics('listen = ""')).metrics.listen == ""


@pytest.mark.parametrize("listen", ["0.0.0.0:9780", "[::]:9780", "127.0.0.1:1", "mon.lan:9100"])
def test_listen_is_a_host_port(listen: str) -> None:
    assert parse_config(with_metrics(f'listen = "{listen}"')).metrics.listen == listen


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('listen = "9780"', "must be host:port"),
        ('listen = "0.0.0.0:70000"', "must be host:port"),
        ("listen = 9780", "must be a string"),
        ('port = "9780"', 'unknown key "port"'),
    ],
)
def test_bad_values_name_the_key(body: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(with_metrics(body))
    assert e.value.key.startswith("metrics.") and fragment in str(e.value)


def test_a_port_of_the_api_or_replication_is_refused() -> None:
    cfg = parse_config(BASE)
    api_port = cfg.nodes["node2"].api.rpartition(":")[2]
    host, repl_port = cfg.nodes["node1"].replication_address
    for listen in (f"0.0.0.0:{api_port}", f"{host}:{repl_port}"):
        with pytest.raises(ConfigError) as e:
            parse_config(with_metrics(f'listen = "{listen}"'))
        assert e.value.key == "metrics.listen" and "is already nodes." in str(e.value)
    # Another address on the same port is another listener: allowed.
    assert parse_config(with_metrics(f'listen = "192.0.2.9:{api_port}"')).metrics.listen


def test_the_example_offers_metrics_turned_off() -> None:
    assert load_config(EXAMPLE).metrics.listen == ""  # an older agent would refuse it
    assert parse_config(example_with_metrics()).metrics.listen == "0.0.0.0:9780"


def test_a_change_applies_live() -> None:
    old = parse_config(with_metrics('listen = "0.0.0.0:9780"'))
    new = parse_config(with_metrics('listen = "0.0.0.0:9781"', version=2))
    d = diff(old, new)
    assert d.live and d.cluster == ("metrics.listen",) and "change metrics.listen" in d.describe()
