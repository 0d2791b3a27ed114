"""Scenarios (topology steps) on real labs, on the host's engine: WireGuard (wireguard-go) there."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .scenario_run import run_topology

REPO = Path(__file__).resolve().parent.parent.parent
NAT_TIMEOUT = REPO / "topologies" / "scenario-nat-timeout.yml"


def test_nat_timeout_shorter_than_idle_breaks_the_way_in_until_the_client_speaks(vpnlab_session, tmp_path: Path) -> None:
    proc, data = run_topology(NAT_TIMEOUT, tmp_path / "result.json", "docker")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert data["passed"] is True and data["runtime"] == "docker"
    assert [(t["client"], t["observed"]) for t in data["tunnels"]] == [("silent", "up"), ("chatty", "up")]

    steps = data["steps"]
    assert [s["kind"] for s in steps] == ["check", "wait", "check", "check", "check"]
    assert all(s["passed"] for s in steps)
    assert steps[1]["seconds"] >= 12

    def verdicts(step: dict) -> dict[str, dict]:
        return {v["tunnel"]: v for v in step["verdicts"]}

    both_up = verdicts(steps[0])
    assert both_up["silent/wireguard"]["observed"] == both_up["chatty/wireguard"]["observed"] == "up"
    assert both_up["silent/wireguard"]["evidence"]["router_conntrack"]  # the client's flow, mapped by the router

    after_idle = verdicts(steps[2])
    silent, chatty = after_idle["silent/wireguard"], after_idle["chatty/wireguard"]
    assert silent["direction"] == chatty["direction"] == "server"
    assert silent["observed"] == "down" and chatty["observed"] == "up"
    # the router forgot the silent client's mapping: no entry for its flow; the keepalive kept the other's
    assert silent["evidence"]["router_conntrack"] == []
    assert "no router conntrack entry for udp/51820" in silent["reason"]
    assert any("dport=51820" in line for line in chatty["evidence"]["router_conntrack"])

    healed = verdicts(steps[3])["silent/wireguard"]
    assert healed["direction"] == "client" and healed["observed"] == "up"
    assert healed["evidence"]["router_conntrack"]  # the client's packet made a new mapping
    way_in = verdicts(steps[4])["silent/wireguard"]
    assert way_in["direction"] == "server" and way_in["observed"] == "up"

    lines = [line for line in proc.stdout.splitlines() if "steps[" in line]
    assert len(lines) == 5 and "steps[2] check from server" in lines[2]
    left = vpnlab_session.client.containers.list(all=True, filters={"label": "vpnlab.lab=scenario-nat-timeout"})
    assert left == []  # the run tore its lab down


def test_plugin_runs_steps_flush_breaks_the_way_in(vpnlab_factory) -> None:
    lab = vpnlab_factory({
        "name": "it-steps-flush",
        "servers": [{"name": "vpn", "protocols": ["wireguard"]}],
        "clients": [{"name": "dave"}],
        "tunnels": [{"client": "dave", "server": "vpn", "protocol": "wireguard"}],
        "steps": [
            {"check": {"expect": {"dave/wireguard": "up"}}},
            {"flush": "conntrack"},
            {"exec": {"node": "router", "run": "conntrack -L -p udp --dport 51820 2>/dev/null | wc -l"}},
            {"check": {"expect": {"dave/wireguard": "down"}, "from": "server"}},
        ],
    }, runtime="docker")
    started, flush, count, from_server = lab.run_steps()
    assert started.verdicts[0].observed == "up" and lab.check("dave", "wireguard").observed == "up"
    assert flush.passed and flush.detail["node"] == "router"
    assert from_server.verdicts[0].observed == "down", from_server.verdicts[0].reason
    assert from_server.verdicts[0].evidence == {"router_conntrack": []}
    assert count.passed and count.detail["output"] == ["0"]


SWITCH_FLIP = REPO / "topologies" / "scenario-switch-flip.yml"


def _rule(lines: list[str], comment: str) -> tuple[int, int] | None:
    """(place among the FORWARD rules, packets its counter holds) of the rule with ``comment``."""
    forward = [line for line in lines if line.startswith("-A FORWARD")]
    for place, line in enumerate(forward):
        if f'"{comment}"' in line:
            counter = re.search(r" -c (\d+) \d+", line)
            assert counter is not None, line
            return place, int(counter.group(1))
    return None


def _established(lines: list[str]) -> int:
    forward = [line for line in lines if line.startswith("-A FORWARD")]
    return next(place for place, line in enumerate(forward) if "ESTABLISHED" in line)


def _sports(entries: list[str]) -> set[str]:
    return {m.group(1) for line in entries for m in [re.search(r"sport=(\d+) dport=1194 ", line)] if m}


def test_a_block_switched_on_while_the_tunnel_is_up_stops_it_at_once(vpnlab_session, tmp_path: Path) -> None:
    proc, data = run_topology(SWITCH_FLIP, tmp_path / "result.json", "docker")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = data["steps"]
    assert [s["kind"] for s in steps] == ["check", "router", "check", "router", "check"]
    assert all(s["passed"] for s in steps), json.dumps(steps, indent=1)

    def verdicts(step: dict) -> dict[str, dict]:
        return {v["tunnel"]: v for v in step["verdicts"]}

    up = verdicts(steps[0])["alice/openvpn-udp"]
    assert up["observed"] == "up" and up["evidence"]["router_conntrack"]

    block = steps[1]
    assert block["changed"] == "block udp/1194 added" and block["exit_code"] == 0
    evidence = block["evidence"]
    assert evidence["conntrack_before"] == evidence["conntrack_after"] >= 2  # nothing forgotten: both tunnels' flows
    assert _rule(evidence["rules_before"], "vpnlab: block udp/1194") is None
    place, packets = _rule(evidence["rules_after"], "vpnlab: block udp/1194") or (None, None)
    assert place is not None and place < _established(evidence["rules_after"]) and packets == 0

    during = verdicts(steps[2])
    openvpn, wireguard = during["alice/openvpn-udp"], during["bob/wireguard"]
    assert openvpn["observed"] == "down" and wireguard["observed"] == "up"
    # the router still tracks the OpenVPN flow (same client port as before): it drops it, it did not forget it
    assert openvpn["evidence"]["router_conntrack"]
    assert _sports(openvpn["evidence"]["router_conntrack"]) == _sports(up["evidence"]["router_conntrack"])
    assert any("'vpnlab: block udp/1194' dropped" in d for d in openvpn["evidence"]["router_drops"]), openvpn
    assert "router_drops" not in wireguard["evidence"]

    lift = steps[3]
    assert lift["changed"] == "block udp/1194 removed"
    assert lift["evidence"]["conntrack_before"] == lift["evidence"]["conntrack_after"]
    _, dropped = _rule(lift["evidence"]["rules_before"], "vpnlab: block udp/1194") or (None, 0)
    assert dropped > 0  # the block caught the established tunnel's packets while it stood
    assert _rule(lift["evidence"]["rules_after"], "vpnlab: block udp/1194") is None

    after = verdicts(steps[4])
    assert after["alice/openvpn-udp"]["observed"] == "up" and after["bob/wireguard"]["observed"] == "up"
    # the same session resumed: the same router entry, no new client port
    assert _sports(after["alice/openvpn-udp"]["evidence"]["router_conntrack"]) == _sports(up["evidence"]["router_conntrack"])
    assert "steps[1] router: block udp/1194 added; rules applied" in proc.stdout
    left = vpnlab_session.client.containers.list(all=True, filters={"label": "vpnlab.lab=scenario-switch-flip"})
    assert left == []


CONNTRACK_FLUSH = REPO / "topologies" / "scenario-conntrack-flush.yml"
FLUSH_TUNNELS = ("quiet/wireguard", "chatty/wireguard", "ovudp/openvpn-udp", "ovtcp/openvpn-tcp")


def _client_ports(entries: list[str]) -> set[str]:
    """The client's (kept) source ports in the router's entries of a tunnel's flow."""
    return {m.group(1) for line in entries for m in [re.search(r"sport=(\d+) dport=(?:51820|1194) ", line)] if m}


