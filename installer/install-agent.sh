#!/usr/bin/env bash
# MirrorPair server install (Debian 12 / Ubuntu 24.04), as root, from the source tree:
#
#   installer/install-agent.sh [--with-vm] [--node node1|node2]   install, or upgrade in place
#   installer/install-agent.sh --uninstall [--purge]               remove (see below)
#
# Installs only what the agent needs: the Debian packages fuse3, iproute2, iputils-arping,
# iputils-ping and python3-venv (--with-vm: also libvirt-clients, and libvirt-dev,
# pkg-config, gcc, python3-dev to build libvirt-python); the agent in its own virtualenv
# /opt/mirrorpair/venv (a copy of the package, independent of this source tree), with
# /opt/mirrorpair/VERSION (what is installed), README.md and docs/; configuration in
# /etc/mirrorpair (0750: cluster.example.toml, node.env; cluster.toml is written by the
# console's setup wizard, never by this script); data in /var/lib/mirrorpair (0700); the
# commands mirrorpair and mirrorpair-agent linked into /usr/local/bin (a file of another
# origin there is left alone); /etc/needrestart/conf.d/mirrorpair.conf (needrestart must
# never restart the agent: a restart is a clean stop of every module); the systemd unit
# mirrorpair-agent.service, enabled and started. At the end it lists the firewall ports
# and, on a server not set up yet, the pairing code to enter in the console.
#
# A second run upgrades in place: the package is reinstalled into the same venv (with the
# vm extra if it was installed before), and /etc/mirrorpair and /var/lib/mirrorpair are
# left as they are. A running agent and its data planes then have the new code under them
# (they import lazily): hand over to the new agent right away (docs/upgrade.md).
#
# Options:
#   --with-vm        VM modules: libvirt client packages and the `vm` extra (libvirt-python)
#   --node ID        write MIRRORPAIR_NODE=ID in a new node.env (default: empty, known
#                    from pairing)
#   --no-deps        install no Debian packages (only report missing ones)
#   --no-start       enable the service but do not start it
#   --python PATH    the interpreter for the venv (default /usr/bin/python3; >= 3.11)
#   --root DIR       install into DIR (a scratch root for tests or packaging; also $DESTDIR):
#                    every path under DIR, no Debian packages, no systemctl, root not needed.
#                    The venv is made at its path under DIR and works from there only.
#   --uninstall      stop and disable the service (a clean stop: the other server takes
#                    over every module this server was primary of), remove the unit,
#                    /opt/mirrorpair, our /usr/local/bin links and the needrestart file;
#                    /etc/mirrorpair and /var/lib/mirrorpair are kept
#   --purge          with --uninstall: remove /etc/mirrorpair and /var/lib/mirrorpair too
#                    (refused while anything is mounted under them)
set -euo pipefail
umask 022 # what is created here is readable as the modes below say, whatever the caller's umask
# The venv's Python must see its own copy of the package, not a tree on the caller's path.
unset PYTHONPATH PYTHONHOME

SRC="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
UNIT_NAME=mirrorpair-agent.service

log() { printf 'install-agent: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }

# --- options -----------------------------------------------------------------------------------

ROOT="${DESTDIR:-}"
WITH_VM=0 NO_DEPS=0 NO_START=0 UNINSTALL=0 PURGE=0
NODE=""
PYTHON="${MIRRORPAIR_PYTHON:-}"

parse_args() {
    while (($# > 0)); do
        case "$1" in
            --with-vm) WITH_VM=1 ;;
            --no-deps) NO_DEPS=1 ;;
            --no-start) NO_START=1 ;;
            --uninstall) UNINSTALL=1 ;;
            --purge) PURGE=1 ;;
            --node | --python | --root)
                (($# >= 2)) || die "$1 needs a value"
                case "$1" in
                    --node) NODE="$2" ;;
                    --python) PYTHON="$2" ;;
                    --root) ROOT="$2" ;;
                esac
                shift
                ;;
            -h | --help)
                usage
                exit 0
                ;;
            *)
                usage >&2
                die "unknown option: $1"
                ;;
        esac
        shift
    done
    if [[ -n "$NODE" && "$NODE" != node1 && "$NODE" != node2 ]]; then
        die "--node must be node1 or node2 (got '$NODE')"
    fi
    ((PURGE == 0 || UNINSTALL == 1)) || die "--purge goes with --uninstall"
    if [[ -n "$ROOT" ]]; then
        ROOT="$(realpath -m -- "$ROOT")"
        [[ "$ROOT" == / ]] && ROOT=""
    fi
    if [[ -n "$ROOT" ]]; then
        NO_DEPS=1 # a scratch root: nothing outside it is touched
    elif (($(id -u) != 0)); then
        die "run as root (or --root DIR for a scratch install)"
    fi
}

