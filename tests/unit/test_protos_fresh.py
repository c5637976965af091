"""The checked-in protos/*_pb2*.py(i) must be exactly what protos.generate produces today.

A .proto edited without regenerating (or a generator/grpcio-tools version change) fails here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"
FIX = "run python -m protos.generate (from the repo root) and commit the result"
# What protoc writes for x.proto: x_pb2.py, x_pb2.pyi, x_pb2_grpc.py.
GENERATED_PATTERNS = ("*_pb2.py", "*_pb2.pyi", "*_pb2_grpc.py")


def _files(root: Path, patterns: tuple[str, ...] = ("*",)) -> set[str]:
    found: set[str] = set()
    for pattern in patterns:
        found |= {
            p.relative_to(root).as_posix()
            for p in root.rglob(pattern)
            if p.is_file() and "__pycache__" not in p.parts
        }
    return found


def test_generated_protos_are_fresh(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "protos.generate", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (
        f"python -m protos.generate failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    )

    out = tmp_path / "protos"
    generated = _files(out)
    assert generated, f"protos.generate wrote nothing under {out}"
    checked_in = _files(PROTOS, GENERATED_PATTERNS)

    missing = sorted(generated - _files(PROTOS))
    extra = sorted(checked_in - generated)
    stale = sorted(
        name
        for name in generated - set(missing)
        if (out / name).read_bytes() != (PROTOS / name).read_bytes()
    )
    problems = []
    if missing:
        problems.append(f"generated but not checked in: {missing}")
    if stale:
        problems.append(f"checked in but differs from the generator's output: {stale}")
    if extra:
        problems.append(f"checked in but no longer generated (stale leftovers): {extra}")
    assert not problems, "protos/ is out of date -- " + "; ".join(problems) + f"; {FIX}"
