"""strongSwan plumbing and the ikev2 module: back ends, one charon per node, transport-mode PSK."""

from __future__ import annotations

import pytest

from lab.plan import plan_lab
from lab.protocols import strongswan
from lab.protocols.base import Environment
from lab.topology import load_topology

from .conftest import HERE, FixedSecrets, compare_golden

IPSEC = HERE / "topologies" / "valid" / "ipsec-protocols.yml"
KERNEL = Environment(esp=True)
LIBIPSEC = Environment(esp=False)


def node(name: str, environment: Environment):
    topology = load_topology(IPSEC)
    return plan_lab(topology, environment, FixedSecrets(topology.name)).node(name)


def files(name: str, environment: Environment) -> dict[str, str]:
    return {f.path: f.content for f in node(name, environment).files}


def test_libipsec_is_loaded_before_kernel_netlink_without_kernel_esp() -> None:
    load = strongswan.plugins(LIBIPSEC)
    assert load.index("kernel-libipsec") < load.index("kernel-netlink")
    assert "kernel-libipsec" not in strongswan.plugins(KERNEL) and "kernel-netlink" in strongswan.plugins(KERNEL)
    # ECDSA certificates need the openssl plugin (libstrongswan-standard-plugins in the image)
    assert "openssl" in load


def test_strongswan_conf_logs_to_a_file_and_names_the_backend() -> None:
    conf = files("vpn1", KERNEL)[strongswan.STRONGSWAN_CONF]
    assert f"path = {strongswan.CHARON_LOG}" in conf and "ike_name = yes" in conf
    assert "IPsec backend: kernel ESP" in conf and "kernel-libipsec" not in conf.split("load =")[1].splitlines()[0]
    conf = files("vpn1", LIBIPSEC)[strongswan.STRONGSWAN_CONF]
    assert "IPsec backend: kernel-libipsec" in conf


def test_one_charon_per_node_and_one_fragment_per_connection() -> None:
    alice = node("alice", KERNEL)
    paths = [f.path for f in alice.files]
    assert paths.count(strongswan.STRONGSWAN_CONF) == 1 and paths.count(strongswan.START_SCRIPT) == 1
    assert strongswan.fragment_path("ikev2-vpn1") in paths and strongswan.fragment_path("ikev2-vpn2") in paths
    script = files("alice", KERNEL)[strongswan.START_SCRIPT]
    assert "flock 9" in script and "kill -0" in script and "swanctl --load-all" in script
    assert f"{strongswan.CHARON} </dev/null >>" in script  # every fd redirected: docker exec returns


def test_server_offers_its_tunnel_address_and_a_pool_without_it() -> None:
    vpn2 = node("vpn2", KERNEL)
    conf = files("vpn2", KERNEL)[strongswan.fragment_path("ikev2")]
    assert "local_ts = 10.106.1.1/32" in conf and "addrs = 10.106.1.10-10.106.1.254" in conf
    assert "id = vpn2" in conf and "local_addrs = 203.0.113.11" in conf
    assert vpn2.setup[:2] == ["ip address add 10.106.1.1/32 dev lo", strongswan.start_command()]
    assert f"{strongswan.SWANCTL_DIR}/private/vpn2.pem" in files("vpn2", KERNEL)


@pytest.mark.parametrize("environment,iface", [(KERNEL, "eth0"), (LIBIPSEC, "ipsec0")], ids=["kernel", "libipsec"])
def test_up_check_pings_from_the_virtual_ip(environment: Environment, iface: str) -> None:
    check = next(
        content for path, content in files("alice", environment).items()
        if path.endswith("/check.sh") and "10.106.0.1 " in content
    )
    assert f"is_up {iface}" in check
    assert "ip route show table 220 10.106.0.1" in check and 'ping -n -c 1 -W 1 -I "$src" 10.106.0.1' in check
    assert "swanctl --initiate --child ikev2-vpn1" in check


def test_transport_psk_connection_for_l2tp_ipsec() -> None:
    conf = strongswan.transport_psk_connection(
        "l2tp-ipsec", psk="PSK", local_id="203.0.113.10", remote_id="%any",
        local_ts="dynamic[udp/1701]", remote_ts="dynamic[udp]", local_addrs="203.0.113.10",
    )
    for expected in ("version = 1", "mode = transport", "auth = psk", "local_ts = dynamic[udp/1701]",
                     "remote_ts = dynamic[udp]", 'secret = "PSK"', "id-remote = %any"):
        assert expected in conf, expected
    with pytest.raises(ValueError, match="dynamic\\[udp\\]"):
        strongswan.transport_psk_connection("x", psk="p", local_id="a", remote_id="b",
                                            local_ts="dynamic[udp/%any]", remote_ts="dynamic[udp/1701]")


def test_diagnosis_reads_backend_nat_and_failures() -> None:
    from lab.check.evidence import Evidence
    from lab.protocols import PROTOCOLS

    facts = PROTOCOLS["ikev2"].diagnose(Evidence(client={
        "backend": "12:00:00 00[LIB] loaded plugins: charon openssl kernel-netlink socket-default vici",
        "charon log": "[IKE] <ikev2-vpn|1> retransmit 2 of request with message ID 0\n",
        "swanctl --list-sas": "ikev2-vpn: #1, CONNECTING, IKEv2",
    }))
    assert "IKE_SA_INIT sent 3 times without an answer from the server" in facts
    assert any(f.startswith("IPsec backend: kernel ESP") for f in facts)
    up = PROTOCOLS["ikev2"].diagnose(Evidence(
        client={
            "charon log": "[IKE] local host is behind NAT, sending keep alives\n[IKE] installing new virtual IP 10.106.0.10",
            "swanctl --list-sas": "ikev2-vpn: #1, ESTABLISHED\n  ikev2-vpn: #1, reqid 1, INSTALLED, TUNNEL-in-UDP",
            "xfrm state": "encap type espinudp sport 4500 dport 4500",
        },
        server={"charon log": "[IKE] <1> remote host is behind NAT"},
    ))
    assert "IKEv2 IKE_SA and CHILD_SA established, virtual IP 10.106.0.10" in up
    assert "NAT-T: the client found itself behind NAT, the server found the client behind NAT" in up
    assert "ESP encapsulated in UDP 4500" in up


@pytest.mark.parametrize("name", ["vpn1", "alice"])
def test_kernel_esp_rendering_matches_golden(name: str) -> None:
    """test_rendering covers the libipsec rendering (default environment); this the kernel-ESP one."""
    n = node(name, KERNEL)
    parts = [f"# node {n.name} ({n.role}), kernel ESP", "### setup.sh", n.setup_script()]
    parts += [f"### {f.path} (mode {f.mode:o})\n{f.content}" for f in sorted(n.files, key=lambda f: f.path)]
    compare_golden(HERE / "golden" / "ipsec-protocols-kernel-esp" / f"{name}.txt", "\n".join(parts))