set_paths() {
    OPT="$ROOT/opt/mirrorpair"
    VENV="$OPT/venv"
    ETC="$ROOT/etc/mirrorpair"
    STATE="$ROOT/var/lib/mirrorpair"
    UNIT="$ROOT/etc/systemd/system/$UNIT_NAME"
    BINDIR="$ROOT/usr/local/bin"
    NEEDRESTART="$ROOT/etc/needrestart/conf.d/mirrorpair.conf"
}

COMMANDS=(mirrorpair mirrorpair-agent)

# systemctl only on the real root of a machine booted with systemd (not in a chroot,
# a container without it, or a scratch root).
have_systemd() { [[ -z "$ROOT" && -d /run/systemd/system ]] && command -v systemctl >/dev/null; }

# --- Debian packages ---------------------------------------------------------------------------

deb_packages() {
    printf '%s\n' fuse3 iproute2 iputils-arping iputils-ping python3-venv
    ((WITH_VM)) && printf '%s\n' libvirt-clients libvirt-dev pkg-config gcc python3-dev
    return 0
}

missing_debs() {
    local pkg status
    while read -r pkg; do
        status="$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)"
        [[ "$status" == ii* ]] || printf '%s\n' "$pkg"
    done < <(deb_packages)
}

install_debs() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        ((NO_DEPS)) && return 0
        die "not a Debian system (no dpkg-query): install the equivalents of $(deb_packages | xargs) yourself, then run again with --no-deps"
    fi
    local missing
    mapfile -t missing < <(missing_debs)
    ((${#missing[@]} == 0)) && return 0
    if ((NO_DEPS)); then
        log "warning: missing Debian packages (not installed: --no-deps or --root): ${missing[*]}"
        return 0
    fi
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# --- the agent's virtualenv ----------------------------------------------------------------------

python_ok() {
    "$1" - <<'EOF' >/dev/null 2>&1
import sys
assert sys.version_info >= (3, 11)
import ensurepip, venv  # noqa: F401
EOF
}

find_python() {
    local cand
    if [[ -n "$PYTHON" ]]; then
        python_ok "$PYTHON" || die "--python/MIRRORPAIR_PYTHON $PYTHON is not a Python >= 3.11 with venv"
        printf '%s\n' "$PYTHON"
        return 0
    fi
    # The system's interpreter first: the service must not depend on a user's Python.
    for cand in /usr/bin/python3 /usr/bin/python3.13 /usr/bin/python3.12 /usr/bin/python3.11 python3; do
        command -v "$cand" >/dev/null 2>&1 || continue
        if python_ok "$cand"; then
            command -v "$cand"
            return 0
        fi
    done
    die "no Python >= 3.11 with the venv module (Debian: apt-get install python3-venv; or --python PATH)"
}

py_version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }

setup_venv() {
    local py
    py="$(find_python)"
    # A venv whose interpreter no longer runs (the system's Python upgraded under it) or is
    # another version than the one chosen is made again: only the package lives in it.
    if [[ -e "$VENV" ]] && ! { "$VENV/bin/python" -c '' 2>/dev/null &&
        [[ "$(py_version "$VENV/bin/python")" == "$(py_version "$py")" ]]; }; then
        log "$VENV does not run with $py ($(py_version "$py")): making it again"
        rm -rf -- "$VENV"
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating $VENV with $py ($(py_version "$py"))"
        install -d -m 0755 "$OPT"
        "$py" -m venv "$VENV"
    fi
}

# pip builds in the tree it installs from (build/, *.egg-info, stale files of earlier builds
# included): it gets a clean copy of what the package is made of instead.
install_package() {
    local tmp target quiet=(-q)
    tmp="$(mktemp -d)"
    # shellcheck disable=SC2064  # expand now: the path is known
    trap "rm -rf -- '$tmp'" EXIT
    tar -C "$SRC" --exclude=__pycache__ --exclude='*.pyc' -cf - \
        pyproject.toml README.md node_agent console protos resources | tar -C "$tmp" -xf -
    target="$tmp"
    ((WITH_VM)) && target="${tmp}[vm]"
    [[ -n "${CI:-}" ]] && quiet=()
    log "installing mirrorpair from $SRC into $VENV"
    "$VENV/bin/python" -m pip install "${quiet[@]}" --disable-pip-version-check --upgrade "$target" ||
        die "pip failed: $VENV may hold a partial install; run this script again"
    rm -rf -- "$tmp"
    trap - EXIT
}

write_version() {
    local version rev=""
    version="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("mirrorpair"))')"
    # The commit, if the tree is a git checkout of its own (not a folder of another repository).
    if command -v git >/dev/null 2>&1 &&
        [[ "$(git -C "$SRC" rev-parse --show-toplevel 2>/dev/null)" == "$SRC" ]] &&
        rev="$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null)"; then
        [[ -z "$(git -C "$SRC" status --porcelain 2>/dev/null)" ]] || rev="$rev-modified"
    fi
    {
        printf 'mirrorpair %s\n' "$version"
        printf 'source %s%s\n' "$SRC" "${rev:+ (git $rev)}"
        printf 'extras %s\n' "$( ((WITH_VM)) && echo vm || echo none)"
        printf 'installed %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    } >"$OPT/VERSION.new"
    chmod 0644 "$OPT/VERSION.new"
    mv -f "$OPT/VERSION.new" "$OPT/VERSION"
    INSTALLED_VERSION="$version"
}

# The unit's Documentation= and the operator's reference on the server itself.
install_docs() {
    local doc
    install -d -m 0755 "$OPT/docs"
    install_file 0644 "$SRC/README.md" "$OPT/README.md" || true
    for doc in "$SRC"/docs/*.md; do
        install_file 0644 "$doc" "$OPT/docs/${doc##*/}" || true
    done
}

# --- configuration, data, unit ---------------------------------------------------------------------

# Copy src to dst only when they differ: an unchanged file keeps its bytes and times.
install_file() {
    local mode="$1" src="$2" dst="$3"
    cmp -s "$src" "$dst" 2>/dev/null && { chmod "$mode" "$dst"; return 1; }
    install -m "$mode" "$src" "$dst"
}

setup_config() {
    mkdir -p "$ROOT/etc" # a system folder: created if missing, its mode left alone
    install -d -m 0750 "$ETC"
    install_file 0640 "$SRC/resources/config/cluster.example.toml" "$ETC/cluster.example.toml" || true
    if [[ ! -e "$ETC/node.env" ]]; then
        {
            echo "# This server's node id in the cluster: node1 or node2. Empty: the id it was"
            echo "# paired as (the console's setup wizard assigns it)."
            echo "MIRRORPAIR_NODE=$NODE"
        } >"$ETC/node.env"
        chmod 0640 "$ETC/node.env"
    elif [[ -n "$NODE" && -z "$(node_env_value)" ]]; then
        # Asked for (--node), and the file names no node yet (check_node_env refused others).
        sed -i "s/^MIRRORPAIR_NODE=\$/MIRRORPAIR_NODE=$NODE/" "$ETC/node.env"
        grep -qx "MIRRORPAIR_NODE=$NODE" "$ETC/node.env" || echo "MIRRORPAIR_NODE=$NODE" >>"$ETC/node.env"
    fi
    mkdir -p "$ROOT/var/lib"
    install -d -m 0700 "$STATE"
}

node_env_value() {
    [[ -e "$ETC/node.env" ]] || return 0
    sed -n 's/^MIRRORPAIR_NODE=//p' "$ETC/node.env" | tail -n1
}

# A --node that contradicts the node.env in place is an error before anything is changed.
check_node_env() {
    [[ -n "$NODE" ]] || return 0
    local current
    current="$(node_env_value)"
    [[ -z "$current" || "$current" == "$NODE" ]] ||
        die "--node $NODE, but $ETC/node.env says MIRRORPAIR_NODE=$current (edit it yourself to change it)"
}

UNIT_CHANGED=0
setup_unit() {
    mkdir -p "$ROOT/etc/systemd/system"
    install_file 0644 "$SRC/installer/$UNIT_NAME" "$UNIT" && UNIT_CHANGED=1
    return 0
}

# The operator's commands on the PATH. A file of another origin (or a link elsewhere) is
# not ours to replace: it is kept, and the operator told.
LINK_NOTE=""
link_commands() {
    local name link target
    mkdir -p "$BINDIR"
    for name in "${COMMANDS[@]}"; do
        link="$BINDIR/$name" target="$VENV/bin/$name"
        if [[ -L "$link" && "$(readlink -- "$link")" == "$target" ]]; then
            continue
        elif [[ -e "$link" || -L "$link" ]]; then
            log "warning: $link exists and is not our link: left as it is"
            LINK_NOTE+="$link is not MirrorPair's (left as it is): run $target instead"$'\n'
        else
            ln -s -- "$target" "$link"
        fi
    done
}

unlink_commands() {
    local name link
    for name in "${COMMANDS[@]}"; do
        link="$BINDIR/$name"
        if [[ -L "$link" && "$(readlink -- "$link")" == "$VENV/bin/$name" ]]; then
            rm -f -- "$link"
        fi
    done
}

# needrestart (run by apt, automatic on Ubuntu 24.04) restarts services whose libraries
# changed with `systemctl restart`: for the agent a clean stop of every module.
setup_needrestart() {
    local tmp
    mkdir -p "${NEEDRESTART%/*}"
    tmp="$(mktemp)"
    cat >"$tmp" <<'EOF'
# Installed by MirrorPair's install-agent.sh (removed by --uninstall).
# needrestart must never restart mirrorpair-agent: `systemctl restart` is a clean stop,
# which stops every module on this server (the other server takes over those it was
# primary of). A new agent is handed over to instead (docs/upgrade.md).
$nrconf{override_rc}{qr(^mirrorpair-agent)} = 0;
EOF
    install_file 0644 "$tmp" "$NEEDRESTART" || true
    rm -f -- "$tmp"
}

unset_needrestart() {
    rm -f -- "$NEEDRESTART"
    # The folders too if this left them empty (needrestart not installed).
    rmdir -- "${NEEDRESTART%/*}" "${NEEDRESTART%/*/*}" 2>/dev/null || true
}

# --- the service -------------------------------------------------------------------------------------

SERVICE_NOTE=""
start_service() {
    local upgrade="$1"
    if ! have_systemd; then
        SERVICE_NOTE="systemd is not running here: the unit is installed but not enabled; start the agent with $VENV/bin/mirrorpair-agent"
        [[ -n "$ROOT" ]] && SERVICE_NOTE="scratch root $ROOT: the unit is installed, not enabled (no systemctl)"
        return 0
    fi
    systemctl daemon-reload
    systemctl enable --quiet "$UNIT_NAME"
    if systemctl is-active --quiet "$UNIT_NAME"; then
        # Not restarted here: the operator picks the moment, one server at a time
        # (docs/upgrade.md); a plain restart would stop this server's modules first.
        if ((upgrade || UNIT_CHANGED)); then
            SERVICE_NOTE="hand over to the new agent NOW, leaving the modules running (docs/upgrade.md): systemctl kill --kill-whom=main --signal=SIGUSR2 $UNIT_NAME; systemctl start $UNIT_NAME
(the running agent and its data planes load code lazily from $VENV, which now holds the new version: a module started or reconfigured, or a data plane started again, would run new code under the old agent)"
        else
            SERVICE_NOTE="the agent is running (systemctl status $UNIT_NAME)"
        fi
    elif ((NO_START)); then
        SERVICE_NOTE="enabled, not started (--no-start): systemctl start $UNIT_NAME"
    else
        systemctl start "$UNIT_NAME" || true
        if systemctl is-active --quiet "$UNIT_NAME"; then
            SERVICE_NOTE="the agent is running (journalctl -u $UNIT_NAME)"
        else
            SERVICE_NOTE="the agent did NOT start: systemctl status $UNIT_NAME; journalctl -u $UNIT_NAME"
        fi
    fi
}

# --- uninstall -------------------------------------------------------------------------------------

mounts_under() {
    local dir
    for dir in "$@"; do
        # mountinfo's 5th field is the mount point (octal escapes for spaces: fine for a prefix).
        awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo
    done
}

uninstall() {
    if have_systemd && systemctl is-active --quiet "$UNIT_NAME"; then
        log "stopping $UNIT_NAME: its modules stop here, the other server takes over those this server was primary of"
    fi
    if have_systemd; then
        systemctl disable --now --quiet "$UNIT_NAME" 2>/dev/null || true
    fi
    local mounted=""
    ((PURGE)) && mounted="$(mounts_under "$ETC" "$STATE")"
    [[ -z "$mounted" ]] || die "not purging, nothing removed: mounted under $ETC or $STATE (a data plane still running?): $mounted"
    rm -f -- "$UNIT"
    if have_systemd; then systemctl daemon-reload; fi
    unlink_commands
    unset_needrestart
    rm -rf -- "$OPT"
    log "removed $UNIT, $OPT, $NEEDRESTART and our links in $BINDIR"
    if ((PURGE == 0)); then
        log "kept $ETC and $STATE (--purge removes them)"
        return 0
    fi
    rm -rf --one-file-system -- "$ETC" "$STATE"
    log "purged $ETC and $STATE (data directories configured elsewhere are left)"
}

# --- main ----------------------------------------------------------------------------------------

main() {
    parse_args "$@"
    set_paths
    if ((UNINSTALL)); then
        uninstall
        return 0
    fi
    [[ -f "$SRC/pyproject.toml" && -d "$SRC/node_agent" ]] || die "$SRC is not a MirrorPair source tree"
    check_node_env
    local previous="" upgrade=0
    [[ -f "$OPT/VERSION" ]] && previous="$(head -n1 "$OPT/VERSION")" && upgrade=1
    if ((!WITH_VM)) && grep -qx 'extras vm' "$OPT/VERSION" 2>/dev/null; then
        log "keeping the vm extra (installed before)"
        WITH_VM=1
    fi
    install_debs
    setup_venv
    install_package
    write_version
    install_docs
    setup_config
    setup_unit
    setup_needrestart
    link_commands
    # Pairing is opened (or the open code kept) before the service starts: the agent then
    # serves the very code and certificate printed.
    local summary
    summary="$("$VENV/bin/python" -m node_agent.host.install_summary \
        --config "$ETC/cluster.toml" --state-dir "$STATE" --node "$(node_env_value)")"
    start_service "$upgrade"
    echo
    previous="${previous#mirrorpair }"
    if ((upgrade)) && [[ "$previous" == "$INSTALLED_VERSION" ]]; then
        echo "MirrorPair agent $INSTALLED_VERSION reinstalled in place in $VENV"
    elif ((upgrade)); then
        echo "MirrorPair agent upgraded in place: $previous -> $INSTALLED_VERSION ($VENV)"
    else
        echo "MirrorPair agent $INSTALLED_VERSION installed in $VENV"
    fi
    echo "configuration: $ETC   data: $STATE   unit: $UNIT"
    echo "$SERVICE_NOTE"
    printf '%s' "$LINK_NOTE"
    echo "$summary"
}

main "$@"
