#!/usr/bin/env bash
# vpnlab quick start on a fresh Debian 12 / Ubuntu 24.04 machine (root or sudo):
#   ci/quickstart.sh matrix  install what is missing, build the images, run the passthrough matrix
#                            (every protocol through every router profile), reports in results/
#   ci/quickstart.sh test    install what is missing, run the whole test suite (unit + integration)
# Extra arguments go to `vpnlab matrix` (matrix, e.g. --profiles open,strict) or to pytest (test).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
what="${1:-}"
shift || true

bash ci/install.sh
VPNLAB=".venv/bin/vpnlab"
SUDO=
# Not `sudo -E`: root would inherit this user's HOME, XDG_STATE_HOME and VPNLAB_STATE_DIR and keep
# its guest slots (disk images holding lab keys, files it writes as root) in this user's folders.
# Only the engine address is carried over.
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n --preserve-env=DOCKER_HOST"

case "$what" in
    matrix)
        mkdir -p results
        $SUDO "$VPNLAB" images build
        exec $SUDO "$VPNLAB" matrix --json results/matrix.json --html results/matrix.html \
            --markdown results/matrix.md --junit results/matrix.xml "$@"
        ;;
    test)
        exec $SUDO .venv/bin/python -m pytest --vpnlab-require-engine "$@"
        ;;
    *)
        echo "usage: ci/quickstart.sh matrix|test [ARGS...]" >&2
        exit 2
        ;;
esac
