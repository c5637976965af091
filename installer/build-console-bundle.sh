#!/usr/bin/env bash
# Build the console as a one-folder bundle with PyInstaller (installer/mirrorpair-console.spec),
# then prove it starts: the bundle's `mirrorpair-console --check` runs offscreen and must show
# the main window and exit 0.
#
#   installer/build-console-bundle.sh [--dist DIR] [--work DIR] [--python PY]
#
#   --dist DIR    where the bundle goes: DIR/mirrorpair-console/ (default: dist/ in the tree)
#   --work DIR    PyInstaller's build cache (default: build/console-bundle in the tree);
#                 kept between runs, so a rebuild is faster
#   --python PY   the interpreter whose environment holds the console and PyInstaller
#                 (default: the tree's .venv, made by `installer/dev setup`)
#
# Copy DIR/mirrorpair-console/ to the desk PC and run mirrorpair-console from it; the PC
# needs only the X11/Wayland libraries a desktop has (no Python).
set -euo pipefail

ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
DIST="$ROOT/dist"
WORK="$ROOT/build/console-bundle"
PYTHON="$ROOT/.venv/bin/python"

log() { printf 'build-console-bundle: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

while (($# > 0)); do
    case "$1" in
        --dist) DIST="${2:?--dist needs a directory}"; shift ;;
        --work) WORK="${2:?--work needs a directory}"; shift ;;
        --python) PYTHON="${2:?--python needs an interpreter}"; shift ;;
        -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' \
            "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac
    shift
done

"$PYTHON" -c 'import PyInstaller' 2>/dev/null ||
    die "$PYTHON has no PyInstaller: pip install -e '.[console,dev]' (installer/dev setup)"
"$PYTHON" -c 'import PySide6, pyqtgraph, qasync' 2>/dev/null ||
    die "$PYTHON lacks the console extra: pip install -e '.[console]'"

start=$(date +%s)
log "building into $DIST/mirrorpair-console (cache $WORK)"
# Run from the tree: the spec collects console/ and protos/ from here, not from site-packages.
(cd "$ROOT" && "$PYTHON" -m PyInstaller --noconfirm --log-level WARN \
    --distpath "$DIST" --workpath "$WORK" installer/mirrorpair-console.spec)
EXE="$DIST/mirrorpair-console/mirrorpair-console"
[[ -x "$EXE" ]] || die "PyInstaller made no $EXE"
log "built in $(($(date +%s) - start)) s ($(du -sh "$DIST/mirrorpair-console" | cut -f1))"

# The check must see the bundle alone: no source tree or venv on the import path.
if ! out="$(cd / && env -u PYTHONPATH -u PYTHONHOME QT_QPA_PLATFORM=offscreen "$EXE" --check \
    2>&1 </dev/null)"; then
    printf '%s\n' "$out" >&2
    die "the bundle does not start ($EXE --check failed)"
fi
printf '%s\n' "$out"
log "ok: $EXE"
