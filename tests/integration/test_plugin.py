"""The pytest plugin seen from a test suite of its own (pytester): markers, fixtures, failures."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

TOPOLOGY = """
name: it-plugin
servers: [{name: vpn, protocols: [wireguard]}]
clients: [{name: dave}]
tunnels: [{client: dave, server: vpn, protocol: wireguard, expect: up}]
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".yml", lab=TOPOLOGY)
    return pytester


def test_requires_kernel_skips_naming_the_missing_feature(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest

        @pytest.mark.requires_kernel("wireguard")
        def test_needs_kernel_wireguard():
            pass

        @pytest.mark.requires_kernel("tun")
        def test_needs_tun():
            pass
        """
    )
    result = suite.runpytest("--vpnlab-runtime", "docker", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*kernel * lacks WireGuard (wireguard)*"])


def test_lab_fixture_testinfra_host_and_a_failing_assertion(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest
        from lab.pytest_plugin import assert_tunnel

        pytestmark = pytest.mark.vpnlab_topology("lab.yml")

        def test_up(vpnlab_lab):
            assert_tunnel(vpnlab_lab.check("dave"), "up")
            assert "MASQUERADE" in vpnlab_lab.host("router").check_output("iptables-save")

        def test_wrong_expectation_fails_with_evidence(vpnlab_lab):
            assert_tunnel(vpnlab_lab.check("dave"), "down")
        """
    )
    result = suite.runpytest("--vpnlab-runtime", "docker", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*tunnel dave-wireguard-vpn: expected down, observed up*", "*router_conntrack*"])
