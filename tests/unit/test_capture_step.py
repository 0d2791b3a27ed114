"""The capture step without Docker: its model, tcpdump's start and stop against a scripted node,
the runner with a scripted capture, per-tunnel pcap facts, the JSON and the terminal lines."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import dpkt
import pytest
from rich.console import Console

from lab.errors import CaptureError
from lab.pcap_facts import gre_call_ids_from, pcap_facts, tunnel_facts
from lab.plan import plan_lab
from lab.protocols.base import Environment
from lab.report import print_result
from lab.runtime.lab import ExecResult
from lab.steps import capture_step
from lab.steps import runner as runner_module
from lab.steps.capture_step import LISTENING, STOP, call_id_fact, capture_bound, on_path, start_capture
from lab.steps.model import Step, flattened, named_tunnels
from lab.steps.results import StepResult, step_line
from lab.steps.runner import StepRunner
from lab.topology import parse_topology
from tests.unit.test_pcap_facts import CLIENT, LINUX_SLL, SERVER, gre_v1, ip, pcap, tcp, udp
from tests.unit.test_steps import Kernel, ScriptedLab, run_result, topology_with

CAPTURE = """  - check: {expect: {alice/wireguard: up}}
  - capture:
      node: router
      during:
        - check: {expect: {bob/wireguard: up}, from: server}
        - wait: 3
