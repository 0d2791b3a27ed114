"""Engine work that Ctrl-C does not cut off in the middle of an engine call.

Why: a KeyboardInterrupt (Ctrl-C, or SIGTERM/SIGHUP, which the CLI turns into one) is raised in
the main thread wherever it is, also half-way through a request to the engine. The engine then
finishes creating a container this process never hears of, and a clean-up that lists the lab a
moment later misses it (seen: a container left after Ctrl-C at the first create; a second Ctrl-C
cutting the clean-up short). So the work runs in a worker thread, where no interrupt is raised,
and the main thread only waits: an interrupt asks the work to stop at its next step (``cancel``)
and is raised once the work has returned, its requests whole.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_held_at_exit = False
LEAVE_AFTER = 3  # interrupts while waiting: the third leaves the work behind (an engine that hangs)


class Cancelled(Exception):
    """The work stopped at a step boundary because an interrupt asked it to."""


def finish_first(work: Callable[[threading.Event], T]) -> T:
    """``work(cancel)``'s result, in a worker thread; interrupts wait for it, then the first is raised.

    ``work`` should look at ``cancel`` between engine calls and raise Cancelled when it is set.
    """
    cancel = threading.Event()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = work(cancel)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="vpnlab-engine-work", daemon=True)
    # Held off while the thread starts: an interrupt inside start() could not tell whether it ran.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    worker.start()
    interrupts: list[KeyboardInterrupt] = []
    while mask is not None or worker.is_alive():
        try:
            if mask is not None:
                mask, before = None, mask
                signal.pthread_sigmask(signal.SIG_SETMASK, before)  # a pending interrupt is raised here
            worker.join(0.2)
        except KeyboardInterrupt as exc:
            interrupts.append(exc)
            cancel.set()
            if len(interrupts) >= LEAVE_AFTER:
                raise
            if len(interrupts) == LEAVE_AFTER - 1:
                _note("vpnlab: finishing the engine calls under way and removing what was made; "
                      "interrupt once more to leave at once\n")
    if interrupts:
        raise interrupts[0]
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def _note(text: str) -> None:
    try:
        os.write(2, text.encode())  # not the console: it may be half-way through a line of its own
    except OSError:
        pass


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP (a CI job's end, a closed terminal) are Ctrl-C: a
    KeyboardInterrupt, so the lab is removed the same way. The handlers from before come back after."""
    before = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    try:
        yield
    finally:
        for signum, handler in before.items():
            if handler is not None:  # None: set outside Python, left as it is
                signal.signal(signum, handler)


def hold_signals() -> None:
    """Ignore Ctrl-C, SIGTERM and SIGHUP from now on: the process is printing its last message.

    signals_as_interrupts puts the handlers back when its block ends (a test that runs commands
    in-process goes on); so the hold is taken again at exit, before the interpreter's finalisation,
    which sets Python's handlers back to the defaults: a second Ctrl-C there killed the process
    (exit -2 instead of 130)."""
    global _held_at_exit
    _ignore_stop_signals()
    if not _held_at_exit:
        _held_at_exit = True
        atexit.register(_ignore_stop_signals)


def _ignore_stop_signals() -> None:
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