def test_a_conntrack_flush_cuts_the_way_in_until_each_client_speaks(vpnlab_session, tmp_path: Path) -> None:
    proc, data = run_topology(CONNTRACK_FLUSH, tmp_path / "result.json", "docker")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = data["steps"]
    kinds = ["check", "exec", "wait", "flush", "wait", "check", "exec", "check", "check"]
    assert [s["kind"] for s in steps] == kinds
    assert all(s["passed"] for s in steps), json.dumps(steps, indent=1)

    def verdicts(step: dict) -> dict[str, dict]:
        return {v["tunnel"]: v for v in step["verdicts"]}

    before = verdicts(steps[0])
    assert {t: v["observed"] for t, v in before.items()} == dict.fromkeys(FLUSH_TUNNELS, "up")
    ports = {t: _client_ports(v["evidence"]["router_conntrack"]) for t, v in before.items()}
    assert all(len(p) == 1 for p in ports.values()), ports
    # the router picks up TCP mid-stream (nf_conntrack_tcp_loose=1): what lets OpenVPN TCP heal
    assert steps[1]["output"][0] == "1"
    assert "emptied" in " ".join(steps[3]["output"]) and steps[3]["exit_code"] == 0

    after_flush = verdicts(steps[5])
    assert all(v["direction"] == "server" for v in after_flush.values())
    quiet = after_flush["quiet/wireguard"]
    # no keepalive due (25 s): the client said nothing since the flush, and the router has no entry
    assert quiet["observed"] == "down" and quiet["evidence"]["router_conntrack"] == []
    assert "no router conntrack entry for udp/51820" in quiet["reason"]
    for tunnel in ("chatty/wireguard", "ovudp/openvpn-udp", "ovtcp/openvpn-tcp"):
        healed = after_flush[tunnel]
        assert healed["observed"] == "up", healed
        # the client's keepalive made the mapping again, on the same public port (masquerade keeps
        # the source port when it is free): the server's endpoint for the client holds again
        assert _client_ports(healed["evidence"]["router_conntrack"]) == ports[tunnel], healed
    tcp = after_flush["ovtcp/openvpn-tcp"]["evidence"]["router_conntrack"]
    assert all(" ESTABLISHED " in line for line in tcp), tcp  # picked up mid-stream: no SYN was seen

    # where the server's packets went meanwhile: to the router itself, dropped there, no entry left
    router = steps[6]["output"]
    drops = [line for line in router if "vpnlab: input unsolicited from wan" in line]
    counter = re.search(r" -c (\d+) \d+", drops[0]) if drops else None
    assert counter is not None and int(counter.group(1)) > 0, router
    originals = [m.group(1) for line in router for m in [re.search(r"src=(\S+) dst=", line)] if m]
    assert originals and "203.0.113.10" not in originals  # every entry began on the LAN side

    spoke = verdicts(steps[7])
    assert {t: v["observed"] for t, v in spoke.items()} == dict.fromkeys(FLUSH_TUNNELS, "up")
    assert _client_ports(spoke["quiet/wireguard"]["evidence"]["router_conntrack"]) == ports["quiet/wireguard"]
    way_in = verdicts(steps[8])
    assert {t: (v["direction"], v["observed"]) for t, v in way_in.items()} == dict.fromkeys(FLUSH_TUNNELS, ("server", "up"))
    left = vpnlab_session.client.containers.list(all=True, filters={"label": "vpnlab.lab=scenario-conntrack-flush"})
    assert left == []


