#!/usr/bin/env bash
# Prepare a fresh Debian 12 / Ubuntu 24.04 machine for vpnlab, idempotently:
#   1. install the missing system packages (one apt-get update, only if needed),
#   2. start the Docker engine if it does not answer,
#   3. create .venv in the repo root and pip install -e '.[test]' into it
#      (skipped when pyproject.toml is unchanged since the last install).
# Runs as root or with sudo; never reads stdin (CI has none). Safe to run twice.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PACKAGES=(docker.io debootstrap user-mode-linux kmod iptables crun socat e2fsprogs util-linux python3-venv python3-pip git)
DOCKERD_LOG=/var/log/vpnlab-dockerd.log
DOCKER_SOCK=/var/run/docker.sock

if [ "$(id -u)" -eq 0 ]; then
    SUDO=
else
    command -v sudo >/dev/null || { echo "install: need root or sudo" >&2; exit 1; }
    SUDO="sudo -n"
fi
export DEBIAN_FRONTEND=noninteractive

step() { printf '[install] %s\n' "$*"; }

# --- 1. system packages -------------------------------------------------------
missing=()
for pkg in "${PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
    [ "$status" = installed ] || missing+=("$pkg")
done
if [ "${#missing[@]}" -eq 0 ]; then
    step "packages: all present (${PACKAGES[*]})"
else
    step "packages: installing ${missing[*]}"
    $SUDO apt-get update -qq </dev/null
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
fi

# --- 2. Docker engine -----------------------------------------------------------
engine_answers() {
    if command -v docker >/dev/null; then
        $SUDO docker version >/dev/null 2>&1
    elif command -v curl >/dev/null; then
        $SUDO curl -fsS --max-time 5 --unix-socket "$DOCKER_SOCK" http://localhost/_ping >/dev/null 2>&1
    else
        $SUDO python3 - "$DOCKER_SOCK" <<'PY' >/dev/null 2>&1
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1])
s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
sys.exit(0 if b" 200 " in s.recv(64) else 1)
PY
    fi
}

if engine_answers; then
    step "docker: engine answers"
else
    if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
        step "docker: starting engine with systemctl"
        $SUDO systemctl start docker </dev/null
    else
        step "docker: starting dockerd in the background (log: $DOCKERD_LOG)"
        $SUDO sh -c "nohup dockerd >>'$DOCKERD_LOG' 2>&1 </dev/null &"
    fi
    for _ in $(seq 1 60); do
        engine_answers && break
        sleep 1
    done
    engine_answers || { echo "install: docker engine did not answer within 60 s (see $DOCKERD_LOG)" >&2; exit 1; }
    step "docker: engine answers"
fi

# --- 3. Python virtual environment ------------------------------------------------
VENV="$REPO/.venv"
STAMP="$VENV/.vpnlab-install-stamp"
if [ -x "$VENV/bin/python" ]; then
    step "venv: $VENV exists"
else
    step "venv: creating $VENV"
    python3 -m venv "$VENV"
fi

want="$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [ "$want" = "$have" ] && "$VENV/bin/python" -c 'import lab, docker, rich' 2>/dev/null; then
    step "pip: vpnlab already installed (pyproject.toml unchanged)"
else
    step "pip: installing vpnlab in editable mode with test extras"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip </dev/null
    (cd "$REPO" && "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]' </dev/null)
    printf '%s\n' "$want" >"$STAMP"
fi

step "done"
