"""The User-Mode Linux runtime: a full kernel (PPP, ESP, the pptp helper) behind the same commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lab.images import image_tag
from lab.pytest_plugin import Runtimes
from lab.runtime.uml import running_slots, uml_available

HERE = Path(__file__).parent
REPO = HERE.parent.parent
USABLE, WHY = uml_available()
pytestmark = pytest.mark.skipif(not USABLE, reason=f"User-Mode Linux runtime unavailable: {WHY}")
LABELS = {"vpnlab.lab": "_uml-test"}


@pytest.fixture(scope="module")
def guest(vpnlab_runtimes: Runtimes):
    return vpnlab_runtimes.session("uml")


def run_in_guest(guest, script: str, devices: tuple[str, ...] = ()) -> str:
    output = guest.client.containers.run(
        image_tag("client"),
        ["sh", "-c", script],
        network_disabled=True,
        cap_add=["NET_ADMIN"],
        devices=[f"{d}:{d}:rwm" for d in devices],
        labels=LABELS,
        remove=True,
        stderr=True,
    )
    return output.decode()


def test_guest_kernel_has_what_the_host_lacks(guest) -> None:
    features = guest.capabilities().features
    for name in ("ppp", "l2tp", "esp", "pptp_helper", "nf_nat_pptp", "tun"):
        assert features.available(name) is True, (name, features.features[name])
    assert guest.runtime.name == "uml" and features.release.startswith("6.1")


def test_container_opens_dev_ppp_and_pppd_links_up(guest) -> None:
    # Two pppd processes back to back over a pty: a real PPP link inside the guest kernel.
    script = (
        "pppd nodetach noauth local debug logfile /tmp/outer.log 10.99.0.1:10.99.0.2 "
        "pty 'pppd nodetach noauth local notty debug logfile /tmp/inner.log' & "
        "for i in $(seq 1 40); do ping -c 1 -W 1 10.99.0.2 >/dev/null 2>&1 && break; sleep 0.25; done; "
        "ip -br addr; ping -c 1 -W 2 10.99.0.2; cat /tmp/outer.log; true"
    )
    output = run_in_guest(guest, script, devices=("/dev/ppp",))
    assert "lacks kernel support for PPP" not in output
    assert "Using interface ppp" in output and "10.99.0.1" in output, output
    assert "1 received" in output, output


def test_kernel_esp_state_can_be_installed(guest) -> None:
    script = (
        "ip xfrm state add src 198.51.100.1 dst 198.51.100.2 proto esp spi 0x1000 mode transport "
        "enc 'cbc(aes)' 0x00112233445566778899aabbccddeeff auth 'hmac(sha256)' "
        "0x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff && ip xfrm state list"
    )
    output = run_in_guest(guest, script)
    assert "proto esp spi 0x00001000" in output, output


def test_pptp_helper_attaches_to_a_control_connection(vpnlab_factory) -> None:
    lab = vpnlab_factory(
        {
            "name": "it-uml-helper",
            "router": {"helpers": ["pptp"]},
            "servers": [{"name": "vpn", "protocols": ["wireguard"]}],
            "clients": [{"name": "alice"}],
        },
        runtime="uml",
    )
    assert lab.runtime == "uml"
    assert "--helper pptp" in lab.exec("router", "iptables-save -t raw").output
    lab.exec("vpn", "busybox nc -l -p 1723 </dev/null >/dev/null 2>&1 & sleep 0.2")
    lab.exec("alice", "sleep 1 | busybox nc -w 3 203.0.113.10 1723 || true")
    conntrack = lab.exec("router", "conntrack -L -p tcp --dport 1723 2>/dev/null").output
    assert "helper=pptp" in conntrack, conntrack


def vpnlab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab", *args], capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)


# home-office has up tunnels and one a block drops: both kinds of verdict on both runtimes (a
# second topology of the same kinds, wireguard-blocked, cost CI 80 s and added no other kind)
@pytest.mark.parametrize("topology", ["topologies/home-office.yml"], ids=lambda p: Path(p).stem)
def test_same_observed_states_on_both_runtimes(topology: str, tmp_path: Path, vpnlab_runtimes: Runtimes) -> None:
    results = {}
    guests_before = {s.path for s in running_slots()}
    for runtime in ("docker", "uml"):
        out = tmp_path / f"{runtime}.json"
        proc = vpnlab("run", str(REPO / topology), "--runtime", runtime, "--json", str(out))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        # the guest a run booted does not outlive it
        assert {s.path for s in running_slots()} <= guests_before
        data = json.loads(out.read_text())
        assert data["runtime"] == runtime
        results[runtime] = [(t["client"], t["protocol"], t["observed"]) for t in data["tunnels"]]
    assert results["docker"] == results["uml"]
    assert data["kernel"].startswith("6.1"), data["kernel"]


def test_interrupted_uml_run_leaves_no_guest(vpnlab_runtimes: Runtimes) -> None:
    import signal
    import time

    opened = vpnlab_runtimes.opened("uml")
    own = opened.runtime.guest.slot.path if opened else None
    before = {s.path for s in running_slots()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lab", "run", "--runtime", "uml", str(HERE / "topologies" / "small.yml")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not ({s.path for s in running_slots()} - before):
        time.sleep(0.2)
    assert {s.path for s in running_slots()} - before, "the run never started a guest"
    time.sleep(3)  # mid-boot or mid-lab
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert [s.path for s in running_slots() if s.path != own] == [p for p in before if p != own]


def test_a_failing_guest_gives_one_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    import os

    slot = tmp_path / "uml" / "slot0"
    slot.mkdir(parents=True)
    with open(slot / "disk.img", "wb") as disk:  # not a file system: the guest cannot mount it
        disk.truncate(64 << 20)
    env = {**os.environ, "VPNLAB_STATE_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "lab", "run", "--runtime", "uml", str(HERE / "topologies" / "small.yml")],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, env=env,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "cannot mount the engine's disk image" in proc.stderr and "guest.log" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (slot / "guest.pid").exists()
    assert "failed: cannot mount" in (slot / "guest" / "status").read_text()


def test_root_in_the_guest_cannot_write_a_root_owned_host_folder(guest) -> None:
    """Whoever reaches the guest's engine is root in the guest: a privileged container mounts the
    host's root through hostfs, read-write, and writes into a folder only root may write on the host
    (its parents passable by anyone, so only the folder's owner and mode refuse), and reads a file
    only root may read. Both are refused: the guest's kernel runs as vpnlab's unprivileged guest user."""
    import os
    import shutil
    import tempfile

    target = Path(tempfile.mkdtemp(prefix="vpnlab-root-only-", dir="/var/tmp"))
    try:
        target.chmod(0o755)
        assert target.stat().st_uid == 0 or os.geteuid() != 0
        output = guest.client.containers.run(
            image_tag("client"),
            ["sh", "-c", f"mkdir -p /h && mount -t hostfs none /h -o / && echo mounted; "
                         f"ls -d /h{target} && echo x > /h{target}/written && echo WROTE || echo refused; "
                         f"head -c 1 /h/etc/shadow >/dev/null && echo READ || echo unreadable"],
            privileged=True, network_disabled=True, labels=LABELS, remove=True, stderr=True,
        ).decode()
        assert "mounted" in output, output  # hostfs is reachable: the boundary is the kernel process's uid
        assert f"/h{target}" in output, output  # the folder is seen: refused for its owner and mode alone
        assert "refused" in output and not (target / "written").exists(), output  # the host's file, not the guest's
        assert "unreadable" in output and "READ" not in output.replace("unreadable", ""), output
    finally:
        shutil.rmtree(target)
    slot = guest.runtime.guest.slot
    kernel = slot.kernel_processes()
    uids = {Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[1] for pid in kernel}
    assert kernel and "0" not in uids, uids  # the effective uid of the guest's kernel on the host
