"""From a file's bytes to plain data a topology can be checked on, or one located problem.

Whatever a file holds (binary junk, another encoding, 10 000 nested lists, a number of
5 000 digits, an alias bomb, a YAML set), reading it ends in plain data (dicts with
lists, strings, numbers, booleans, None) within fixed bounds, or in a ``TopologyError``:
never in a traceback, so ``vpnlab validate`` always exits 2 with one message.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import Node

from lab.errors import Problem, TopologyError

MAX_BYTES = 1 << 20  # a topology is a few kilobytes; a bigger file is a mistake
MAX_DEPTH = 32  # the schema is at most 4 levels deep; past this PyYAML's recursion would fail
MAX_VALUES = 100_000  # values once aliases are expanded: what a checker may walk
MAX_TEXT = 4096  # characters in one string
MAX_INT = 2**63  # a larger number is no port, count or timeout (and str() fails past 4300 digits)


def decode(raw: bytes, source: str) -> str:
    """The file's text (UTF-8), or a problem naming where it stops being UTF-8."""
    if len(raw) > MAX_BYTES:
        raise TopologyError(source, [Problem("", f"the file has {len(raw)} bytes; a topology has at most {MAX_BYTES}")])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        byte = raw[exc.start: exc.start + 1].hex()
        return _refuse(source, f"line {line}, column {column}", f"not UTF-8 text (byte 0x{byte}); save the file as UTF-8")


def _refuse(source: str, where: str, message: str) -> Any:
    raise TopologyError(source, [Problem(where, message)])


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a depth bound (its composer recurses once per level) and
    integers bounded where they are read (so the problem has a line)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: object) -> Node:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise ConstructorError(None, None, f"nested more than {MAX_DEPTH} levels deep", mark)
            return super().compose_node(parent, index)  # type: ignore[no-untyped-call]
        finally:
            self._depth -= 1

    def construct_yaml_int(self, node: Node) -> int:
        digits = str(node.value).lstrip("+-").replace("_", "")
        if len(digits) > 40:  # 2**63 has 19 digits; hex and octal are shorter still
            raise ConstructorError(None, None, "a number this large is no port, count or timeout", node.start_mark)
        return super().construct_yaml_int(node)  # type: ignore[no-untyped-call]


BoundedLoader.add_constructor("tag:yaml.org,2002:int", BoundedLoader.construct_yaml_int)


def parse_yaml(text: str, source: str) -> object:
    """The document's data, or the YAML problem with its line and column."""
    loader = None
    try:
        loader = BoundedLoader(text)  # its reader already refuses control characters
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        return _refuse(source, where, f"not valid YAML: {reason}")
    except RecursionError:  # a bound above should come first; this keeps the promise regardless
        return _refuse(source, "", f"not valid YAML: nested more than {MAX_DEPTH} levels deep")
    finally:
        if loader is not None:
            loader.dispose()


def screen(data: object, source: str) -> None:
    """Refuse what the schema checks cannot be trusted with: YAML sets (they would slip past
    the checks that only look into lists), values past the bounds above, and aliases that
    expand beyond MAX_VALUES or contain themselves. Walks without recursion."""
    problems: list[Problem] = []
    budget = MAX_VALUES
    stack: list[tuple[object, str, tuple[int, ...]]] = [(data, "", ())]
    while stack:
        value, where, ancestors = stack.pop()
        budget -= 1
        if budget < 0:
            raise TopologyError(source, [Problem("", f"more than {MAX_VALUES} values once its aliases (*name) are expanded")])
        problem = _value_problem(value, ancestors)
        if problem:
            problems.append(Problem(where, problem))
            continue
        if isinstance(value, dict):
            inner = (*ancestors, id(value))
            for key in value:
                key_problem = _value_problem(key, ()) if isinstance(key, (str, bytes)) else ""
                if key_problem:
                    problems.append(Problem(_join(where, key), f"key: {key_problem}"))
            stack += [(item, _join(where, key), inner) for key, item in reversed(value.items())]
        elif isinstance(value, list):
            inner = (*ancestors, id(value))
            stack += [(item, f"{where}[{i}]", inner) for i, item in reversed(list(enumerate(value)))]
    if problems:
        raise TopologyError(source, problems)


def _value_problem(value: object, ancestors: tuple[int, ...]) -> str:
    if isinstance(value, (set, frozenset)):
        return "a YAML set (!!set) is not allowed here: write a list, e.g. [a, b]"
    if isinstance(value, bytes):  # pydantic would take it as text, after the checks that look for text
        return "binary data (!!binary) is not allowed here: write text"
    if isinstance(value, (dict, list)):
        if id(value) in ancestors:
            return "an alias (*name) that contains itself"
        if len(ancestors) >= MAX_DEPTH:
            return f"nested more than {MAX_DEPTH} levels deep"
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return f"a text of {len(value)} characters (at most {MAX_TEXT})"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= MAX_INT:
        return "a number this large is no port, count or timeout"
    return ""


def _join(where: str, key: object) -> str:
    from lab.topology.model import quoted

    part = quoted(key) if isinstance(key, str) else f"<{quoted(key)}>"
    part = part.replace("\n", "\\n")  # a location stays on its line
    return f"{where}.{part}" if where else part
