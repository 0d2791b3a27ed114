"""The matrix as JUnit XML, so CI systems list every cell as a test: vpnlab.matrix.<profile> / <protocol>."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from lab.matrix.result import MatrixResult
from lab.matrix.text import clean, evidence_summary


def render_junit(result: MatrixResult) -> str:
    cells = result.cells
    failures = [c for c in cells if not c.passed and c.observed not in ("skipped", "error")]
    errors = [c for c in cells if c.observed == "error" and not c.passed]
    suite_attrs = {
        "name": "vpnlab-matrix",
        "tests": str(len(cells) + len(result.missing)),
        "failures": str(len(failures)),
        "errors": str(len(errors) + len(result.missing)),
        "skipped": str(len(result.skipped)),
        "time": f"{sum(c.seconds for c in cells):.2f}",
    }
    if result.started:
        suite_attrs["timestamp"] = result.started
    root = ET.Element("testsuites", {k: suite_attrs[k] for k in ("name", "tests", "failures", "errors", "time")})
    suite = ET.SubElement(root, "testsuite", suite_attrs)
    properties = ET.SubElement(suite, "properties")
    for name, value in (("runtime", result.runtime), ("runtime_reason", result.runtime_reason),
                        ("kernel", result.kernel), ("vpnlab", result.version), ("shard", result.shard or "")):
        ET.SubElement(properties, "property", {"name": name, "value": clean(value)})
    for cell in cells:
        case = ET.SubElement(suite, "testcase", {
            "classname": f"vpnlab.matrix.{cell.profile}", "name": cell.protocol, "time": f"{cell.seconds:.2f}",
        })
        headline = f"expected {cell.expect}, observed {cell.observed}"
        detail = "\n".join(filter(None, [
            f"{cell.profile} · {cell.protocol} ({cell.client} → {cell.server}): {headline}",
            f"documented: {cell.expected_reason}" if cell.expected_reason else "",
            f"observed: {cell.reason}",
            evidence_summary(cell),
        ]))
        if cell.observed == "skipped":
            ET.SubElement(case, "skipped", {"message": clean(cell.reason)})
        elif cell.observed == "error" and not cell.passed:
            ET.SubElement(case, "error", {"message": headline, "type": "error"}).text = clean(detail)
        elif not cell.passed:
            ET.SubElement(case, "failure", {"message": headline, "type": "mismatch"}).text = clean(detail)
        else:
            ET.SubElement(case, "system-out").text = clean(f"{headline}: {cell.reason}")
    for profile, protocol in result.missing:  # a shard that never reported must not look green
        case = ET.SubElement(suite, "testcase", {"classname": f"vpnlab.matrix.{profile}", "name": protocol, "time": "0"})
        ET.SubElement(case, "error", {"message": "missing: no shard ran this cell", "type": "missing"})
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
