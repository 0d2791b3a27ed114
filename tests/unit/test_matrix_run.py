"""The matrix runner's decisions before any engine is touched: selection, shards, labs per profile, topologies."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from lab.cli import main
from lab.matrix.cells import (
    ALONE,
    LabJob,
    lab_jobs,
    lab_name,
    lab_topology,
    layout,
    select,
    split_job,
    topology_data,
)
from lab.matrix.result import shard_cells
from lab.profiles import builtin_profiles, load_profile
from lab.protocols import PROTOCOLS


def test_defaults_are_every_builtin_profile_and_every_protocol_in_order() -> None:
    selection = select(None, None, None)
    assert [p.name for p in selection.profiles] == builtin_profiles()
    assert selection.protocols == list(PROTOCOLS)
    assert len(selection.pairs) == len(builtin_profiles()) * len(PROTOCOLS)


def test_protocols_keep_registry_order_whatever_the_order_given() -> None:
    selection = select("open", "ikev2,wireguard", None)
    assert selection.protocols == ["wireguard", "ikev2"]


@pytest.mark.parametrize("profiles, protocols, shard", [
    ("open", "nonsense", None),
    ("no-such-profile", None, None),
    ("open", None, "4/3"),
    ("open", None, "x"),
])
def test_bad_selection_is_one_error_exit_2(profiles: str, protocols: str | None, shard: str | None) -> None:
    args = ["matrix", "--profiles", profiles] + (["--protocols", protocols] if protocols else [])
    args += ["--shard", shard] if shard else []
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "error:" in result.output
    assert "Traceback" not in result.output


def test_shards_partition_the_cells_and_keep_matrix_order() -> None:
    whole = select(None, None, None).pairs
    shards = [select(None, None, f"{k}/3").pairs for k in (1, 2, 3)]
    assert sorted(p for s in shards for p in s) == sorted(whole)
    for k, pairs in enumerate(shards, start=1):
        assert set(pairs) == set(shard_cells(whole, k, 3))
        assert pairs == [p for p in whole if p in set(pairs)]


def test_one_lab_per_profile_with_only_its_cells() -> None:
    selection = select("open,strict", "wireguard,pptp", "1/2")
    jobs = lab_jobs(selection)
    for job in jobs:
        assert job.protocols == [proto for name, proto in selection.pairs if name == job.profile.name]
    assert sum(len(j.protocols) for j in jobs) == len(selection.pairs)


def test_lab_names_are_valid_and_unique() -> None:
    taken: set[str] = set()
    names = [lab_name("a-very-long-profile-name-indeed", taken) for _ in range(3)]
    assert len(set(names)) == 3
    assert all(len(n) <= 24 and n.startswith("mx-") for n in names)


def test_topology_puts_l2tp_ipsec_on_its_own_server_and_follows_the_profile() -> None:
    profile = load_profile("no-helpers")
    job = LabJob(profile, list(PROTOCOLS), "mx-no-helpers")
    topology = lab_topology(job)
    servers = {s.name: s.protocols for s in topology.servers}
    assert servers["vpn2"] == list(ALONE)
    assert "l2tp" in servers["vpn"] and "l2tp-ipsec" not in servers["vpn"]
    assert [c.name for c in topology.clients] == ["alice"]
    assert {t.protocol: t.expect for t in topology.tunnels} == {p: profile.expect[p] for p in PROTOCOLS}
    assert topology_data(job)["router"] == dict(profile.router)
    assert topology.nat_probe


def test_split_job_gives_each_pool_its_protocols_and_the_nat_probe_to_one_lab() -> None:
    job = LabJob(load_profile("open"), list(PROTOCOLS), "mx-open")
    host = {"wireguard", "openvpn-udp", "openvpn-tcp", "ikev2"}
    parts = split_job(job, [("docker", host), ("uml", set(PROTOCOLS) - host)], {"mx-open"})
    assert [set(p.protocols) for p in parts] == [host, set(PROTOCOLS) - host]
    assert [p.nat_probe for p in parts] == [True, False]
    assert len({p.name for p in parts}) == 2
    assert not lab_topology(parts[1]).nat_probe


def test_layout_draws_every_selected_protocol_even_for_a_shard() -> None:
    whole = layout(select(None, None, None))
    shard = layout(select(None, None, "3/3"))
    assert whole == shard
    assert {s.name for s in whole.servers} == {"vpn", "vpn2"}


def test_a_profiles_value_naming_a_file_loads_it_as_a_user_profile(tmp_path) -> None:
    import yaml

    expect = {p: "up" for p in PROTOCOLS} | {"pptp": "down"}
    path = tmp_path / "mine.yml"
    path.write_text(yaml.safe_dump({"name": "mine", "description": "my router",
                                    "router": {"nat": "masquerade", "helpers": []},
                                    "expect": expect, "reasons": {"pptp": "no helper"}}))
    selection = select(f"open,{path}", "wireguard,pptp", None)
    assert [p.name for p in selection.profiles] == ["open", "mine"]
    assert selection.pairs[-1] == ("mine", "pptp")


def test_a_broken_profile_file_is_exit_2_and_names_the_file(tmp_path) -> None:
    path = tmp_path / "broken.yml"
    path.write_text("name: broken\nrouter: {nat: sideways}\n")
    result = CliRunner().invoke(main, ["matrix", "--profiles", str(path)])
    assert result.exit_code == 2
    assert "broken.yml" in result.output


def test_the_plugin_parametrizes_a_test_by_matrix_cells(tmp_path) -> None:
    import subprocess
    import sys

    (tmp_path / "test_cells.py").write_text(
        "import pytest\n"
        "from lab.pytest_plugin import assert_cell\n\n"
        "@pytest.mark.vpnlab_matrix(profiles=['open', 'no-helpers'], protocols=['wireguard', 'pptp'])\n"
        "def test_cell(vpnlab_cell):\n"
        "    assert_cell(vpnlab_cell)\n"
    )
    listed = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             str(tmp_path / "test_cells.py")], capture_output=True, text=True, cwd=tmp_path)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    ids = [line.split("[", 1)[1].rstrip("]") for line in listed.stdout.splitlines() if "::test_cell[" in line]
    assert ids == ["open-wireguard", "open-pptp", "no-helpers-wireguard", "no-helpers-pptp"]


def test_assert_cell_fails_with_both_reasons() -> None:
    from lab.matrix.result import Cell
    from lab.pytest_plugin import assert_cell

    cell = Cell("no-helpers", "alice", "vpn", "pptp", "down", "up", "it came up", 3.0,
                {"router_conntrack": ["gre ... helper=pptp"]}, "no pptp helper")
    with pytest.raises(pytest.fail.Exception) as failed:
        assert_cell(cell)
    text = str(failed.value)
    assert "expected down, observed up" in text and "no pptp helper" in text and "helper=pptp" in text


def test_a_shards_own_result_misses_only_its_share_but_a_merge_of_it_misses_the_rest() -> None:
    from lab.matrix.merge import merge
    from lab.matrix.result import Cell, LabLayout, MatrixResult, ProfileInfo

    selection = select("open,no-helpers", "wireguard,pptp", "1/2")
    cells = [Cell(p, "alice", "vpn", q, "up", "up", "ok", 1.0) for p, q in selection.pairs]
    result = MatrixResult("docker", "", "6.1", "", [ProfileInfo(p.name, "", "builtin") for p in selection.profiles],
                          selection.protocols, LabLayout("l", "w", "router", "a", "b"), cells, {"total": 1.0},
                          shard="1/2")
    assert result.missing == [] and result.passed
    merged = merge([result])
    assert merged.missing and not merged.passed
