"""Matrix cells for the pytest plugin: one lab per profile per test session, every cell of it checked at once."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from lab.errors import VpnlabError
from lab.matrix.cells import LabJob, lab_name, select, split_list
from lab.matrix.result import Cell


def _listed(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else ",".join(value)


def marker_selection(marker: pytest.Mark) -> Any:
    profiles = marker.kwargs.get("profiles", marker.args[0] if marker.args else None)
    protocols = marker.kwargs.get("protocols", marker.args[1] if len(marker.args) > 1 else None)
    return select(_listed(profiles), _listed(protocols), None)


def marker_pairs(marker: pytest.Mark) -> list[tuple[str, str]]:
    """The (profile, protocol) pairs a vpnlab_matrix marker names (collection fails on bad names)."""
    try:
        return marker_selection(marker).pairs
    except VpnlabError as exc:
        raise pytest.UsageError(f"vpnlab_matrix: {exc}") from None


class MatrixLabs:
    """The cells decided so far this session, by (profile, protocol); each profile's lab runs once."""

    def __init__(self) -> None:
        self.cells: dict[tuple[str, str], Cell] = {}
        self.failed: dict[str, str] = {}
        self._taken: set[str] = set()
        self._lock = threading.Lock()

    def cell(self, marker: pytest.Mark, pair: tuple[str, str], runtimes: Any) -> Cell:
        profile_name, protocol = pair
        with self._lock:
            if pair not in self.cells and profile_name not in self.failed:
                self._run_profile(marker, profile_name, runtimes)
        if profile_name in self.failed:
            pytest.fail(self.failed[profile_name], pytrace=False)
        return self.cells[pair]

    def _run_profile(self, marker: pytest.Mark, profile_name: str, runtimes: Any) -> None:
        from lab.matrix.labs import run_lab

        selection = marker_selection(marker)
        profile = next(p for p in selection.profiles if p.name == profile_name)
        protocols = [proto for name, proto in selection.pairs if name == profile_name and (name, proto) not in self.cells]
        job = LabJob(profile, protocols, lab_name(f"pt-{profile_name}", self._taken))
        host = runtimes.host

        def needs() -> dict[str, list[str]]:
            return {p: m for p, m in host.capabilities(host.host).missing(protocols).items() if m}

        session = runtimes.for_needs(needs)
        try:
            outcome = run_lab(session, job, lambda *_: None, lambda *_: None, threading.Event(), lambda _: None)
        except VpnlabError as exc:
            self.failed[profile_name] = f"profile '{profile_name}': {exc}"
            return
        for cell in outcome.cells:
            self.cells[cell.key] = cell


__all__ = ["MatrixLabs", "marker_pairs", "split_list"]
