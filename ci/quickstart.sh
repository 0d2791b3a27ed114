#!/usr/bin/env bash
# vpnlab quick start on a fresh Debian 12 / Ubuntu 24.04 machine (root or sudo):
#   ci/quickstart.sh demo   install what is missing, build the images, run the passthrough demo
#   ci/quickstart.sh test   install what is missing, run the whole test suite (unit + integration)
# Extra arguments go to `vpnlab run` (demo) or to pytest (test).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
what="${1:-}"
shift || true

bash ci/install.sh
VPNLAB=".venv/bin/vpnlab"
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n -E"

case "$what" in
    demo)
        mkdir -p results
        $SUDO "$VPNLAB" images build
        exec $SUDO "$VPNLAB" run topologies/passthrough-demo.yml --json results/passthrough-demo.json "$@"
        ;;
    test)
        exec $SUDO .venv/bin/python -m pytest --vpnlab-require-engine "$@"
        ;;
    *)
        echo "usage: ci/quickstart.sh demo|test [ARGS...]" >&2
        exit 2
        ;;
esac
