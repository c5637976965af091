"""Regenerate the Python modules of protos/*.proto (the one way to produce them).

python -m protos.generate            # write into protos/
python -m protos.generate --out DIR  # write elsewhere (used by the freshness test)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos"


def proto_files() -> list[Path]:
    return sorted(PROTO_DIR.glob("*.proto"))


def generate(out_dir: Path) -> None:
    """Run protoc on every .proto; output lands in out_dir/protos/."""
    import grpc_tools

    include = Path(grpc_tools.__file__).parent / "_proto"
    (out_dir / "protos").mkdir(parents=True, exist_ok=True)
    for proto in proto_files():
        rel = proto.relative_to(ROOT)
        args = [
            "protoc",
            f"-I{ROOT}",
            f"-I{include}",
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(rel),
        ]
        rc = protoc.main(args)
        if rc != 0:
            raise SystemExit(f"protoc failed on {rel} (exit {rc})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT, help="root to write protos/ under")
    args = parser.parse_args(argv)
    import os

    os.chdir(ROOT)  # protoc resolves the relative proto paths from the repo root
    generate(args.out.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