PMTU_BLACKHOLE = REPO / "topologies" / "scenario-pmtu-blackhole.yml"


def test_pmtu_black_hole_swallows_large_packets_until_frag_needed_passes(tmp_path: Path) -> None:
    """Scenario 3: small pings pass, large DF pings vanish while the router drops its own ICMP
    "fragmentation needed"; let through, the client learns the path MTU and large pings pass."""
    proc, data = run_topology(PMTU_BLACKHOLE, tmp_path / "result.json", "docker")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = data["steps"]
    assert [s["kind"] for s in steps] == ["check", "check", "exec", "exec", "router", "check", "exec"]
    assert all(s["passed"] for s in steps)

    def observed(step: dict) -> dict[str, str]:
        return {v["tunnel"]: v["observed"] for v in step["verdicts"]}

    tunnels = ("alice/wireguard", "alice/openvpn-udp", "alice/ikev2")  # IPsec's ESP in UDP 4500 as well
    assert observed(steps[0]) == dict.fromkeys(tunnels, "up")
    assert observed(steps[1]) == dict.fromkeys(tunnels, "down")
    assert all("(1372 bytes, DF set)" in v["reason"] for v in steps[1]["verdicts"])
    # the router sent "fragmentation needed" for the large packets and its own rule dropped them
    [drop] = [line for line in steps[2]["output"] if "sent by the router" in line]
    packets = int(re.search(r"-c (\d+) \d+", drop).group(1))
    assert "--icmp-type 3/4" in drop and packets >= 2, drop
    before = " ".join(steps[3]["output"])
    assert "203.0.113.10" in before and "mtu" not in before  # the client never learnt the path MTU
    assert observed(steps[5]) == dict.fromkeys(tunnels, "up")
    after = " ".join(steps[6]["output"])
    assert re.search(r"\bmtu 1400\b", after), after  # learnt from the router's message
