"""What a new configuration changes, and whether it can be applied while the agents run
(node_agent/config/changes.py)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node_agent.config.changes import Verdict, VersionError, check_version, diff, module_keys
from node_agent.config.load import parse_config
from node_agent.config.model import ClusterConfig, ModuleConfig
from tests.unit.test_config import BASE


def cfg(text: str = BASE, version: int = 1) -> ClusterConfig:
    return parse_config(text.replace("[cluster]\n", f"[cluster]\nversion = {version}\n", 1))


def module(name: str, **extra: str) -> str:
    lines = [f'name = "{name}"', 'kind = "app"', 'start = "s"', 'stop = "t"']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    return "\n[[module]]\n" + "\n".join(lines) + "\n"


def test_no_old_config_adds_every_module_live() -> None:
    d = diff(None, cfg(BASE + module("cache")))
    assert d.added == ("web", "db", "cache") and not d.removed and not d.changed and d.live
    assert d.describe() == ["add module web", "add module db", "add module cache"]


def test_identical_configs_differ_in_nothing() -> None:
    d = diff(cfg(), cfg(version=2))
    assert d.empty and d.live and d.describe() == []


def test_added_removed_and_changed_modules() -> None:
    old = cfg(BASE + module("extra") + module("cache"))
    new = cfg(BASE.replace('stop = "stop-web"', 'stop = "stop-web2"') + module("extra")
              + module("queue"), 2)  # fmt: skip
    d = diff(old, new)
    assert d.added == ("queue",) and d.removed == ("cache",)
    assert d.changed == {"web": ("stop",)} and d.live
    assert d.describe() == ["remove module cache", "restart module web (stop)", "add module queue"]


@pytest.mark.parametrize(
    ("old", "new", "keys"),
    [
        ('address = "10.0.0.100/24"', 'address = "10.0.0.101/24"', ("vip",)),
        (
            'directories = ["/srv/www"]',
            'directories = ["/srv/www", "/srv/img"]',
            ("directories",),
        ),  # fmt: skip
        ("maxloop = 3", 'maxloop = 4\nasync = "second"', ("maxloop", "async_mode")),
        ("defaultprim = false", "defaultprim = true", ("defaultprim",)),
    ],
)
def test_a_module_change_names_the_keys(old: str, new: str, keys: tuple[str, ...]) -> None:
    d = diff(cfg(), cfg(BASE.replace(old, new), 2))
    want = tuple("async" if k == "async_mode" else k for k in keys)
    assert d.changed == {"web": want} and d.live and not d.cluster


def test_a_checker_change_is_a_module_change() -> None:
    checker = '\n  [[module.checker]]\n  name = "up"\n  kind = "interface"\n  target = "eth0"\n'
    web_end = 'action = "restart"\n'
    d = diff(cfg(), cfg(BASE.replace(web_end, web_end + checker, 1), 2))
    assert d.changed == {"web": ("checker",)} and d.live


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('name = "demo"', 'name = "other"', "cluster.name"),
        (
            'secret = "0123456789abcdef-secret"',
            'secret = "another-secret-0123456"',
            "cluster.secret",
        ),  # fmt: skip
        ('data_dir = "/tmp/mp/{node}"', 'data_dir = "/tmp/mq/{node}"', "cluster.data_dir"),
        ('api = "127.0.0.2:7700"', 'api = "127.0.0.2:7710"', "nodes"),
        ('node2 = "10.0.0.2"', 'node2 = "10.0.0.3"', "heartbeat"),
        ('ping = ["10.0.0.254"]', 'ping = ["10.0.0.253"]', "witness"),
        ('ca = "/etc/mp/ca.pem"', 'ca = "/etc/mp/ca2.pem"', "tls"),
    ],
)
def test_cluster_keys_that_need_a_restart_are_refused_by_name(old: str, new: str,
                                                              key: str) -> None:  # fmt: skip
    d = diff(cfg(), cfg(BASE.replace(old, new), 2))
    assert not d.live and d.cluster == (key,)
    assert d.refused[0][0] == key and "restart both agents" in d.refusal()
    assert d.refusal().startswith(f"{key}: ")


@pytest.mark.parametrize(
    ("pulse", "timeout", "refused"),
    [
        (500, 3000, ()),  # unchanged
        (250, 3000, ()),  # faster pulse: always fine
        (1000, 3000, ()),  # 3 x 1000 <= the running 3000
        (1000, 6000, ()),
        (1001, 6000, ("cluster.pulse_ms",)),  # the peer's running timeout is 3000
        (500, 1500, ()),  # 3 running pulses of 500
        (400, 1200, ("cluster.timeout_ms",)),  # < 3 x the running 500
    ],
)
def test_timing_is_live_while_each_node_still_fits_the_other(
    pulse: int, timeout: int, refused: tuple[str, ...]
) -> None:
    new = BASE.replace("pulse_ms = 500", f"pulse_ms = {pulse}")
    new = new.replace("timeout_ms = 3000", f"timeout_ms = {timeout}")
    d = diff(cfg(), cfg(new, 2))
    assert tuple(k for k, _ in d.refused) == refused
    assert d.live == (not refused)


def test_versions() -> None:
    one, two = cfg(), cfg(version=2)
    assert check_version(None, one) is Verdict.NEWER
    assert check_version(one, two) is Verdict.NEWER
    assert check_version(two, cfg(version=2)) is Verdict.SAME
    with pytest.raises(VersionError, match="older than the running version 2"):
        check_version(two, one)
    other = cfg(BASE.replace("maxloop = 3", "maxloop = 5"), 2)
    with pytest.raises(VersionError, match="version 2 is running here with another text"):
        check_version(two, other)


# -- property: any two module sets ----------------------------------------------------------
names = st.sets(st.sampled_from(["a", "b", "c", "d", "e"]))
variant = st.sampled_from([{}, {"maxloop": "7"}, {"autostart": "false"}, {"check": '"c"'}])


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from("abcde"), variant),
       st.dictionaries(st.sampled_from("abcde"), variant))  # fmt: skip
def test_diff_partitions_the_modules(old_mods: dict, new_mods: dict) -> None:
    base = BASE.split("[[module]]")[0]
    old = cfg(base + "".join(module(n, **v) for n, v in old_mods.items()))
    new = cfg(base + "".join(module(n, **v) for n, v in new_mods.items()), 2)
    d = diff(old, new)
    assert set(d.added) == new_mods.keys() - old_mods.keys()
    assert set(d.removed) == old_mods.keys() - new_mods.keys()
    assert set(d.changed) == {n for n in old_mods.keys() & new_mods.keys()
                              if old_mods[n] != new_mods[n]}  # fmt: skip
    assert d.live and not d.cluster
    untouched = set(new_mods) - set(d.added) - set(d.changed)
    for n in untouched:  # nothing to do for them: the same ModuleConfig
        assert old.module(n) == new.module(n)


def test_every_module_field_is_compared() -> None:
    """A field added to ModuleConfig one day is a change too (nothing to forget)."""
    web = cfg().module("web")
    for f in dataclasses.fields(ModuleConfig):
        keys = module_keys(web, dataclasses.replace(web, **{f.name: object()}))
        assert len(keys) == 1 and keys[0] in (f.name, "async", "checker", "domain"), f.name


def test_a_peer_on_another_version_looks_the_same_to_the_automaton() -> None:
    """The version rides in every heartbeat (to be shown), but the automaton never sees
    it: a mismatch alone cannot move a module."""
    from node_agent.core.env import PeerView
    from node_agent.core.states import Readiness, State
    from node_agent.engine.convert import view_from_pb, view_to_pb

    view = PeerView(State.SECOND, Readiness.READY, True, ("g1",))
    assert view_from_pb(view_to_pb("web", view, 3)) == view_from_pb(view_to_pb("web", view, 4))


def test_alerts_change_live() -> None:
    hook = '\n[alerts.hook]\ncommand = ["/usr/local/bin/page"]\n'
    d = diff(cfg(BASE), cfg(BASE + hook, 2))
    assert d.live and d.cluster == ("alerts",) and d.describe() == ["change alerts"]
