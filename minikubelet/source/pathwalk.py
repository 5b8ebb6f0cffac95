"""Resolving a path one name at a time, as the kernel does, recording where each name is looked up.

Two parts of the source need the same walk. The trust rules (``trust.check_path``) judge every
directory in which a name is looked up and every symlink met, because whoever can change one of
those decides what the path leads to. The manifest source watches those same directories, for
the names it looked up there, so that a symlink swapped or a directory renamed anywhere on the
way is an inotify event rather than something the next resync finds (``manifests.py``).

The walk uses ``lstat`` and ``readlink`` only: it never opens anything, so a FIFO cannot block
it. It stops at the first name that cannot be resolved (missing, not a directory, a symlink
loop, no permission) and says why; what it recorded up to there is still true.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = ["MAX_SYMLINKS", "Link", "Lookup", "Lstat", "Walk", "walk"]

MAX_SYMLINKS: Final = 40  # Linux's limit for one path resolution (ELOOP beyond)

Lstat = Callable[[str], os.stat_result]


@dataclass(frozen=True, slots=True)
class Lookup:
    """A name looked up in a directory."""

    directory: str  # the directory's path, free of symlinks
    st: os.stat_result  # lstat of the directory
    name: str  # the name looked up in it


@dataclass(frozen=True, slots=True)
class Link:
    """A symlink met on the way, and followed."""

    path: str  # the symlink itself (its directory free of symlinks)
    st: os.stat_result  # lstat of the symlink


@dataclass(frozen=True, slots=True)
class Walk:
    """Where a path leads, and through what."""

    steps: tuple[Lookup | Link, ...]  # in the order met
    path: str | None  # the object reached, free of symlinks; None when the walk stopped short
    st: os.stat_result | None  # lstat of the object reached
    error: OSError | None  # why the walk stopped short

    def signature(self) -> tuple[object, ...]:
        """The directories, names and symlinks gone through, and the object reached, by inode:
        two walks with equal signatures resolved the path the same way."""
        parts: list[object] = []
        for step in self.steps:
            if isinstance(step, Lookup):
                parts.append((step.directory, step.st.st_dev, step.st.st_ino, step.name))
            else:
                parts.append((step.path, step.st.st_dev, step.st.st_ino))
        if self.st is not None:
            parts.append((self.path, self.st.st_dev, self.st.st_ino, self.st.st_mode))
        else:
            parts.append(None if self.error is None else self.error.errno)
        return tuple(parts)


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def walk(path: str, *, lstat: Lstat = os.lstat) -> Walk:
    """Resolve ``path`` from ``/`` (a relative path from the working directory), following
    symlinks, recording each name looked up (with its directory) and each symlink met.
    ``lstat`` may be a cache shared by the walks of one pass."""
    if not path.startswith("/"):
        path = os.path.join(os.getcwd(), path)
    steps: list[Lookup | Link] = []

    def stopped(error: OSError) -> Walk:
        return Walk(tuple(steps), None, None, error)

    try:
        current, current_st = "/", lstat("/")
        todo = _parts(path)[::-1]  # a stack: the next name is last
        hops = 0
        while todo:
            name = todo.pop()
            if name == "..":
                current = os.path.dirname(current)
                current_st = lstat(current)
                continue
            # Recorded before the lookup: the directory decides what the name leads to, and
            # a name that does not exist yet may appear in it.
            steps.append(Lookup(current, current_st, name))
            candidate = os.path.join(current, name)
            st = lstat(candidate)
            if stat.S_ISLNK(st.st_mode):
                steps.append(Link(candidate, st))
                hops += 1
                if hops > MAX_SYMLINKS:
                    return stopped(OSError(errno.ELOOP, os.strerror(errno.ELOOP), path))
                target = os.readlink(candidate)
                if target.startswith("/"):
                    current, current_st = "/", lstat("/")
                todo.extend(_parts(target)[::-1])
                continue
            if todo and not stat.S_ISDIR(st.st_mode):
                return stopped(OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), candidate))
            current, current_st = candidate, st
    except OSError as exc:
        return stopped(exc)
    return Walk(tuple(steps), current, current_st, None)
