"""Reading verdicts and router evidence from command output."""

from __future__ import annotations

from lab.check.explain import parse_result
from lab.check.evidence import Evidence, RuleHit, RouterEvidence, conntrack_lines, drops_for, flow_entries, rule_hits
from lab.protocols import PROTOCOLS
from lab.protocols.base import Flow
from lab.router.comments import INPUT_GRE_NOT_TIED

COUNTERS = """chain FORWARD
Chain FORWARD (policy DROP 0 packets, 0 bytes)
    pkts      bytes target     prot opt in     out     source               destination
       7      588 DROP       udp  --  *      *       0.0.0.0/0            0.0.0.0/0            udp dpt:1194 /* vpnlab: block udp/1194 */
       0        0 DROP       47   --  *      *       0.0.0.0/0            0.0.0.0/0            /* vpnlab: passthrough pptp off (gre) */
      12     1000 ACCEPT     all  --  *      *       0.0.0.0/0            0.0.0.0/0            ctstate RELATED,ESTABLISHED /* vpnlab: forward return traffic */
       3      300 DROP       udp  --  *      *       0.0.0.0/0            0.0.0.0/0            udp dpts:51820:51830 /* vpnlab: block udp/51820-51830 */
chain INPUT
Chain INPUT (policy ACCEPT 0 packets, 0 bytes)
    pkts      bytes target     prot opt in     out     source               destination
       4      400 DROP       all  --  wan0   *       0.0.0.0/0            0.0.0.0/0            /* vpnlab: input unsolicited from wan */
"""

CONNTRACK = """tcp      6 431999 ESTABLISHED src=192.168.100.11 dst=203.0.113.10 sport=45104 dport=1194 src=203.0.113.10 dst=203.0.113.1 sport=1194 dport=45104 [ASSURED] mark=0 use=1
udp      17 29 src=192.168.100.11 dst=203.0.113.10 sport=39888 dport=1194 [UNREPLIED] src=203.0.113.10 dst=203.0.113.1 sport=1194 dport=39888 mark=0 use=1
conntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown.
"""


def test_rule_hits_keep_only_vpnlab_rules_that_counted() -> None:
    hits = rule_hits(COUNTERS)
    assert [(h.chain, h.comment, h.packets) for h in hits] == [
        ("FORWARD", "vpnlab: block udp/1194", 7),
        ("FORWARD", "vpnlab: forward return traffic", 12),
        ("FORWARD", "vpnlab: block udp/51820-51830", 3),
        ("INPUT", "vpnlab: input unsolicited from wan", 4),
    ]


def test_drops_are_attributed_to_the_flow() -> None:
    hits = rule_hits(COUNTERS)
    assert [h.comment for h in drops_for(hits, (Flow("udp", 1194),))] == ["vpnlab: block udp/1194"]
    assert [h.comment for h in drops_for(hits, (Flow("udp", 51825),))] == ["vpnlab: block udp/51820-51830"]
    assert drops_for(hits, (Flow("tcp", 1194),)) == []


def test_a_drop_rule_of_a_longer_port_is_not_the_flows() -> None:
    # 'udp/500' (IKE) is part of 'udp/5000', 'tcp/1723' of 'tcp/17230': neither rule drops them
    hits = [RuleHit("FORWARD", "vpnlab: block udp/5000", 4), RuleHit("FORWARD", "vpnlab: block tcp/17230", 2),
            RuleHit("FORWARD", "vpnlab: passthrough ipsec off (udp/500)", 3)]
    assert [h.comment for h in drops_for(hits, (Flow("udp", 500),))] == ["vpnlab: passthrough ipsec off (udp/500)"]
    assert drops_for(hits, (Flow("tcp", 1723), Flow("gre"))) == []
    assert [h.comment for h in drops_for([RuleHit("FORWARD", "vpnlab: block esp", 1)], (Flow("esp"),))] == ["vpnlab: block esp"]


def test_conntrack_entries_filtered_by_flow() -> None:
    lines = conntrack_lines(CONNTRACK)
    assert len(lines) == 2
    assert flow_entries(lines, (Flow("udp", 1194),)) == [lines[1]]
    assert flow_entries(lines, (Flow("tcp", 1194),)) == [lines[0]]
    assert flow_entries(lines, (Flow("udp", 51820),)) == []


def test_parse_result_reads_the_verdict_line() -> None:
    assert parse_result("noise\nvpnlab-result up 812 ping 10.100.0.1 answered through wg0\n", 0) == (
        "up",
        812,
        "ping 10.100.0.1 answered through wg0",
    )
    observed, millis, detail = parse_result("sh: 1: oops\n", 2)
    assert observed == "error" and millis is None and "oops" in detail and "exit 2" in detail


PPTP_CONNTRACK = """\
tcp      6 431990 ESTABLISHED src=192.168.100.10 dst=203.0.113.10 sport=40000 dport=1723 src=203.0.113.10 dst=203.0.113.1 sport=1723 dport=40000 [ASSURED] mark=0 use=1
gre      47 29 src=192.168.100.10 dst=203.0.113.10 srckey=0x0 dstkey=0x0 [UNREPLIED] src=203.0.113.10 dst=203.0.113.1 srckey=0x0 dstkey=0x0 mark=0 use=1
"""
PPTP_COUNTERS = f"""chain INPUT
       5      400 DROP       47   --  wan0   *       0.0.0.0/0            0.0.0.0/0            /* {INPUT_GRE_NOT_TIED} */
"""


def test_router_evidence_is_typed() -> None:
    router = RouterEvidence.parse(PPTP_CONNTRACK + CONNTRACK, COUNTERS + PPTP_COUNTERS)
    [control] = router.entries("tcp", 1723)
    assert control.assured and not control.unreplied and control.helper is None and control.dport == 1723
    [gre] = router.entries("gre")
    assert gre.unreplied and gre.dport is None
    assert router.packets(INPUT_GRE_NOT_TIED, chain="INPUT") == 5
    assert router.packets(INPUT_GRE_NOT_TIED, chain="FORWARD") is None
    assert router.packets("vpnlab: block udp/1194") == 7


def test_pptp_diagnosis_reads_the_gre_drop_counter() -> None:
    evidence = Evidence(
        client={"pppd": "LCP: timeout sending Config-Requests", "auth": "rcvd [LCP ConfReq id=0x1 <auth chap MS-v2>]"},
        server={"log": "rcvd [LCP ConfReq id=0x1]"},
        router=RouterEvidence.parse(PPTP_CONNTRACK, PPTP_COUNTERS),
    )
    assert PROTOCOLS["pptp"].diagnose(evidence) == [
        "TCP 1723 established",
        "GRE from the server not translated back (the client's GRE entry in router conntrack stays [UNREPLIED]; "
        "rule 'vpnlab: input gre from wan not tied to a call' dropped 5 packets sent to the router itself)",
        "the server's pppd got the client's LCP requests, the client none of the server's",
        "LCP timed out (client pppd: 'LCP: timeout sending Config-Requests')",
        "no pptp helper on the router (no helper=pptp in its conntrack)",
    ]
