"""Real filesystem faults for tests (root only): a small tmpfs that can be filled up and
remounted read-only, as a state directory on a full or failing disk would behave."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def small_tmpfs(path: Path, *, size: str = "4m") -> Iterator[Path]:
    """Mount a tmpfs of ``size`` on ``path`` (created if needed); unmount it at the end."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], check=True
    )
    try:
        yield path
    finally:
        # Lazily: a daemon under test may still hold files there while it is being stopped.
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path, name: str = ".filler") -> Path:
    """Write ``directory/name`` until the filesystem is full (ENOSPC); return its path."""
    path = directory / name
    chunk = b"\0" * 65536
    with open(path, "ab", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        with contextlib.suppress(OSError):
            while f.write(b"\0" * 512):
                pass
    return path


def remount(path: Path, mode: str) -> None:
    """Remount the filesystem at ``path`` read-only (``ro``) or read-write (``rw``)."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


def free(path: Path) -> None:
    """Undo ``fill``."""
    os.unlink(path)
