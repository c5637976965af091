"""An edit of the running file through the console keeps the top-level tables the
wizard does not edit, [metrics] among them (docs/metrics.md): console/setup/cluster_toml.py."""

from __future__ import annotations

from console.setup.cluster_toml import parse_running, render
from node_agent.config.load import parse_config
from tests.unit.metrics_example import example_with_metrics


def test_metrics_survive_an_edit_of_the_running_file() -> None:
    plan = parse_running(example_with_metrics())
    assert plan.sections == {"metrics": {"listen": "0.0.0.0:9780"}}
    plan.version += 1
    again = parse_config(render(plan))
    assert again.metrics.listen == "0.0.0.0:9780"
    assert parse_running(render(plan)).sections == plan.sections
