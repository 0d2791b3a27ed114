#!/usr/bin/env bash
# Prepare a fresh Debian 12 / Ubuntu 24.04 machine for vpnlab, idempotently:
#   1. install the missing system packages (one apt-get update, only if needed),
#   2. start the Docker engine if it does not answer,
#   2b. create the unprivileged user User-Mode Linux guests run as (vpnlab-guest),
#      (1 to 2b: lab/setup/machine.sh, the same script `vpnlab setup` runs)
#   3. create .venv in the repo root and pip install -e '.[test]' into it
#      (skipped when pyproject.toml is unchanged since the last install).
# Runs as root or with sudo; never reads stdin (CI has none). Safe to run twice.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_PACKAGES=(python3-venv python3-pip git)
# CI only, not `vpnlab setup`: the browser the HTML matrix report's screenshot test renders with.
CI_PACKAGES=(chromium)

export DEBIAN_FRONTEND=noninteractive

step() { printf '[install] %s\n' "$*"; }

# --- 1.+2. system packages and the Docker engine: the script `vpnlab setup` runs ---
# (one source of truth; the venv step below needs three more packages, the tests chromium)
bash "$REPO/lab/setup/machine.sh" "${VENV_PACKAGES[@]}" "${CI_PACKAGES[@]}"

# --- 3. Python virtual environment ------------------------------------------------
VENV="$REPO/.venv"
STAMP="$VENV/.vpnlab-install-stamp"
# A venv counts only once its pip runs: an install stopped half-way (Ctrl-C, a killed CI job)
# leaves a python without pip. pip is put back into it (ensurepip keeps everything else, a venv
# made without pip by another tool included); only a venv where that fails is made again.
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    step "venv: $VENV exists"
elif [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -m ensurepip --upgrade >/dev/null 2>&1; then
    step "venv: $VENV had no pip: put back with ensurepip"
else
    [ -e "$VENV" ] && step "venv: $VENV is unusable (no python or pip), making it again (python3 -m venv --clear)"
    step "venv: creating $VENV"
    python3 -m venv --clear "$VENV"
fi

# setup.py maps the top-level data folders (images/, topologies/, profiles/) into the package:
# a folder added there needs a new editable install, so the list of their folders is part of the stamp
want="$( { cat "$REPO/pyproject.toml" "$REPO/setup.py"; (cd "$REPO" && find images topologies profiles -type d 2>/dev/null | sort); } | sha256sum | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [ "$want" = "$have" ] && "$VENV/bin/python" -c 'import lab, docker, rich' 2>/dev/null; then
    step "pip: vpnlab already installed (pyproject.toml, setup.py and the data folders unchanged)"
else
    step "pip: installing vpnlab in editable mode with test extras"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip </dev/null
    (cd "$REPO" && "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]' </dev/null)
    printf '%s\n' "$want" >"$STAMP"
fi

step "done"
