"""Reading a matrix result back from JSON, every problem located: 'a.json: cells[3].observed: ...'."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lab.matrix.result import (
    EXPECT, FORMAT, Cell, LabLayout, LabNode, MatrixFileError, MatrixResult, NatBehaviour, ProfileInfo,
    ShardError, parse_shard,
)
from lab.check.results import OBSERVED


class _Bad(Exception):
    """A located problem inside a result dict; result_from_dict turns it into a MatrixFileError."""


def load(path: Path) -> MatrixResult:
    """Read a matrix JSON file; every problem is a MatrixFileError naming the file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise MatrixFileError(str(path), "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MatrixFileError(str(path), f"cannot be read ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MatrixFileError(str(path), f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    return result_from_dict(data, str(path))


def result_from_dict(data: Any, source: str) -> MatrixResult:
    try:
        return _result_from(data)
    except _Bad as exc:
        raise MatrixFileError(source, str(exc)) from None


def _get(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = ...) -> Any:
    if key not in obj:
        if default is not ...:
            return default
        raise _Bad(f"{where}: missing '{key}'")
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):  # True is an int
        names = " or ".join(k.__name__ for k in kinds)
        raise _Bad(f"{where}.{key}: expected {names}, got {type(value).__name__} {value!r:.60}")
    return value


def _one_of(value: str, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise _Bad(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _result_from(data: Any) -> MatrixResult:
    if not isinstance(data, dict):
        raise _Bad(f"expected a JSON object, got {type(data).__name__}")
    if data.get("format") != FORMAT:
        what = "a 'vpnlab run' result" if "tunnels" in data else f"format {data.get('format')!r}"
        raise _Bad(f"not a matrix result ({what}; expected format {FORMAT!r})")
    shard = _get(data, "shard", (str, type(None)), "result", None)
    if shard is not None:
        try:
            parse_shard(shard)
        except ShardError as exc:
            raise _Bad(f"result.shard: {exc}") from None
    seconds = _get(data, "seconds", dict, "result", {})
    shard_seconds = _get(data, "shard_seconds", dict, "result", {})
    return MatrixResult(
        runtime=_get(data, "runtime", str, "result"),
        runtime_reason=_get(data, "runtime_reason", str, "result", ""),
        kernel=_get(data, "kernel", str, "result"),
        started=_get(data, "started", str, "result", ""),
        profiles=[_profile_from(p, f"profiles[{i}]") for i, p in enumerate(_get(data, "profiles", list, "result"))],
        protocols=[str(p) for p in _get(data, "protocols", list, "result")],
        lab=_lab_from(_get(data, "lab", dict, "result")),
        cells=[_cell_from(c, f"cells[{i}]") for i, c in enumerate(_get(data, "cells", list, "result"))],
        seconds={k: float(_get(seconds, k, (int, float), "seconds")) for k in seconds},
        shard=shard,
        shard_seconds={k: float(_get(shard_seconds, k, (int, float), "shard_seconds")) for k in shard_seconds},
        version=_get(data, "version", str, "result", "unknown"),
    )


def _cell_from(d: Any, where: str) -> Cell:
    if not isinstance(d, dict):
        raise _Bad(f"{where}: expected an object, got {type(d).__name__}")
    return Cell(
        profile=_get(d, "profile", str, where),
        client=_get(d, "client", str, where),
        server=_get(d, "server", str, where),
        protocol=_get(d, "protocol", str, where),
        expect=_one_of(_get(d, "expect", str, where), EXPECT, f"{where}.expect"),
        observed=_one_of(_get(d, "observed", str, where), OBSERVED, f"{where}.observed"),
        reason=_get(d, "reason", str, where, ""),
        seconds=float(_get(d, "seconds", (int, float), where, 0.0)),
        evidence=_get(d, "evidence", dict, where, {}),
        expected_reason=_get(d, "expected_reason", str, where, ""),
    )


def _profile_from(d: Any, where: str) -> ProfileInfo:
    if not isinstance(d, dict):
        raise _Bad(f"{where}: expected an object, got {type(d).__name__}")
    nat = _get(d, "nat", (dict, type(None)), where, None)
    return ProfileInfo(
        name=_get(d, "name", str, where),
        description=_get(d, "description", str, where, ""),
        source=_get(d, "source", str, where, ""),
        router=_get(d, "router", dict, where, {}),
        expect=_get(d, "expect", dict, where, {}),
        reasons=_get(d, "reasons", dict, where, {}),
        nat=None if nat is None else NatBehaviour(
            mapping=_get(nat, "mapping", str, f"{where}.nat"),
            filtering=_get(nat, "filtering", str, f"{where}.nat"),
            summary=_get(nat, "summary", str, f"{where}.nat", ""),
            evidence=[str(line) for line in _get(nat, "evidence", list, f"{where}.nat", [])],
        ),
    )


def _node_from(d: Any, where: str) -> LabNode:
    if not isinstance(d, dict):
        raise _Bad(f"{where}: expected an object, got {type(d).__name__}")
    return LabNode(_get(d, "name", str, where), _get(d, "address", str, where, ""),
                   [str(p) for p in _get(d, "protocols", list, where, [])])


def _lab_from(d: dict[str, Any]) -> LabLayout:
    return LabLayout(
        lan=_get(d, "lan", str, "lab", ""),
        wan=_get(d, "wan", str, "lab", ""),
        router=_get(d, "router", str, "lab", "router"),
        router_lan=_get(d, "router_lan", str, "lab", ""),
        router_wan=_get(d, "router_wan", str, "lab", ""),
        clients=[_node_from(n, f"lab.clients[{i}]") for i, n in enumerate(_get(d, "clients", list, "lab", []))],
        servers=[_node_from(n, f"lab.servers[{i}]") for i, n in enumerate(_get(d, "servers", list, "lab", []))],
    )
