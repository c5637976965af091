"""Earlier configuration versions (issue 12, point 6): restoring one applies its text again
as a new version (versions only grow), through the same two phases as any change."""

from __future__ import annotations

import re
from dataclasses import dataclass

_VERSION_RE = re.compile(r"(?m)^([ \t]*version[ \t]*=[ \t]*)\d+")


@dataclass(frozen=True)
class ConfigVersion:
    version: int
    applied_at: float  # unix time; 0 = unknown (installed by hand)
    applied_by: str  # the certificate that committed it
    running_on: tuple[str, ...] = ()  # the nodes that run it now


def with_version(text: str, version: int) -> str:
    """``text`` declaring [cluster] version ``version`` (the first ``version =`` line is
    the [cluster] table's: the configuration has no other)."""
    if _VERSION_RE.search(text):
        return _VERSION_RE.sub(lambda m: f"{m[1]}{version}", text, count=1)
    return text.replace("[cluster]\n", f"[cluster]\nversion = {version}\n", 1)
