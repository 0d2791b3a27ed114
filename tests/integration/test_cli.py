"""The vpnlab command as users run it: exit codes, JSON, errors without tracebacks, nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

HERE = Path(__file__).parent
SMALL = HERE / "topologies" / "small.yml"


def vpnlab(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab", *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def lab_objects(client: docker.DockerClient, lab: str) -> list[str]:
    flt = {"label": f"vpnlab.lab={lab}"}
    return [c.attrs["Names"][0] for c in client.containers.list(all=True, filters=flt, sparse=True)] + [
        n.name for n in client.networks.list(filters=flt)
    ]


@pytest.fixture(scope="module")
def engine(vpnlab_session) -> docker.DockerClient:
    return vpnlab_session.client


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topology.yml"
    path.write_text(text)
    return path


def test_run_writes_json_and_exits_zero(engine, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = vpnlab("run", str(SMALL), "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    assert data["passed"] is True and data["runtime"] == "docker" and data["kernel"]
    [tunnel] = data["tunnels"]
    assert {"client", "server", "protocol", "expect", "observed", "reason", "seconds", "evidence"} <= set(tunnel)
    assert tunnel["observed"] == "up" and tunnel["evidence"]["router_conntrack"]
    assert "dave" in proc.stdout and "wireguard" in proc.stdout
    assert lab_objects(engine, "it-small") == []


def test_unexpected_state_exits_one(engine, tmp_path: Path) -> None:
    path = write(tmp_path, SMALL.read_text().replace("name: it-small", "name: it-wrong").replace("expect: up", "expect: down"))
    proc = vpnlab("run", str(path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL" in proc.stdout
    assert lab_objects(engine, "it-wrong") == []


def test_bad_topology_exits_two_with_locations_and_creates_nothing(engine, tmp_path: Path) -> None:
    path = write(tmp_path, SMALL.read_text().replace("name: it-small", "name: it-bad").replace("protocol: wireguard", "protocol: wiregaurd"))
    proc = vpnlab("run", str(path))
    assert proc.returncode == 2
    assert "tunnels[0].protocol: unknown protocol 'wiregaurd'" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert lab_objects(engine, "it-bad") == []


def test_missing_file_exits_two() -> None:
    proc = vpnlab("validate", "/nonexistent/topology.yml")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_up_is_idempotent_and_a_name_in_use_is_refused(engine, tmp_path: Path) -> None:
    try:
        first = vpnlab("up", str(SMALL))
        assert first.returncode == 0, first.stderr
        ids = sorted(c.id for c in engine.containers.list(filters={"label": "vpnlab.lab=it-small"}))
        again = vpnlab("up", str(SMALL))
        assert again.returncode == 0 and "already up" in again.stderr
        assert sorted(c.id for c in engine.containers.list(filters={"label": "vpnlab.lab=it-small"})) == ids

        other = write(tmp_path, SMALL.read_text().replace("name: dave", "name: erin").replace("client: dave", "client: erin"))
        clash = vpnlab("up", str(other))
        assert clash.returncode == 2 and "already running" in clash.stderr and "vpnlab down it-small" in clash.stderr

        status = vpnlab("status")
        assert "it-small" in status.stdout and "router" in status.stdout
        saved = vpnlab("exec", "--lab", "it-small", "router", "--", "iptables-save")
        assert saved.returncode == 0 and "MASQUERADE" in saved.stdout
        missing = vpnlab("exec", "--lab", "it-small", "nobody", "--", "true")
        assert missing.returncode == 2 and "no node 'nobody'" in missing.stderr
        checked = vpnlab("check", "it-small")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        # checking a running lab again starts its tunnels anew (it was an error: the interface existed);
        # --lab names it as exec and capture take it (no name: the one lab running, a unit test)
        again = vpnlab("check", "--lab", "it-small")
        assert again.returncode == 0 and "error" not in again.stdout, again.stdout + again.stderr
        assert "it-small" in again.stdout
    finally:
        down = vpnlab("down", "it-small")
    assert down.returncode == 0
    assert lab_objects(engine, "it-small") == []


def wait_for_containers(engine: docker.DockerClient, lab: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if engine.containers.list(all=True, filters={"label": f"vpnlab.lab={lab}"}, sparse=True):
            return
        time.sleep(0.05)
    pytest.fail(f"lab {lab} never appeared")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_run_leaves_nothing(engine, sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lab", "run", str(SMALL)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, text=True,
    )
    wait_for_containers(engine, "it-small")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert lab_objects(engine, "it-small") == []


def test_killed_run_is_cleaned_by_the_next_run(engine) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "lab", "run", str(SMALL)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    wait_for_containers(engine, "it-small")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert lab_objects(engine, "it-small"), "a killed run leaves its lab behind until the next run"
    again = vpnlab("run", str(SMALL))
    assert again.returncode == 0, again.stdout + again.stderr
    assert lab_objects(engine, "it-small") == []


def test_doctor_json_names_missing_features(engine) -> None:
    proc = vpnlab("doctor", "--json")
    data = json.loads(proc.stdout)
    assert data["runtimes"], data
    text = json.dumps(data)
    assert "wireguard" in text and "openvpn-udp" in text


def test_a_client_gone_mid_lab_is_its_tunnels_error_and_the_others_keep_their_verdicts(engine, tmp_path: Path) -> None:
    text = SMALL.read_text().replace("name: it-small", "name: it-gone").replace(
        "  - name: dave", "  - name: dave\n  - name: erin"
    ) + "  - {client: erin, server: vpn, protocol: wireguard, expect: up}\n"
    out = tmp_path / "result.json"
    try:
        assert vpnlab("up", str(write(tmp_path, text))).returncode == 0
        engine.containers.get("vpnlab-it-gone-erin").remove(force=True)
        checked = vpnlab("check", "it-gone", "--json", str(out))
        assert checked.returncode == 1, checked.stdout + checked.stderr
        verdicts = {t["client"]: (t["observed"], t["reason"]) for t in json.loads(out.read_text())["tunnels"]}
        assert verdicts["dave"][0] == "up"
        assert verdicts["erin"][0] == "error" and "NodeNotFound" in verdicts["erin"][1], verdicts
        assert "Traceback" not in checked.stdout + checked.stderr
    finally:
        down = vpnlab("down", "it-gone")
    assert down.returncode == 0, down.stderr
    assert lab_objects(engine, "it-gone") == []
