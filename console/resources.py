"""Where the console's resources (style sheet, icons, module templates) are: no Qt here,
so the setup flow can read its templates without a display."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def resources_dir() -> Path:
    """$MIRRORPAIR_RESOURCES, the source checkout (or a PyInstaller bundle, which keeps the
    same layout), or <prefix>/share/mirrorpair when installed from a wheel."""
    candidates = [
        os.environ.get("MIRRORPAIR_RESOURCES", ""),
        str(Path(__file__).resolve().parents[1] / "resources"),
        os.path.join(sys.prefix, "share", "mirrorpair"),
    ]
    for c in candidates:
        if c and (Path(c) / "style").is_dir():
            return Path(c)
    return Path(candidates[1])  # missing: the caller copes (Fusion defaults, no templates)
