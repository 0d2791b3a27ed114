"""How a command ends when it fails or is interrupted: one message, an exit code, no traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

from rich.console import Console

from lab.display import shown
from lab.errors import VpnlabError

errors = Console(stderr=True, highlight=False)


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn vpnlab errors and Ctrl-C (SIGTERM, SIGHUP alike) into one message and an exit code."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from lab.runtime.owed import pay_all
        from lab.runtime.uninterrupted import hold_signals, signals_as_interrupts

        with signals_as_interrupts():
            try:
                return fn(*args, **kwargs)
            except VpnlabError as exc:
                hold_signals()  # exiting: a signal now would end in a traceback, not this message
                errors.print(f"[red]error:[/red] {shown(str(exc))}", markup=True, highlight=False, soft_wrap=True)
                sys.exit(exc.exit_code)
            except KeyboardInterrupt:
                hold_signals()
                left = pay_all()  # a second interrupt may have cut a clean-up short: finished here
                if left:
                    errors.print("[yellow]interrupted; could not remove everything this command created:[/yellow] "
                                 + shown("; ".join(left)) + " ('vpnlab status' lists it, 'vpnlab down' removes it)")
                else:
                    errors.print("[yellow]interrupted; everything this command created was removed[/yellow]")
                sys.exit(130)

    return wrapper
