"""The capture step on real labs (docker runtime): a pcap of a node's interface around other
steps, written to the host, read back with ``tcpdump -r``, its facts in the step's evidence
exactly as the capture holds them."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import sys
from pathlib import Path

from lab.pcap_facts import gre_call_ids_from, pcap_facts, tunnel_facts
from lab.steps.capture_step import call_id_fact
from tests.integration.test_cli import vpnlab

REPO = Path(__file__).resolve().parent.parent.parent
NAT_TRAVERSAL = REPO / "topologies" / "capture-nat-traversal.yml"
LAB = "capture-nat-traversal"
DOCKER = ("--runtime", "docker")


def tcpdump_reads(client, lab: str, pcap: Path) -> str:
    """``tcpdump -n -r`` of ``pcap`` in the lab's router (the host has no tcpdump; every lab image
    has), through ``client``: the engine the lab runs on."""
    [router] = client.containers.list(filters={"label": [f"vpnlab.lab={lab}", "vpnlab.node=router"]})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(pcap, arcname="tmp/read-back.pcap")
    router.put_archive("/", buffer.getvalue())
    read = router.exec_run(["tcpdump", "-n", "-r", "/tmp/read-back.pcap"], demux=True)
    out, err = (part.decode(errors="replace") if part else "" for part in read.output)
    assert read.exit_code == 0, out + err
    assert "reading from file /tmp/read-back.pcap" in err, err
    return out


def test_run_writes_the_wan_capture_next_to_the_json_with_its_facts(vpnlab_session, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "lab", "run", str(NAT_TRAVERSAL), *DOCKER, "--json", str(out), "--keep"],
            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
        )
        print(proc.stdout)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        [step] = json.loads(out.read_text())["steps"]
        assert (step["kind"], step["node"], step["interface"], step["passed"]) == ("capture", "router", "wan0", True)
        assert [s["kind"] for s in step["during"]] == ["check", "check"]
        assert all(v["observed"] == "up" for s in step["during"] for v in s["verdicts"])

        pcap = Path(step["pcap"])
        assert pcap == tmp_path / f"{LAB}-steps0-router-wan0.pcap" and pcap.is_file()
        data = pcap.read_bytes()
        printed = tcpdump_reads(vpnlab_session.client, LAB, pcap)
        assert ".4500: UDP-encap" in printed or ".4500: NONESP-encap" in printed, printed[-2000:]
        assert ".51820: UDP" in printed, printed[-2000:]
        assert len(printed.splitlines()) == step["packets"]  # tcpdump reads back every packet it counted

        evidence = step["evidence"]
        assert evidence["facts"] == pcap_facts(data)  # what the capture holds, nothing else
        assert evidence["tunnels"] == {
            "alice/ikev2": tunnel_facts(data, ["ikev2"])["ikev2"],
            "alice/wireguard": tunnel_facts(data, ["wireguard"])["wireguard"],
        }
        ikev2 = evidence["tunnels"]["alice/ikev2"]
        assert any(f.startswith("ESP only inside UDP 4500") for f in ikev2), ikev2  # NAT-T through the masquerade
        assert any(f.startswith("UDP 4500 (") and " both ways: " in f for f in ikev2), ikev2
        assert any(f.startswith("UDP 51820 (wireguard) both ways") for f in evidence["tunnels"]["alice/wireguard"])
        # the terminal shows the capture, its steps and the tunnels' facts
        assert "steps[0] capture router wan0" in proc.stdout and "steps[0].capture.during[1] check" in proc.stdout
        assert "  alice/ikev2 in the capture:\n" in proc.stdout and "\n    ESP only inside UDP 4500 (" in proc.stdout
    finally:
        down = vpnlab("down", LAB, *DOCKER)
    assert down.returncode == 0, down.stdout + down.stderr


def test_plugin_runs_a_capture_of_a_clients_link_and_the_routers_at_once(vpnlab_factory, tmp_path: Path) -> None:
    lab = vpnlab_factory({
        "name": "it-capture-step",
        "servers": [{"name": "vpn", "protocols": ["wireguard"]}],
        "clients": [{"name": "dave"}],
        "tunnels": [{"client": "dave", "server": "vpn", "protocol": "wireguard"}],
        "steps": [
            {"check": {"expect": {"dave/wireguard": "up"}}},
            {"capture": {"node": "dave", "during": [
                {"capture": {"node": "router", "interface": "lan0", "during": [
                    {"check": {"expect": {"dave/wireguard": "up"}, "from": "server"}}]}},
                {"exec": {"node": "dave", "run": "ip -o link show eth0"}},
            ]}},
            {"capture": {"node": "dave", "interface": "eth9", "during": [{"wait": 1}]}},
        ],
    }, runtime="docker")
    started, captured, wrong = lab.run_steps(tmp_path / "pcaps")
    assert started.passed and captured.passed, captured.to_dict()
    router, _ = captured.during
    assert (captured.detail["interface"], router.detail["interface"]) == ("eth0", "lan0")  # a client's default: its link
    for step, name in ((captured, "it-capture-step-steps1-dave-eth0.pcap"),
                       (router, "it-capture-step-steps1-during0-router-lan0.pcap")):
        pcap = Path(step.detail["pcap"])
        assert pcap == tmp_path / "pcaps" / name and pcap.is_file()
        printed = tcpdump_reads(lab.lab.client, "it-capture-step", pcap)
        assert ".51820: UDP" in printed, printed[-2000:]
        facts = step.detail["evidence"]["tunnels"]["dave/wireguard"]
        assert facts == tunnel_facts(pcap.read_bytes(), ["wireguard"])["wireguard"]
        assert any(f.startswith("UDP 51820 (wireguard) both ways") for f in facts), facts
    # an interface the node lacks: that step fails naming what is there, and runs nothing inside
    assert not wrong.passed and "has no interface 'eth9'" in (wrong.error or "") and "eth0" in (wrong.error or "")
    assert wrong.during == []


def test_a_capture_of_both_sides_of_the_router_tells_the_pptp_call_id(vpnlab_factory, tmp_path: Path) -> None:
    """PPTP (PPP: the UML guest on a host without ppp_generic) through the router's helper,
    captured on every interface of the router: the call ID of the server's GRE on each side."""
    lab = vpnlab_factory({
        "name": "it-capture-pptp",
        "router": {"nat": "masquerade", "helpers": ["pptp"]},
        "servers": [{"name": "vpn", "protocols": ["pptp"]}],
        "clients": [{"name": "alice"}],
        "tunnels": [{"client": "alice", "server": "vpn", "protocol": "pptp"}],
        "steps": [{"capture": {"node": "router", "interface": "any", "during": [
            {"check": {"expect": {"alice/pptp": "up"}}},
            {"check": {"expect": {"alice/pptp": "up"}, "from": "server"}}]}}],
    })
    [captured] = lab.run_steps(tmp_path)
    assert captured.passed, captured.to_dict()
    pcap = Path(captured.detail["pcap"])
    printed = tcpdump_reads(lab.lab.client, "it-capture-pptp", pcap)
    assert ".1723: Flags" in printed and "GREv1" in printed, printed[-2000:]
    data = pcap.read_bytes()
    facts = captured.detail["evidence"]["tunnels"]["alice/pptp"]
    print("\n".join(facts))  # with -s: what this kernel's helper did to the call ID
    addresses = lab.plan.addresses
    call_ids = gre_call_ids_from(data, str(addresses.servers["vpn"]))
    told = call_id_fact(call_ids, str(addresses.router_wan), str(addresses.clients["alice"]))
    assert told is not None and facts == tunnel_facts(data, ["pptp"])["pptp"] + [told], facts
    assert any(f.startswith("TCP 1723 (pptp) both ways") for f in facts), facts
    assert any(f.startswith("GRE call IDs seen: 0x") for f in facts), facts
