"""vpnlab capture without an engine: options checked first, the node's interface checked, tcpdump's
file copied to the host and removed from the node; a fake lab stands in for the containers."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lab.capture import ANY, capture, checked_seconds, default_interface
from lab.cli import main
from lab.errors import CaptureError, InterfaceNotFound
from lab.runtime.lab import ExecResult
from lab.router.rules import WAN_IF

# A capture file with no packets: the pcap global header tcpdump writes (Ethernet, snaplen 262144).
EMPTY_PCAP = bytes.fromhex("d4c3b2a1" "02000400" "00000000" "00000000" "00000400" "01000000")


def tar_of(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("capture.pcap")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class FakeContainer:
    def __init__(self, role: str, pcap: bytes):
        self.labels = {"vpnlab.role": role}
        self.pcap = pcap
        self.archived: list[str] = []

    def get_archive(self, path: str) -> tuple[list[bytes], dict[str, Any]]:
        self.archived.append(path)
        return [tar_of(self.pcap)], {}


class FakeLab:
    name = "demo"

    def __init__(self, role: str = "router", interfaces: str = "lo\nlan0\nwan0\n", tcpdump_exit: int = 0):
        self.node_container = FakeContainer(role, EMPTY_PCAP)
        self.interfaces = interfaces
        self.tcpdump_exit = tcpdump_exit
        self.commands: list[list[str]] = []

    def container(self, node: str) -> FakeContainer:
        return self.node_container

    def topology(self) -> Any:
        from lab.topology import parse_topology

        return parse_topology("name: demo\nservers: [{name: vpn, protocols: [openvpn-tcp]}]\nclients: [{name: a}]\n"
                              "tunnels: [{client: a, server: vpn, protocol: openvpn-tcp, options: {port: 443}}]\n")

    def exec(self, node: str, command: list[str], *, container: Any = None, timeout: float | None = None) -> ExecResult:
        assert timeout is not None, "every exec of a capture is bounded"
        self.commands.append(command)
        if command[:2] == ["ls", "/sys/class/net"]:
            return ExecResult(node, " ".join(command), 0, self.interfaces)
        if command[:2] == ["sh", "-c"]:
            output = "tcpdump: listening on wan0\n7 packets captured\n7 packets received by filter\n"
            return ExecResult(node, "tcpdump", self.tcpdump_exit, output if not self.tcpdump_exit else "tcpdump: boom\n")
        return ExecResult(node, " ".join(command), 0, "")


@pytest.mark.parametrize("value", ["0", "3601", "-1", "2.5", "abc", ""])
def test_seconds_out_of_range_or_not_a_number_is_refused(value: str) -> None:
    with pytest.raises(CaptureError, match="from 1 to 3600") as caught:
        checked_seconds(value)
    assert "\n" not in str(caught.value) and caught.value.exit_code == 2


def test_seconds_in_range() -> None:
    assert [checked_seconds(v) for v in ("1", "3600", 42)] == [1, 3600, 42]


def test_default_interface_is_the_routers_wan_side() -> None:
    assert default_interface("router") == WAN_IF
    assert default_interface("client") == "eth0"


def test_capture_copies_the_file_and_removes_it_from_the_node(tmp_path: Path) -> None:
    lab = FakeLab()
    out = tmp_path / "x.pcap"
    result = capture(lab, "router", None, 3, out)  # type: ignore[arg-type]
    assert out.read_bytes() == EMPTY_PCAP
    assert (result.interface, result.packets, result.facts) == (WAN_IF, 7, ["no packets captured"])
    tcpdump = next(c for c in lab.commands if c[:2] == ["sh", "-c"])
    remote = tcpdump[-1]
    assert tcpdump[-3:-1] == ["3", WAN_IF] and lab.node_container.archived == [remote]
    assert lab.commands[-1] == ["rm", "-f", remote]


def test_unknown_interface_names_the_ones_there(tmp_path: Path) -> None:
    lab = FakeLab()
    with pytest.raises(InterfaceNotFound) as caught:
        capture(lab, "router", "eth9", 3, tmp_path / "x.pcap")  # type: ignore[arg-type]
    assert str(caught.value) == f"node 'router' of lab 'demo' has no interface 'eth9' (it has: lan0, lo, wan0, {ANY})"
    assert not any(c[:2] == ["sh", "-c"] for c in lab.commands) and not (tmp_path / "x.pcap").exists()


def test_tcpdump_failing_is_one_error_and_the_node_is_cleaned(tmp_path: Path) -> None:
    lab = FakeLab(tcpdump_exit=1)
    with pytest.raises(CaptureError, match="tcpdump on wan0 failed \\(exit 1\\): tcpdump: boom"):
        capture(lab, "router", None, 3, tmp_path / "x.pcap")  # type: ignore[arg-type]
    assert lab.commands[-1][:2] == ["rm", "-f"]


def test_cli_refuses_bad_seconds_before_looking_for_a_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lab.cli.host_engine", lambda: pytest.fail("no engine for a bad option"))
    result = CliRunner().invoke(main, ["capture", "router", "--seconds", "0"])
    assert result.exit_code == 2 and "--seconds must be a whole number from 1 to 3600, not '0'" in result.output


def test_cli_prints_the_file_and_its_facts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    lab = FakeLab(role="client", interfaces="lo\neth0\n")
    monkeypatch.setattr("lab.cli.host_engine", lambda: None)
    monkeypatch.setattr("lab.runtime.registry.find_named_or_only_lab", lambda host, name, where: (None, lab))
    out = tmp_path / "c.pcap"
    result = CliRunner().invoke(main, ["capture", "dave", "--seconds", "2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == EMPTY_PCAP
    assert f"wrote {out}: 7 packet(s), dave eth0 for 2 s" in result.output and "no packets captured" in result.output


@pytest.mark.parametrize("running, found", [([], "no lab named '(any)'"), (["a", "b"], "2 labs are running"), (["a"], "a")])
def test_without_lab_the_only_one_running_is_taken(monkeypatch: pytest.MonkeyPatch, running: list[str], found: str) -> None:
    from types import SimpleNamespace

    from lab.errors import VpnlabError
    from lab.runtime import registry

    monkeypatch.setattr(registry, "lab_engines", lambda host, where: [SimpleNamespace(client=None)])
    monkeypatch.setattr("lab.runtime.lab.list_labs", lambda client: [SimpleNamespace(name=n) for n in running])
    monkeypatch.setattr(registry, "find_lab", lambda host, name, where: (None, name))
    if len(running) == 1:
        assert registry.find_named_or_only_lab(None, None) == (None, found)  # type: ignore[arg-type]
        assert registry.find_named_or_only_lab(None, "named") == (None, "named")  # type: ignore[arg-type]
    else:
        with pytest.raises(VpnlabError, match=re.escape(found)):
            registry.find_named_or_only_lab(None, None)  # type: ignore[arg-type]


def test_the_labs_moved_ports_are_counted_and_an_unreadable_topology_leaves_the_registrys() -> None:
    from lab.capture import lab_moved_flows
    from lab.errors import VpnlabError
    from lab.pcap_facts import known_flows
    from lab.protocols.base import Flow

    moved = lab_moved_flows(FakeLab())  # type: ignore[arg-type]
    assert moved == [("openvpn-tcp", Flow("tcp", 443))]
    assert known_flows(moved)[(6, 443)] == ["openvpn-tcp"] and (6, 443) not in known_flows()

    class Unreadable(FakeLab):
        def topology(self) -> Any:
            raise VpnlabError("the router keeps no topology")

    assert lab_moved_flows(Unreadable()) == []  # type: ignore[arg-type]
