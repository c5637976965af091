#!/usr/bin/env bash
# MirrorPair console for a desk PC (Debian/Ubuntu): its own virtualenv, a `mirrorpair-console`
# launcher on PATH, a desktop menu entry and the icon where desktops look for it.
#
#   installer/install-console.sh [options]           install, or upgrade in place
#   installer/install-console.sh --uninstall [opts]  remove what an install put in place
#
# As a user (the default when not root):
#   venv      ~/.local/share/mirrorpair-console/venv
#   launcher  ~/.local/bin/mirrorpair-console
#   menu      ~/.local/share/applications/mirrorpair-console.desktop
#   icon      ~/.local/share/icons/hicolor/{scalable,48x48,256x256}/apps/mirrorpair.{svg,png}
# As root (for every user of the PC): venv /opt/mirrorpair-console/venv, launcher
# /usr/local/bin, menu /usr/share/applications, icon /usr/share/icons/hicolor; the Debian
# packages Qt needs to open a window on X11 (xcb) are installed with apt-get.
#
# Options:
#   --prefix DIR   where the venv goes (DIR/venv); default as above
#   --user         per-user layout even as root (HOME and XDG_DATA_HOME decide where)
#   --source DIR   the MirrorPair source tree to install (default: the one holding this script)
#   --python PY    interpreter for the venv (default: the best python3 >= 3.11 found)
#   --no-apt       never call apt-get (only report missing Debian packages)
#   --uninstall    remove the venv, launcher, menu entry and icons; the console's settings
#                  (~/.config/mirrorpair) and saved passphrases (OS keyring) are kept
#
# Idempotent: a second run upgrades the console in place when the source changed (pip install
# of it again), and otherwise only puts the launcher, menu entry and icons back.
# The last step runs `mirrorpair-console --check` offscreen: the install ends only once the
# installed console has really started and shown its main window.
set -euo pipefail

# The venv must be self-contained: a caller's PYTHONPATH would shadow what it installs.
unset PYTHONPATH
SELF="$(readlink -f "${BASH_SOURCE[0]}")"
SOURCE="$(cd "$(dirname "$SELF")/.." && pwd)"
PREFIX=""
PER_USER=""
PYTHON=""
NO_APT=""
UNINSTALL=""

# Qt's xcb platform plugin and what PySide6's wheels link against (as in installer/dev).
DEB_PACKAGES=(
    python3-venv libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0
    libxcb-xkb1 libxkbcommon-x11-0 libegl1 libgl1 libfontconfig1 libdbus-1-3
)

log() { printf 'install-console: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$SELF"; }

while (($# > 0)); do
    case "$1" in
        --prefix) PREFIX="${2:?--prefix needs a directory}"; shift ;;
        --user) PER_USER=1 ;;
        --source) SOURCE="${2:?--source needs a directory}"; shift ;;
        --python) PYTHON="${2:?--python needs an interpreter}"; shift ;;
        --no-apt) NO_APT=1 ;;
        --uninstall) UNINSTALL=1 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
    shift
done

if [[ -z "$PER_USER" && $(id -u) -ne 0 ]]; then PER_USER=1; fi
if [[ -n "$PER_USER" ]]; then
    [[ -n "${HOME:-}" ]] || die "HOME is not set (needed for a per-user install)"
    DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
    PREFIX="${PREFIX:-$DATA/mirrorpair-console}"
    BIN_DIR="$HOME/.local/bin"
    APPS_DIR="$DATA/applications"
    ICONS_DIR="$DATA/icons/hicolor"
else
    PREFIX="${PREFIX:-/opt/mirrorpair-console}"
    BIN_DIR="/usr/local/bin"
    APPS_DIR="/usr/share/applications"
    ICONS_DIR="/usr/share/icons/hicolor"
fi
PREFIX="$(readlink -m "$PREFIX")"
VENV="$PREFIX/venv"
MANIFEST="$PREFIX/installed-files"
LAUNCHER="$BIN_DIR/mirrorpair-console"
DESKTOP="$APPS_DIR/mirrorpair-console.desktop"
ICON_SVG="$ICONS_DIR/scalable/apps/mirrorpair.svg"
PNG_SIZES=(48 256)

# Desktops cache menus and icon themes: refresh when the tools exist (never fatal).
refresh_caches() {
    if command -v update-desktop-database >/dev/null 2>&1; then
        update-desktop-database -q "$APPS_DIR" 2>/dev/null || true
    fi
    if command -v gtk-update-icon-cache >/dev/null 2>&1 && [[ -f "$ICONS_DIR/index.theme" ]]; then
        gtk-update-icon-cache -q -t "$ICONS_DIR" 2>/dev/null || true
    fi
}

uninstall() {
    local f
    if [[ -f "$MANIFEST" ]]; then
        while IFS= read -r f; do
            [[ -n "$f" ]] && rm -f -- "$f"
        done <"$MANIFEST"
    fi
    # The launcher is ours only when it points into our venv (another install may own the name).
    if [[ -L "$LAUNCHER" && "$(readlink "$LAUNCHER")" == "$VENV/"* ]]; then rm -f -- "$LAUNCHER"; fi
    rm -rf -- "$VENV"
    rm -f -- "$MANIFEST" "$PREFIX/source.sha256"
    rmdir -- "$PREFIX" 2>/dev/null || true
    refresh_caches
    log "removed the console from $PREFIX (settings in ~/.config/mirrorpair and the keyring kept)"
}

python_ok() {
    "$1" -c 'import sys, ensurepip, venv; assert sys.version_info >= (3, 11)' >/dev/null 2>&1
}

