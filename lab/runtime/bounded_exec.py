"""An exec whose output the host waits for at most so long.

docker-py reads an exec's output after a ``poll()`` without a timeout (docker.utils.socket.read),
so the client's ``timeout=`` never applies to it: a command that never ends, or an engine that
stops answering mid-exec, held a tunnel's check (and the whole run) for ever. Measured with
docker 7.2: a client made with ``timeout=2`` waited out a 5 s exec. Here the output is read from
the same socket with a deadline, and running out of it is an error naming the command.
"""

from __future__ import annotations

import struct
import time
from typing import Any

from lab.errors import VpnlabError

HEADER = struct.Struct(">BxxxL")  # stream (1 stdout, 2 stderr), 3 zero bytes, payload length


class ExecTimeout(VpnlabError):
    """An exec still running when the host stopped waiting for it."""

    def __init__(self, node: str, command: str, seconds: float):
        self.node = node
        self.command = command
        self.seconds = seconds
        super().__init__(f"{node}: '{command}' was still running after {seconds:g} s; vpnlab stopped waiting")


def demultiplex(raw: bytes) -> bytes:
    """stdout and stderr, in order, from the engine's multiplexed stream (a non-tty exec); a frame
    cut short keeps what arrived."""
    out, at = bytearray(), 0
    while at + HEADER.size <= len(raw):
        _, length = HEADER.unpack_from(raw, at)
        out += raw[at + HEADER.size : at + HEADER.size + length]
        at += HEADER.size + length
    return bytes(out)


def read_until_closed(sock: Any, seconds: float) -> bytes:
    """Everything ``sock`` sends until the engine closes it; TimeoutError after ``seconds`` in all."""
    ends = time.monotonic() + seconds
    data = bytearray()
    while True:
        remaining = ends - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no end of output within {seconds:g} s")
        # A unix socket comes wrapped in a SocketIO (its socket is ._sock), TLS and ssh as sockets.
        for layer in (sock, getattr(sock, "_sock", None)):
            if hasattr(layer, "settimeout"):
                layer.settimeout(remaining)
        chunk = sock.recv(65536) if hasattr(sock, "recv") else sock.read(65536)
        if not chunk:
            return bytes(data)
        data += chunk


def bounded_exec(api: Any, container_id: str, node: str, cmd: list[str], seconds: float) -> tuple[int, bytes]:
    """Run ``cmd`` in the container; (exit code, output), or ExecTimeout after ``seconds``."""
    exec_id = api.exec_create(container_id, cmd)["Id"]
    sock = api.exec_start(exec_id, socket=True)
    try:
        raw = read_until_closed(sock, seconds)
    except TimeoutError:
        raise ExecTimeout(node, " ".join(cmd), seconds) from None
    finally:
        close_socket(sock)
    return api.exec_inspect(exec_id).get("ExitCode") or 0, demultiplex(raw)


class ExecStream:
    """An exec whose output is read as it comes (a watcher's readings), without the exec's end."""

    def __init__(self, api: Any, container_id: str, cmd: list[str]):
        self.exec_id = api.exec_create(container_id, cmd)["Id"]
        self.sock = api.exec_start(self.exec_id, socket=True)
        self.raw = bytearray()  # a frame cut by recv waits here for its rest

    def read(self, seconds: float) -> bytes | None:
        """The output that arrived within ``seconds``: None if nothing did, b"" once the exec ended."""
        # The socket itself, not a SocketIO around it: once a SocketIO's read timed out, every
        # later read of it fails ("cannot read from timed out object").
        raw = getattr(self.sock, "_sock", self.sock)
        try:
            raw.settimeout(seconds)
            chunk = raw.recv(65536)
        except (TimeoutError, OSError):
            return None
        if not chunk:
            return b""
        self.raw += chunk
        out = bytearray()
        while len(self.raw) >= HEADER.size:
            _, length = HEADER.unpack_from(self.raw)
            if len(self.raw) < HEADER.size + length:
                break
            out += self.raw[HEADER.size : HEADER.size + length]
            del self.raw[: HEADER.size + length]
        return bytes(out)

    def close(self) -> None:
        close_socket(self.sock)


def close_socket(sock: Any) -> None:
    """Close an exec's connection: it was handed over to the exec and nothing reuses it, so the
    socket itself (a unix socket's SocketIO wraps it as ._sock) is closed, not only its wrapper."""
    for layer in (sock, getattr(sock, "_sock", None)):
        if hasattr(layer, "close"):
            layer.close()
