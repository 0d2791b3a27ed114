"""Joining shard results (one per CI job) into one matrix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from lab.matrix.result import Cell, MatrixResult, MergeError, ProfileInfo, parse_shard


def merge(results: Sequence[MatrixResult], sources: Sequence[str] | None = None) -> MatrixResult:
    """One matrix from shard results: every (profile, protocol) once, profiles and protocols in shard order.

    sources name the results in errors (the file names). The same cell in two results is
    allowed only with the same outcome. Runtime, kernel and version are kept when every shard
    agrees and listed otherwise. CI jobs run one after another or side by side, so 'total' is the
    sum of the shards' work and shard_seconds keeps each shard's own total.
    """
    if not results:
        raise MergeError("nothing to merge: give at least one matrix result")
    names = list(sources) if sources else [r.shard or f"result {i + 1}" for i, r in enumerate(results)]
    order = sorted(range(len(results)), key=lambda i: (_shard_number(results[i]), i))  # argument order does not matter
    ordered = [results[i] for i in order]

    cells: dict[tuple[str, str], tuple[Cell, str]] = {}
    for i in order:
        for cell in results[i].cells:
            seen = cells.get(cell.key)
            if seen is None:
                cells[cell.key] = (cell, names[i])
            elif (seen[0].expect, seen[0].observed) != (cell.expect, cell.observed):
                raise MergeError(
                    f"{cell.profile} · {cell.protocol} is in {seen[1]} (expect {seen[0].expect}, observed "
                    f"{seen[0].observed}) and in {names[i]} (expect {cell.expect}, observed {cell.observed})",
                    hint="merge the results of one matrix run; each shard must hold different cells",
                )

    profiles = _merge_profiles(ordered)
    protocols = _unique(p for r in ordered for p in r.protocols)
    rank = {(p.name, proto): (a, b) for a, p in enumerate(profiles) for b, proto in enumerate(protocols)}
    merged_cells = sorted((c for c, _ in cells.values()), key=lambda c: rank.get(c.key, (len(rank), 0)))

    seconds: dict[str, float] = {}
    shard_seconds: dict[str, float] = {}
    for i in order:
        for phase, value in results[i].seconds.items():
            seconds[phase] = round(seconds.get(phase, 0.0) + value, 2)
        shard_seconds.update(results[i].shard_seconds or {names[i]: results[i].seconds.get("total", 0.0)})

    return MatrixResult(
        runtime=_agree(r.runtime for r in ordered),
        runtime_reason=_agree((r.runtime_reason for r in ordered), sep="; "),
        kernel=_agree(r.kernel for r in ordered),
        started=min((r.started for r in ordered if r.started), default=""),
        profiles=profiles,
        protocols=protocols,
        lab=ordered[0].lab,
        cells=merged_cells,
        seconds=seconds,
        shard=_merged_shard(ordered),
        shard_seconds=shard_seconds,
        version=_agree(r.version for r in ordered),
    )


def _shard_number(result: MatrixResult) -> int:
    return parse_shard(result.shard)[0] if result.shard else 0


def _unique(values) -> list[str]:
    return list(dict.fromkeys(values))


def _agree(values, sep: str = ", ") -> str:
    """The one value every shard reports, or all of them listed."""
    return sep.join(_unique(v for v in values if v))


def _merge_profiles(results: Sequence[MatrixResult]) -> list[ProfileInfo]:
    """Profiles in the order the shards list them; a NAT measurement from any shard fills one missing elsewhere."""
    merged: dict[str, ProfileInfo] = {}
    for result in results:
        for profile in result.profiles:
            kept = merged.get(profile.name)
            if kept is None:  # a copy: merging leaves its inputs as they were
                nat = replace(profile.nat, evidence=list(profile.nat.evidence)) if profile.nat else None
                merged[profile.name] = replace(profile, nat=nat)
            elif kept.nat is None and profile.nat is not None:
                kept.nat = replace(profile.nat, evidence=list(profile.nat.evidence))
            elif kept.nat and profile.nat and profile.nat.short != kept.nat.short:
                note = f"another shard measured: {profile.nat.summary or profile.nat.short}"
                if note not in kept.nat.evidence:
                    kept.nat.evidence.append(note)
    return list(merged.values())


def _merged_shard(results: Sequence[MatrixResult]) -> str | None:
    """None when the results make the whole matrix (every K of one N), else the shards joined: '1/3+2/3'."""
    shards = [r.shard for r in results]
    if any(s is None for s in shards):
        return None
    parsed = {parse_shard(s) for s in shards if s}
    totals = {n for _, n in parsed}
    if len(totals) == 1 and {k for k, _ in parsed} == set(range(1, totals.pop() + 1)):
        return None
    return "+".join(sorted(s for s in _unique(shards) if s))
