"""Writing the requested report files, results first: a crash while printing must not lose them."""

from __future__ import annotations

import json as jsonlib
from pathlib import Path

from lab.matrix.result import MatrixResult


def write_reports(
    result: MatrixResult,
    json: Path | None = None,
    junit: Path | None = None,
    markdown: Path | None = None,
    html: Path | None = None,
) -> list[Path]:
    """Write each requested file (JSON first: it is the result itself) and return the paths written."""
    from lab.matrix.html import render_html
    from lab.matrix.junit import render_junit
    from lab.matrix.markdown import render_markdown

    renderers = [
        (json, lambda: jsonlib.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n"),
        (junit, lambda: render_junit(result)),
        (markdown, lambda: render_markdown(result)),
        (html, lambda: render_html(result)),
    ]
    written = []
    for path, render in renderers:
        if path is None:
            continue
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")  # a half-written report never takes the real name
        partial.write_text(render(), encoding="utf-8")
        partial.replace(path)
        written.append(path)
    return written
