"""Persistent per-module facts of one node (DESIGN §3) and their atomic store."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from node_agent.config.store import atomic_write


@dataclass(frozen=True)
class Facts:
    # A fresh module is empty on both nodes, hence identical and up to date.
    uptodate: bool = True
    generations: tuple[str, ...] = ()
    synctime: float = 0.0
    # The peer's latest generation when an admin forced this copy primary over it after a
    # split brain; "" once the peer resynced from this copy.
    kept_over: str = ""


class FactsError(ValueError):
    pass


def load_facts(path: Path) -> Facts:
    """Read a module's facts; a missing file means a fresh module."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return Facts()
    except (OSError, ValueError) as exc:
        raise FactsError(f"cannot read module facts {path}: {exc}") from exc
    try:
        return Facts(
            uptodate=bool(raw["uptodate"]),
            generations=tuple(str(g) for g in raw["generations"]),
            synctime=float(raw["synctime"]),
            kept_over=str(raw.get("kept_over", "")),  # absent before this field existed
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise FactsError(f"module facts {path} are malformed: {exc}") from exc


def save_facts(path: Path, facts: Facts) -> None:
    """Write, fsync, rename, fsync the directory: a crash leaves old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps({**asdict(facts), "generations": list(facts.generations)}, indent=1)
    atomic_write(path, data.encode(), mode=0o644)
