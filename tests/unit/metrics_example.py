"""The example configuration with its commented-out ``[metrics]`` section turned on, as
an operator would (docs/metrics.md): for the tests of what that section changes."""

from __future__ import annotations

from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "resources" / "config" / "cluster.example.toml"
COMMENTED = '# [metrics]\n# listen = "0.0.0.0:9780"\n'


def example_with_metrics() -> str:
    text = EXAMPLE.read_text()
    assert COMMENTED in text, "the example no longer offers [metrics]: update this helper"
    return text.replace(COMMENTED, '[metrics]\nlisten = "0.0.0.0:9780"\n')
