"""Names vulture cannot see used: entry points called by click, pytest, pydantic, tarfile or
Jinja2 templates. `tests/unit/test_code_health.py` runs vulture with this file, so anything
else it reports is dead code. Each line names why the name is used."""

# ruff: noqa
# click commands (registered by their decorators)
validate, images_build, setup, init_command, doctor, matrix, report_merge, capture_command  # noqa
# pytest hooks and fixtures of the plugin (lab/pytest_plugin.py, entry point pytest11)
pytest_addoption, pytest_configure, pytest_generate_tests  # noqa
assert_tunnel, assert_cell, lab_fixture, vpnlab_lab, vpnlab_factory, vpnlab_cell, _vpnlab_requires_kernel  # noqa
# pydantic: model config, fields read through model_dump/getattr, validators called by the model
model_config, udp_timeout, udp_stream_timeout, tcp_timeout_established, gre_timeout, gre_stream_timeout  # noqa
_.from_text, _.unique_helpers, _.private_lan, _.documentation_wan  # noqa
_.one_command_line, _.one_key, _.protocol_options, _.steps_name_the_topology, _.interface_name, _.some_steps  # noqa (scenario steps)
# read by Jinja2 templates (setup.sh.j2, rules.v4.j2) or through the dataclass in templates
secondary, setup, _.setup, kernel_name, _.nat_comment, _.nat_options  # noqa
# the router as a VPN client (lab.router.dialing): rules.v4.j2 reads local_helpers; pydantic calls the validator
local_helpers, _.traffic_named_once  # noqa
# tarfile.TarInfo attributes written for the archive
_.mtime, _.size  # noqa
# public API: the JSON round trip of a matrix result, topology node names
_.from_dict, _.node_names  # noqa
# link conditions and the ICMP block rule (lab.topology.links, lab.topology.model): pydantic validators/serializers
_.parse_delay, _.parse_loss, _.written_delay, _.written_loss, _.whole_protocols, netem, output_drops  # noqa
# the UML guest's kernel processes: read by the integration tests (its host uid, killing it under a lab)
_.kernel_processes  # noqa
# double NAT (lab.topology.upstream): the Topology's model validator, the upstream's masquerade sources (rules.v4.j2)
_.segments_apart, _.masquerade_sources  # noqa
