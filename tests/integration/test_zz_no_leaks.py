"""Runs last: after the whole suite no lab-labelled object is left on the engine."""

from __future__ import annotations


def test_no_lab_objects_left(vpnlab_session, request) -> None:
    if request.config.getoption("--vpnlab-keep"):
        return
    client = vpnlab_session.client
    flt = {"label": "vpnlab.lab"}
    left = [c.name for c in client.containers.list(all=True, filters=flt)]
    left += [n.name for n in client.networks.list(filters=flt)]
    left += [v.name for v in client.volumes.list(filters=flt)]
    assert left == []