"""
WG_UP = "vpnlab-result up 40 ping 10.100.0.1 answered through wg0"


def esp_in_udp(src: str, dst: str) -> dpkt.ip.IP:
    return udp(src, 4500, dst, 4500, b"\x00\x00\x10\x01" + b"\x00" * 12)  # SPI 0x1001: not IKE's zero marker


def nat_t_capture() -> bytes:
    return pcap([udp(CLIENT, 500, SERVER, 500), udp(SERVER, 500, CLIENT, 500), esp_in_udp(CLIENT, SERVER),
                 esp_in_udp(SERVER, CLIENT), udp(CLIENT, 40000, SERVER, 51820), udp(SERVER, 51820, CLIENT, 40000)])


# --- the model --------------------------------------------------------------


def test_a_capture_holds_its_steps_and_their_tunnels_count_as_named() -> None:
    topology = topology_with(CAPTURE)
    capture = topology.steps[1].capture
    assert capture is not None and (capture.node, capture.interface) == ("router", None)
    assert [s.kind for s in capture.during] == ["check", "wait"]
    assert [s.kind for s in flattened(topology.steps)] == ["check", "capture", "check", "wait"]
    # bob's tunnel is named only inside the capture: the steps start it, not the check before them
    assert named_tunnels(topology.steps, topology.tunnels) == [0, 1]


def test_capture_bound_outlasts_the_steps_inside() -> None:
    during = [Step.model_validate({"wait": 20}), Step.model_validate({"flush": "conntrack"})]
    assert capture_bound(during) == 20 + 600 + 60
    inner = Step.model_validate({"capture": {"node": "vpn", "during": [{"wait": 3600}]}})
    assert capture_bound([inner]) == (3600 + 60) + 60  # an inner capture's long wait outlasts no outer bound


@pytest.mark.parametrize(("node", "role", "interface", "crossed"), [
    ("router", "router", "wan0", True), ("router", "router", "lan0", True), ("router", "router", "any", True),
    ("router", "router", "lo", False), ("alice", "client", "eth0", True), ("alice", "client", "wg0", False),
    ("vpn", "server", "any", True), ("bob", "client", "eth0", False),
])
def test_a_tunnels_packets_cross_the_router_and_its_own_ends_links(node: str, role: str, interface: str, crossed: bool) -> None:
    assert on_path(node, role, interface, "alice", "vpn") is crossed


@pytest.mark.parametrize("interface", ["wan0", "lan0", "any"])
def test_the_routers_own_tunnel_crosses_its_interfaces(interface: str) -> None:
    assert on_path("router", "router", interface, "router", "vpn")  # client: router (it dials itself)


def test_the_routers_own_call_is_one_side_and_no_rewrite_is_claimed() -> None:
    # client: router: the router's WAN address is the call's end, so both "sides" are one list
    assert call_id_fact({"203.0.113.1": [0x80]}, "203.0.113.1", "203.0.113.1") is None


# --- tcpdump started and stopped in a scripted node ---------------------------


@dataclass
class TcpdumpNode:
    """A node whose tcpdump runs until STOP: answers each exec by the script it runs."""

    name: str = "t"
    listens: bool = True
    stopped: threading.Event = field(default_factory=threading.Event)
    scripts: list[str] = field(default_factory=list)

    def container(self, node: str) -> SimpleNamespace:
        return SimpleNamespace(labels={"vpnlab.role": "router" if node == "router" else "client"})

    def exec(self, node: str, command: list[str], *, container: object = None, timeout: float | None = None) -> ExecResult:
        if command == ["ls", "/sys/class/net"]:
            return ExecResult(node, "ls", 0, "eth0\nlan0\nlo\nwan0\n")
        script = command[2]
        self.scripts.append(script)
        if "exec timeout" in script:
            assert command[3:5] == ["sh", "700"] and command[5] == "wan0" and command[6].startswith("/tmp/vpnlab-capture-")
            self.stopped.wait(5)
            return ExecResult(node, script, 0 if self.listens else 1, "")
        if script == LISTENING:
            return ExecResult(node, script, 0 if self.listens else 1, "")
        if script == STOP:
            self.stopped.set()
        if script.startswith("cat"):
            said = "listening on wan0, link-type EN10MB\n6 packets captured\n" if self.listens else "tcpdump: wan0: No such device\n"
            return ExecResult(node, script, 0, said)
        return ExecResult(node, script, 0, "")


def test_tcpdump_listens_until_stopped_then_the_node_forgets_the_capture(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture_step, "read_bytes", lambda container, path: nat_t_capture())
    node = TcpdumpNode()
    listening = start_capture(node, "router", None, 700)  # type: ignore[arg-type]
    assert listening.interface == "wan0" and not node.stopped.is_set()  # the router's default: its WAN side
    data, packets = listening.stop()
    assert (data, packets) == (nat_t_capture(), 6)
    assert node.scripts[-1] == 'rm -f "$1" "$1.pid" "$1.log"'


def test_tcpdump_that_never_listens_is_the_steps_error(monkeypatch: pytest.MonkeyPatch) -> None:
    node = TcpdumpNode(listens=False)
    node.stopped.set()  # it ends at once
    with pytest.raises(CaptureError, match="did not start listening on wan0.*exit 1.*No such device"):
        start_capture(node, "router", "wan0", 700)  # type: ignore[arg-type]


def test_an_interface_the_node_lacks_is_named_with_those_it_has() -> None:
    with pytest.raises(CaptureError, match=r"has no interface 'eth9' \(it has: eth0, lan0, lo, wan0, any\)"):
        start_capture(TcpdumpNode(), "router", "eth9", 700)  # type: ignore[arg-type]


# --- per-tunnel facts -----------------------------------------------------------


def test_tunnel_facts_speak_of_each_protocols_own_flows() -> None:
    facts = tunnel_facts(nat_t_capture(), ["ikev2", "wireguard", "l2tp-ipsec", "pptp", "openvpn-udp"])
    assert facts["ikev2"] == ["UDP 500 (l2tp-ipsec, ikev2) both ways: 1 packet(s) out, 1 in",
                              "UDP 4500 (l2tp-ipsec, ikev2) both ways: 1 packet(s) out, 1 in",
                              "ESP only inside UDP 4500 (2 packet(s)), no bare ESP"]
    assert facts["wireguard"] == ["UDP 51820 (wireguard) both ways: 1 packet(s) out, 1 in"]
    assert facts["l2tp-ipsec"][-1] == "no bare UDP 1701"
    assert facts["pptp"] == ["no TCP 1723 packets (pptp)", "no GRE (IP protocol 47)"]
    assert facts["openvpn-udp"] == ["no UDP 1194 packets (openvpn-udp)"]


def test_l2tp_outside_esp_and_pptp_call_ids_are_told() -> None:
    data = pcap([udp(CLIENT, 1701, SERVER, 1701), tcp(CLIENT, 40000, SERVER, 1723),
                 ip(CLIENT, SERVER, dpkt.ip.IP_PROTO_GRE, gre_v1(0x1234))])
    facts = tunnel_facts(data, ["l2tp-ipsec", "pptp"])
    assert facts["l2tp-ipsec"][-1] == "bare UDP 1701: 1 packet(s), L2TP outside ESP"
    assert facts["pptp"] == ["TCP 1723 (pptp) one way only: 1 packet(s) out, none back",
                             "GRE call IDs seen: 0x1234 (1 GRE packet(s))"]


# --- the runner with a scripted capture ------------------------------------------


@dataclass
class FakeListening:
    interface: str
    data: bytes
    events: list[str]
    fails: bool = False

    def stop(self) -> tuple[bytes, int | None]:
        self.events.append("stop")
        if self.fails:
            raise CaptureError("router: tcpdump on wan0 failed (exit 1): gone")
        return self.data, 6


class NamedLab(ScriptedLab):
    name = "t"


def capture_runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fails: bool = False) -> tuple[StepRunner, list[str]]:
    events: list[str] = []

    def started(lab: object, node: str, interface: str | None, bound: int) -> FakeListening:
        events.append(f"start {node} {interface} {bound}")
        return FakeListening(interface or ("wan0" if node == "router" else "eth0"), nat_t_capture(), events, fails)

    monkeypatch.setattr(runner_module, "start_capture", started)
    monkeypatch.setattr(runner_module, "role_of", lambda lab, node: "router" if node == "router" else "client")
    monkeypatch.setattr(runner_module.time, "sleep", lambda s: events.append(f"wait {s:g}"))
    answers = [("bob", r"ip -4 -o address", "10.100.0.3"), ("vpn", r"10\.100\.0\.3 ", "vpnlab-result up 12 answered"),
               ("alice", r"check\.sh", WG_UP), ("bob", r"check\.sh", WG_UP)]
    plan = plan_lab(topology_with(CAPTURE), Environment())
    return StepRunner(NamedLab(answers), plan, Kernel(), captures=tmp_path / "pcaps"), events  # type: ignore[arg-type]


def test_the_capture_wraps_its_steps_and_keeps_the_pcap_and_its_facts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    runner, events = capture_runner(monkeypatch, tmp_path)
    _, captured = runner.run()
    assert events == ["start router None 663", "wait 3", "stop"]  # tcpdump around the steps, and only them
    pcap_file = tmp_path / "pcaps" / "t-steps1-router-wan0.pcap"
    assert pcap_file.read_bytes() == nat_t_capture()
    assert captured.passed and [s.kind for s in captured.during] == ["check", "wait"]
    data = captured.to_dict()
    assert {k: data[k] for k in ("index", "kind", "node", "interface", "pcap", "packets", "passed")} == {
        "index": 1, "kind": "capture", "node": "router", "interface": "wan0", "pcap": str(pcap_file), "packets": 6,
        "passed": True}
    assert data["evidence"] == {"facts": pcap_facts(nat_t_capture()),
                                "tunnels": {"bob/wireguard": ["UDP 51820 (wireguard) both ways: 1 packet(s) out, 1 in"]}}
    assert [s["kind"] for s in data["during"]] == ["check", "wait"] and data["during"][1]["index"] == 1
    assert data["during"][0]["verdicts"][0]["direction"] == "server"


def test_a_failed_capture_fails_its_step_and_keeps_its_steps_results(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    runner, _ = capture_runner(monkeypatch, tmp_path, fails=True)
    _, captured = runner.run()
    assert not captured.passed and "tcpdump on wan0 failed" in (captured.error or "")
    assert [s.kind for s in captured.during] == ["check", "wait"] and captured.during[0].passed
    assert "pcap" not in captured.to_dict() and not (tmp_path / "pcaps").exists()


def test_a_capture_that_cannot_start_runs_none_of_its_steps(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    runner, events = capture_runner(monkeypatch, tmp_path)

    def refused(lab: object, node: str, interface: str | None, bound: int) -> None:
        raise CaptureError("node 'router' of lab 't' has no interface 'eth9' (it has: lan0, lo, wan0, any)")

    monkeypatch.setattr(runner_module, "start_capture", refused)
    step = Step.model_validate({"capture": {"node": "router", "interface": "eth9", "during": [{"wait": 1}]}})
    result = runner.step(3, step)
    assert not result.passed and result.during == [] and events == []
    assert result.to_dict()["interface"] == "eth9" and "has no interface 'eth9'" in (result.error or "")


def test_a_capture_inside_a_capture_records_both_ends_at_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    runner, events = capture_runner(monkeypatch, tmp_path)
    both = Step.model_validate({"capture": {"node": "router", "interface": "lan0", "during": [
        {"capture": {"node": "vpn", "during": [{"check": {"expect": {"bob/wireguard": "up"}, "from": "server"}}]}}]}})
    outer = runner.step(4, both)
    assert events == ["start router lan0 720", "start vpn None 660", "stop", "stop"]
    [inner] = outer.during
    assert outer.passed and inner.passed and inner.detail["interface"] == "eth0"  # a server's default: its link
    assert Path(outer.detail["pcap"]).name == "t-steps4-router-lan0.pcap"
    assert Path(inner.detail["pcap"]).name == "t-steps4-during0-vpn-eth0.pcap" and Path(inner.detail["pcap"]).is_file()
    # the check inside both: its tunnel crosses the router and the server's link
    assert list(outer.detail["evidence"]["tunnels"]) == list(inner.detail["evidence"]["tunnels"]) == ["bob/wireguard"]
    console = Console(record=True, width=300)
    console.print(step_line(outer))
    text = console.export_text()
    assert "\n  ✓ steps[4].capture.during[0] capture vpn eth0" in text
    assert "\n    ✓ steps[4].capture.during[0].capture.during[0] check from server" in text


def test_the_terminal_shows_the_capture_its_steps_and_the_tunnels_facts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    runner, _ = capture_runner(monkeypatch, tmp_path)
    console = Console(record=True, width=300)
    print_result(run_result(runner.run()), console)
    text = console.export_text()
    pcap_file = tmp_path / "pcaps" / "t-steps1-router-wan0.pcap"
    assert f"✓ steps[1] capture router wan0 (6 packet(s), {pcap_file})" in text
    assert "  ✓ steps[1].capture.during[0] check from server: bob/wireguard up" in text
    assert "  ✓ steps[1].capture.during[1] wait 3 s" in text
    assert "  bob/wireguard in the capture:\n    UDP 51820 (wireguard) both ways: 1 packet(s) out, 1 in\n" in text
    failed = StepResult(0, "capture", 1.0, detail={"node": "vpn", "interface": "eth0"}, error="the capture failed: x")
    console = Console(record=True, width=300)
    console.print(step_line(failed))
    assert console.export_text().strip() == "✗ steps[0] capture vpn eth0 (no pcap): the capture failed: x (1.00 s)"
    quiet = StepResult(0, "capture", 1.0, detail={"node": "vpn", "interface": "lo", "pcap": "x.pcap", "packets": 0,
                                                  "evidence": {"facts": ["no packets captured"], "tunnels": {}}})
    console = Console(record=True, width=300)
    console.print(step_line(quiet))
    assert console.export_text() == "✓ steps[0] capture vpn lo (0 packet(s), x.pcap) (1.00 s)\n  the capture:\n    no packets captured\n"


# --- the PPTP call ID across the router (a capture of both its sides) ---------------


def gre(src: str, dst: str, call_id: int) -> dpkt.ip.IP:
    return ip(src, dst, dpkt.ip.IP_PROTO_GRE, gre_v1(call_id))


def test_the_call_id_the_router_rewrote_is_told_from_both_sides_of_it(tmp_path: Path) -> None:
    topology = parse_topology("name: t\nservers: [{name: vpn, protocols: [pptp]}]\nclients: [{name: alice}]\n"
                              "tunnels: [{client: alice, server: vpn, protocol: pptp}]\n")
    plan = plan_lab(topology, Environment())
    server, client, router_wan = str(plan.addresses.servers["vpn"]), str(plan.addresses.clients["alice"]), str(plan.addresses.router_wan)
    # -i any on the router: each GRE packet of the server's twice, to the router's WAN address, then on to the client
    rewritten = pcap([gre(server, router_wan, 0x4001), gre(server, client, 0x0001), gre(server, router_wan, 0x4001)], LINUX_SLL)
    assert gre_call_ids_from(rewritten, server) == {router_wan: [0x4001], client: [0x0001]}
    runner = StepRunner(NamedLab([]), plan, Kernel(), captures=tmp_path)  # type: ignore[arg-type]
    assert runner._capture_facts(rewritten, "alice/pptp", "pptp")[-1] == \
        f"GRE call ID from the server: 0x4001 to the router's {router_wan}, 0x0001 on to {client} (rewritten by the router)"
    kept = pcap([gre(server, router_wan, 0x0001), gre(server, client, 0x0001), gre(client, server, 0x7)], LINUX_SLL)
    assert runner._capture_facts(kept, "alice/pptp", "pptp")[-1].endswith("(the same on both sides: not rewritten)")
    assert call_id_fact(gre_call_ids_from(kept, server), router_wan, "192.168.100.99") is None  # one side only: nothing said


def test_a_tunnel_on_a_moved_port_is_told_by_that_port(tmp_path: Path) -> None:
    topology = parse_topology("name: t\nservers: [{name: vpn, protocols: [openvpn-tcp]}]\nclients: [{name: alice}]\n"
                              "tunnels: [{client: alice, server: vpn, protocol: openvpn-tcp, options: {port: 443}}]\n")
    plan = plan_lab(topology, Environment())
    server, client = str(plan.addresses.servers["vpn"]), str(plan.addresses.clients["alice"])
    data = pcap([ip(client, server, dpkt.ip.IP_PROTO_TCP, dpkt.tcp.TCP(sport=40000, dport=443)),
                 ip(server, client, dpkt.ip.IP_PROTO_TCP, dpkt.tcp.TCP(sport=443, dport=40000))], LINUX_SLL)
    runner = StepRunner(NamedLab([]), plan, Kernel(), captures=tmp_path)  # type: ignore[arg-type]
    assert runner._capture_facts(data, "alice/openvpn-tcp", "openvpn-tcp") == [
        "TCP 443 (openvpn-tcp) both ways: 1 packet(s) out, 1 in"]
    # the protocol's own port, as the registry has it, is not what this tunnel used
    assert tunnel_facts(data, ["openvpn-tcp"])["openvpn-tcp"] == ["no TCP 1194 packets (openvpn-tcp)"]


def test_each_tunnel_is_told_only_its_own_servers_packets(tmp_path: Path) -> None:
    topology = parse_topology("name: t\nservers: [{name: one, protocols: [wireguard]}, {name: two, protocols: [wireguard]}]\n"
                              "clients: [{name: alice}]\n"
                              "tunnels: [{client: alice, server: one, protocol: wireguard}, {client: alice, server: two, protocol: wireguard}]\n")
    plan = plan_lab(topology, Environment())
    one, two, client = (str(plan.addresses.servers["one"]), str(plan.addresses.servers["two"]), str(plan.addresses.clients["alice"]))
    wg = dpkt.udp.UDP(sport=40000, dport=51820, data=b"\x01" + bytes(40))
    back = dpkt.udp.UDP(sport=51820, dport=40000, data=b"\x02" + bytes(40))
    # the tunnel to 'one' answered; the one to 'two' only knocked, three times
    data = pcap([ip(client, one, dpkt.ip.IP_PROTO_UDP, wg), ip(one, client, dpkt.ip.IP_PROTO_UDP, back),
                 *[ip(client, two, dpkt.ip.IP_PROTO_UDP, wg)] * 3], LINUX_SLL)
    runner = StepRunner(NamedLab([]), plan, Kernel(), captures=tmp_path)  # type: ignore[arg-type]
    assert runner._capture_facts(data, "alice/one/wireguard", "wireguard") == [
        "UDP 51820 (wireguard) both ways: 1 packet(s) out, 1 in"]
    assert runner._capture_facts(data, "alice/two/wireguard", "wireguard") == [
        "UDP 51820 (wireguard) one way only: 3 packet(s) out, none back"]