find_python() {
    local cand
    if [[ -n "$PYTHON" ]]; then
        python_ok "$PYTHON" || die "--python $PYTHON is not a usable Python >= 3.11 with venv"
        printf '%s\n' "$PYTHON"
        return
    fi
    for cand in python3.11 python3.13 python3.12 python3; do
        if command -v "$cand" >/dev/null 2>&1 && python_ok "$cand"; then
            command -v "$cand"
            return
        fi
    done
    die "no Python >= 3.11 with the venv module found (Debian: apt-get install python3-venv)"
}

install_debs() {
    command -v dpkg-query >/dev/null 2>&1 || return 0 # not Debian: nothing to check
    local pkg missing=()
    for pkg in "${DEB_PACKAGES[@]}"; do
        [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)" == ii* ]] ||
            missing+=("$pkg")
    done
    ((${#missing[@]} == 0)) && return 0
    if [[ $(id -u) -eq 0 && -z "$NO_APT" && -z "$PER_USER" ]]; then
        log "installing Debian packages: ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" ||
            { apt-get update -q && DEBIAN_FRONTEND=noninteractive \
                apt-get install -y -q --no-install-recommends "${missing[@]}"; }
    else
        log "warning: missing Debian packages (the console may not open a window without them):"
        log "         sudo apt-get install ${missing[*]}"
    fi
}

install_venv() {
    if [[ -x "$VENV/bin/python" ]] && ! "$VENV/bin/python" -c '' >/dev/null 2>&1; then
        log "$VENV is broken (its interpreter does not run); recreating it"
        rm -rf -- "$VENV"
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        local py
        py="$(find_python)"
        log "creating $VENV with $py"
        mkdir -p -- "$PREFIX"
        "$py" -m venv "$VENV"
    fi
    # Non-editable: the console keeps working when the source tree moves or goes. Built
    # from a clean copy: setuptools' build/ in the tree could carry modules since removed.
    local copy
    copy="$(mktemp -d)"
    tar -C "$SOURCE" -c --exclude=.git --exclude=.venv --exclude=build --exclude=dist \
        --exclude='*.egg-info' --exclude=__pycache__ --exclude=tests --exclude=benchmarks . |
        tar -C "$copy" -x
    # The same source as last time: nothing to upgrade (a second run takes seconds).
    local digest
    digest="$(cd "$copy" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum |
        sha256sum | cut -d' ' -f1)"
    if [[ -x "$VENV/bin/mirrorpair-console" && -f "$PREFIX/source.sha256" &&
        "$(cat "$PREFIX/source.sha256")" == "$digest" ]]; then
        log "the console in $VENV is up to date with $SOURCE"
    else
        log "installing the console from $SOURCE (pip install '.[console]')"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade \
            "${copy}[console]" || { rm -rf -- "$copy"; die "pip install failed"; }
        printf '%s\n' "$digest" >"$PREFIX/source.sha256"
    fi
    rm -rf -- "$copy"
}

install_desktop_files() {
    local svg="$SOURCE/resources/icons/mirrorpair.svg" size png
    mkdir -p -- "$BIN_DIR" "$APPS_DIR" "$(dirname "$ICON_SVG")"
    ln -sfn -- "$VENV/bin/mirrorpair-console" "$LAUNCHER"
    # An absolute Exec: ~/.local/bin is not on every desktop session's PATH.
    sed "s|^Exec=.*|Exec=$LAUNCHER|" "$SOURCE/resources/mirrorpair-console.desktop" >"$DESKTOP.tmp"
    mv -f -- "$DESKTOP.tmp" "$DESKTOP"
    install -m 0644 -- "$svg" "$ICON_SVG"
    local files=("$DESKTOP" "$ICON_SVG")
    for size in "${PNG_SIZES[@]}"; do
        png="$ICONS_DIR/${size}x${size}/apps/mirrorpair.png"
        mkdir -p -- "$(dirname "$png")"
        files+=("$png")
    done
    # Bitmap sizes for the desktops that do not draw SVG icons, rendered by the venv's Qt.
    QT_QPA_PLATFORM=offscreen "$VENV/bin/python" - "$svg" "$ICONS_DIR" "${PNG_SIZES[@]}" <<'EOF'
import sys
from PySide6.QtGui import QGuiApplication, QIcon
app = QGuiApplication(["render-icon"])
svg, icons, sizes = sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3:]]
for n in sizes:
    out = f"{icons}/{n}x{n}/apps/mirrorpair.png"
    if not QIcon(svg).pixmap(n, n).save(out, "PNG"):
        sys.exit(f"could not render {svg} to {out}")
EOF
    printf '%s\n' "${files[@]}" >"$MANIFEST"
    refresh_caches
}

check_console() {
    local out
    if ! out="$(QT_QPA_PLATFORM=offscreen "$LAUNCHER" --check 2>&1 </dev/null)"; then
        printf '%s\n' "$out" >&2
        die "the installed console did not start ($LAUNCHER --check failed)"
    fi
    log "checked: $(grep -m1 '^main window shown' <<<"$out")"
}

main() {
    if [[ -n "$UNINSTALL" ]]; then
        uninstall
        return
    fi
    [[ -f "$SOURCE/pyproject.toml" ]] || die "--source $SOURCE holds no pyproject.toml"
    install_debs
    install_venv
    install_desktop_files
    check_console
    log "installed: $LAUNCHER (menu: $DESKTOP)"
    case ":$PATH:" in
        *":$BIN_DIR:"*) ;;
        *) log "note: $BIN_DIR is not on PATH; the menu entry works, or run $LAUNCHER" ;;
    esac
}

main
