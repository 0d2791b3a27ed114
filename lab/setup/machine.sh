#!/usr/bin/env bash
# Prepare a Debian 12 / Ubuntu 24.04 machine to run vpnlab labs, idempotently:
#   1. install the missing system packages (one apt-get update, only if needed),
#   2. start the Docker engine if it does not answer (systemctl, else dockerd in
#      the background),
#   3. report the engine answering,
#   4. create the unprivileged host user User-Mode Linux guests run as (vpnlab-guest),
#      so root in a guest has that user's powers on the host, not root's.
# The one source of truth for the machine: `vpnlab setup` runs this file (shipped
# in the wheel) and ci/install.sh runs it from the checkout.
#
#   machine.sh [--dry-run] [EXTRA_PACKAGE...]
#
# --dry-run says what would be installed and started, changes nothing, exits 0.
# Runs as root, or as a user with password-less sudo (sudo -n); otherwise one
# error and exit 2. Never reads stdin (CI has none). Safe to run twice.
set -euo pipefail

PACKAGES=(docker.io debootstrap debian-archive-keyring user-mode-linux kmod iptables crun socat e2fsprogs util-linux)
DOCKERD_LOG="${VPNLAB_DOCKERD_LOG:-/var/log/vpnlab-dockerd.log}"
DOCKER_SOCK="${VPNLAB_DOCKER_SOCK:-/var/run/docker.sock}"
ENGINE_WAIT=60  # seconds for a started engine to answer

dry_run=false
extra=()
for arg in "$@"; do
    case "$arg" in
        --dry-run) dry_run=true ;;
        -*) echo "error: unknown option $arg (usage: machine.sh [--dry-run] [EXTRA_PACKAGE...])" >&2; exit 2 ;;
        *) extra+=("$arg") ;;
    esac
done
PACKAGES+=("${extra[@]}")
export DEBIAN_FRONTEND=noninteractive

step() { printf '[setup] %s\n' "$*"; }
fail() { printf 'error: %s\n' "$*" >&2; exit 2; }

# Privileges: root as is; otherwise sudo without a password prompt (never stdin).
if [ "$(id -u)" -eq 0 ]; then
    SUDO=
    who="root"
elif command -v sudo >/dev/null && sudo -n true </dev/null 2>/dev/null; then
    SUDO="sudo -n"
    who="sudo -n"
else
    SUDO=
    who=""
fi
need_privileges() {  # $1: what needs them
    [ -n "$who" ] || fail "$1 needs root: run 'vpnlab setup' as root, or give this user password-less sudo"
}

# --- 1. system packages -------------------------------------------------------
command -v dpkg-query >/dev/null || fail "no dpkg-query: vpnlab setup knows Debian and Ubuntu only; install ${PACKAGES[*]} and start a Docker engine by hand"
missing=()
for pkg in "${PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null </dev/null || true)"
    [ "$status" = installed ] || missing+=("$pkg")
done
if [ "${#missing[@]}" -eq 0 ]; then
    step "packages: all present (${PACKAGES[*]})"
elif $dry_run; then
    step "packages: would install ${missing[*]} (apt-get, as ${who:-root: not available to this user})"
else
    need_privileges "installing ${missing[*]}"
    step "packages: installing ${missing[*]}"
    $SUDO apt-get update -qq </dev/null
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
fi

# --- 2. Docker engine -----------------------------------------------------------
engine_answers() {
    if command -v docker >/dev/null; then
        docker version >/dev/null 2>&1 </dev/null || { [ -n "$SUDO" ] && $SUDO docker version >/dev/null 2>&1 </dev/null; }
    elif command -v curl >/dev/null; then
        $SUDO curl -fsS --max-time 5 --unix-socket "$DOCKER_SOCK" http://localhost/_ping >/dev/null 2>&1 </dev/null
    else
        $SUDO python3 - "$DOCKER_SOCK" <<'PY' >/dev/null 2>&1
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1])
s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
sys.exit(0 if b" 200 " in s.recv(64) else 1)
PY
    fi
}

if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
    how="systemctl start docker"
else
    how="dockerd in the background (log: $DOCKERD_LOG)"
fi

if engine_answers; then
    step "docker: engine answers"
elif $dry_run; then
    step "docker: engine does not answer; would start it with $how"
else
    need_privileges "starting the Docker engine"
    step "docker: starting the engine with $how"
    if [ "$how" = "systemctl start docker" ]; then
        $SUDO systemctl start docker </dev/null
    else
        $SUDO sh -c "nohup dockerd >>'$DOCKERD_LOG' 2>&1 </dev/null &"
    fi
    for _ in $(seq 1 "$ENGINE_WAIT"); do
        engine_answers && break
        sleep 1
    done
    engine_answers || fail "the Docker engine did not answer within $ENGINE_WAIT s (see $DOCKERD_LOG)"
    step "docker: engine answers"
fi

# --- 4. the guests' host user --------------------------------------------------------
# The same command lab/runtime/uml_guest_dir.py runs on first use if this step was skipped.
GUEST_USER=vpnlab-guest
if getent passwd "$GUEST_USER" >/dev/null 2>&1 </dev/null; then
    step "guest user: $GUEST_USER exists"
elif $dry_run; then
    step "guest user: would create the system user $GUEST_USER (useradd, as ${who:-root: not available to this user})"
else
    need_privileges "creating the user $GUEST_USER"
    step "guest user: creating the system user $GUEST_USER"
    $SUDO useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
        --comment "vpnlab User-Mode Linux guests" "$GUEST_USER" </dev/null
fi

if $dry_run; then
    step "dry run: nothing was changed"
else
    step "done: this machine can run vpnlab labs ('vpnlab images build' builds the images once)"
fi
