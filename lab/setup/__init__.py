"""`vpnlab setup`: prepare this machine (system packages, Docker engine) from the installed package.

The work is done by ``machine.sh`` beside this file, shipped in the wheel as
package data, so a user's CI needs only ``pip install vpnlab`` and
``vpnlab setup``; ci/install.sh runs the same script from the checkout.
"""

from __future__ import annotations

import shutil
import subprocess

from lab.errors import PrerequisiteError, VpnlabError
from lab.resources import setup_script


def run_setup(*, dry_run: bool = False, extra_packages: tuple[str, ...] = ()) -> int:
    """Run the machine set-up script, its output going straight to ours; returns its exit code.

    On failure the script has already printed one ``error: ...`` line saying what
    and why (for example: not root and no password-less sudo), so nothing is added.
    """
    script = setup_script()
    if not script.is_file():
        raise VpnlabError(f"the set-up script is missing from this install ({script})", hint="reinstall vpnlab")
    bash = shutil.which("bash")
    if bash is None:
        raise PrerequisiteError("bash", "not found", hint="vpnlab setup runs a bash script; install bash")
    argv = [bash, str(script), *(["--dry-run"] if dry_run else []), *extra_packages]
    # stdin closed: the script must never wait for a prompt (CI has no terminal).
    return subprocess.run(argv, stdin=subprocess.DEVNULL, check=False).returncode
