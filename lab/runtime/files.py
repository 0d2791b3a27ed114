"""Copying rendered files into a container as one tar archive."""

from __future__ import annotations

import io
import tarfile
import time

from docker.models.containers import Container

from lab.node_files import NodeFile


def tar_files(files: list[NodeFile]) -> bytes:
    buffer = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        made_dirs: set[str] = set()
        for f in files:
            parts = f.path.strip("/").split("/")
            for depth in range(2, len(parts)):  # never rewrite a top-level folder such as /etc
                folder = "/".join(parts[:depth])
                if folder not in made_dirs:
                    made_dirs.add(folder)
                    info = tarfile.TarInfo(folder)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    info.mtime = now
                    tar.addfile(info)
            data = f.content.encode()
            info = tarfile.TarInfo(f.path.strip("/"))
            info.size = len(data)
            info.mode = f.mode
            info.mtime = now
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def copy_files(container: Container, files: list[NodeFile]) -> None:
    if files:
        container.put_archive("/", tar_files(files))


def read_file(container: Container, path: str) -> str:
    return read_bytes(container, path).decode()


def read_bytes(container: Container, path: str) -> bytes:
    """A file's bytes, copied out of the container as the engine's tar archive."""
    stream, _ = container.get_archive(path)
    raw = io.BytesIO(b"".join(stream))
    with tarfile.open(fileobj=raw) as tar:
        member = tar.next()
        if member is None:
            return b""
        extracted = tar.extractfile(member)
        return extracted.read() if extracted else b""
