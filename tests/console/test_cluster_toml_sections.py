"""An edit of the running file through the console keeps the top-level tables the
wizard does not know ([metrics], docs/metrics.md): console/setup/cluster_toml.py."""

from __future__ import annotations

from pathlib import Path

from console.setup.cluster_toml import parse_running, render
from node_agent.config.load import parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "resources" / "config" / "cluster.example.toml"


def test_metrics_survive_an_edit_of_the_running_file() -> None:
    plan = parse_running(EXAMPLE.read_text())
    assert plan.sections == {"metrics": {"listen": "0.0.0.0:9780"}}
    plan.version += 1
    again = parse_config(render(plan))
    assert again.metrics.listen == "0.0.0.0:9780"
    assert parse_running(render(plan)).sections == plan.sections


def test_no_other_tables_no_sections() -> None:
    text = EXAMPLE.read_text().replace('[metrics]\nlisten = "0.0.0.0:9780"\n', "")
    plan = parse_running(text)
    assert plan.sections == {}
    assert "[metrics]" not in render(plan)
    assert parse_config(render(plan)).metrics.listen == ""
