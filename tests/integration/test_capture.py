"""vpnlab capture on a running lab: a pcap of the router's WAN side while a ping crosses an
OpenVPN UDP tunnel, which tcpdump reads and whose facts name UDP 1194 both ways."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import docker
import pytest

from lab.pcap_facts import pcap_facts
from tests.integration.test_cli import lab_objects, vpnlab, write

LAB = "it-capture"
TOPOLOGY = f"""name: {LAB}
servers:
  - name: vpn
    protocols: [openvpn-udp]
clients:
  - name: dave
tunnels:
  - {{client: dave, server: vpn, protocol: openvpn-udp, expect: up}}
"""
DOCKER = ("--runtime", "docker")


@pytest.fixture(scope="module")
def engine(vpnlab_session) -> docker.DockerClient:
    return vpnlab_session.client


def server_tunnel_address() -> str:
    """The server's address on its OpenVPN interface (ovu...), where the client's ping goes."""
    shown = vpnlab("exec", "--lab", LAB, *DOCKER, "vpn", "--", "ip", "-4", "-o", "addr", "show")
    found = re.search(r"^\d+: ovu\S*\s+inet (\d+\.\d+\.\d+\.\d+)/", shown.stdout, re.M)
    assert found, shown.stdout + shown.stderr
    return found.group(1)


def tcpdump_reads(engine: docker.DockerClient, pcap: Path) -> subprocess.CompletedProcess[str]:
    """``tcpdump -r`` on the host when it has tcpdump, else in the lab's router (its image has it)."""
    if shutil.which("tcpdump"):
        return subprocess.run(["tcpdump", "-n", "-r", str(pcap)], capture_output=True, text=True, timeout=60)
    [router] = engine.containers.list(filters={"label": [f"vpnlab.lab={LAB}", "vpnlab.node=router"]})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(pcap, arcname="tmp/read-back.pcap")
    router.put_archive("/", buffer.getvalue())
    return vpnlab("exec", "--lab", LAB, *DOCKER, "router", "--", "tcpdump", "-n", "-r", "/tmp/read-back.pcap")


def test_capture_of_the_routers_wan_side_shows_the_tunnel(engine, tmp_path: Path) -> None:
    pcap = tmp_path / "wan.pcap"
    try:
        up = vpnlab("up", str(write(tmp_path, TOPOLOGY)), *DOCKER)
        assert up.returncode == 0, up.stdout + up.stderr
        checked = vpnlab("check", LAB, *DOCKER)
        assert checked.returncode == 0, checked.stdout + checked.stderr

        wrong = vpnlab("capture", "--lab", LAB, *DOCKER, "router", "--interface", "eth9", "--seconds", "1")
        assert wrong.returncode == 2 and "has no interface 'eth9'" in wrong.stderr and "wan0" in wrong.stderr
        assert "Traceback" not in wrong.stderr

        target = server_tunnel_address()
        capture = subprocess.Popen(
            [sys.executable, "-m", "lab", "capture", "--lab", LAB, *DOCKER, "router", "--seconds", "4", "-o", str(pcap)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
        )
        time.sleep(1.5)  # tcpdump listening before the ping starts
        ping = vpnlab("exec", "--lab", LAB, *DOCKER, "dave", "--", "ping", "-c", "3", "-i", "0.5", "-W", "2", target)
        out, err = capture.communicate(timeout=90)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert capture.returncode == 0, out + err
        assert f"wrote {pcap}" in out and "router wan0 for 4 s" in out

        read = tcpdump_reads(engine, pcap)
        assert read.returncode == 0, read.stdout + read.stderr
        assert ".1194:" in read.stdout  # packets to or from the OpenVPN port, as tcpdump prints them
        facts = pcap_facts(pcap.read_bytes())
        assert any(fact.startswith("UDP 1194 (openvpn-udp) both ways") for fact in facts), facts
        assert "UDP 1194 (openvpn-udp) both ways" in out  # the command printed the same facts
    finally:
        down = vpnlab("down", LAB, *DOCKER)
    assert down.returncode == 0, down.stdout + down.stderr
    assert lab_objects(engine, LAB) == []
