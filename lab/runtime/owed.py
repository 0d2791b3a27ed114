"""Clean-ups this process owes: the lab objects it created and has not removed yet.

Why: the clean-up after an interrupt is ordinary Python code, and a second Ctrl-C (or a SIGTERM)
that lands in it between two engine calls, before the next one holds the signals off (see
lab.runtime.uninterrupted), ends it early (seen: the containers of a lab left after Ctrl-C pressed
twice 0.05 s apart). So every 'up' writes down what it owes before it creates anything and crosses
it out once its lab is removed (or kept on purpose); the command's exit, with every stop signal
ignored from then on, pays what is still owed (lab.exits.friendly).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

_lock = threading.Lock()
_owed: dict[str, Callable[[], object]] = {}


def owe(key: str, clean_up: Callable[[], object]) -> None:
    """Remember ``clean_up`` (removes what ``key`` made) until ``settle(key)``."""
    with _lock:
        _owed[key] = clean_up


def settle(key: str) -> None:
    """``key``'s objects are gone, or kept on purpose: nothing is owed for it any more."""
    with _lock:
        _owed.pop(key, None)


def pay_all() -> list[str]:
    """Run every clean-up still owed, the last owed first (a lab is removed before the guest it
    runs in stops), each once whatever the others do; what failed, and why."""
    with _lock:
        owed = list(_owed.items())
        _owed.clear()
    failed = []
    for key, clean_up in reversed(owed):
        try:
            clean_up()
        except Exception as exc:  # noqa: BLE001 - the others still run; the caller reports
            failed.append(f"{key}: {exc}")
    return failed
