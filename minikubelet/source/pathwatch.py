"""inotify watches on a directory and on everything its path is resolved through.

A watch is on an inode, not on a path. Watching only the manifests directory misses what fleet
tools do: git-sync swaps a symlink (``current -> rev2``), other tools rename a new directory over
the old one, and a directory can be removed and created again. None of that touches the inode
being watched. So ``resolve`` walks the path (pathwalk.py) and watches every directory in which a
name is looked up, for that name (it appearing, going, being replaced or changing owner or
mode), and the directory the path leads to, for its files. A change of any of those names is
an event, and the caller walks the path again and watches what it leads to now.

Race-free by order: the watches are placed after a walk, and the path is walked again after
they are placed. If the two walks differ, something changed before the watches could see it,
and it is done again; once they agree, every later change is an event.

Two threads: ``resolve`` runs in the source's refresh pass (a worker thread), ``classify`` on
the event loop, for each event. They share two dicts, each changed by single operations (which
CPython makes atomic) and never iterated by the other side: the role of each current watch, and
the watches removed, until the kernel's IN_IGNORED for them arrives. An event from a watch
neither knows was placed by a pass that has not published it yet; ``classify`` answers
``Seen.PATH`` for it, which costs one extra full pass and loses nothing.
"""

from __future__ import annotations

import enum
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from asyncinotify import Event, Inotify, Mask, Watch

from minikubelet.source import pathwalk

__all__ = ["PathWatch", "Seen"]

logger = logging.getLogger(__name__)

_WALK_TRIES: Final = 5  # walk, watch, walk again: how often before leaving it to the next pass

# A directory the path is resolved through: names appearing, going, or changing owner or mode,
# and the directory itself going or changing mode. Not MODIFY or CLOSE_WRITE: writes to other
# files there (/tmp, /etc) would wake us for nothing.
LOOKUP_MASK: Final = (
    Mask.CREATE
    | Mask.DELETE
    | Mask.ATTRIB
    | Mask.MOVED_FROM
    | Mask.MOVED_TO
    | Mask.DELETE_SELF
    | Mask.MOVE_SELF
    | Mask.ONLYDIR
    | Mask.DONT_FOLLOW
    | Mask.EXCL_UNLINK
)
# The directory the path leads to: the same, and its files being written.
FILES_MASK: Final = LOOKUP_MASK | Mask.MODIFY | Mask.CLOSE_WRITE
_SELF: Final = Mask.IGNORED | Mask.DELETE_SELF | Mask.MOVE_SELF | Mask.ATTRIB

_Inode = tuple[int, int]  # (st_dev, st_ino)


class Seen(enum.Enum):
    """What an event means to the source."""

    NOTHING = "nothing"  # not ours, or a name nobody looks up
    PATH = "path"  # the path may lead elsewhere now, or a directory on it changed: a full pass
    FILE = "file"  # an entry of the manifests directory (event.name) changed


@dataclass(frozen=True, slots=True)
class _Role:
    """What one watch is for."""

    names: frozenset[str]  # names looked up in this directory while resolving the path
    files: bool  # this is the directory the path leads to: its entries matter


class PathWatch:
    """The watches for one path. Without an inotify instance, ``resolve`` only walks."""

    def __init__(self, inotify: Inotify | None, *, describe: Callable[[str, str], None]) -> None:
        """``describe(path, problem)`` is called once per directory that cannot be watched."""
        self._inotify = inotify
        self._describe = describe
        self._watches: dict[int, Watch] = {}  # by wd: the watches placed (resolve's own)
        self._problems: dict[str, str] = {}  # path -> why it cannot be watched, as last said
        # Shared with classify(): replaced whole / single insertions and removals.
        self._roles: dict[int, _Role] = {}  # by wd: what each current watch is for
        self._retired: dict[int, Watch] = {}  # by wd: removed by us, until their IN_IGNORED

    # --- refresh pass (worker thread) ---------------------------------------------------------

    def resolve(self, path: str) -> tuple[pathwalk.Walk, bool]:
        """Walk ``path``, watch what it goes through and leads to, and walk again until the two
        walks agree. Returns the last walk and whether they agreed (False: the path kept
        changing; the caller should look again soon)."""
        walked = pathwalk.walk(path)
        if self._inotify is None:
            return walked, True
        for _ in range(_WALK_TRIES):
            self._watch(walked)
            again = pathwalk.walk(path)
            if again.signature() == walked.signature():
                return again, True
            walked = again
        return walked, False

    def _watch(self, walked: pathwalk.Walk) -> None:
        assert self._inotify is not None
        wanted: dict[_Inode, tuple[str, Mask, frozenset[str], bool]] = {}

        def want(path: str, st: os.stat_result, names: frozenset[str], *, files: bool) -> None:
            # By inode: one watch per directory, whatever path reached it (the kernel gives
            # the same watch back for the same inode, with the last mask asked for).
            inode = (st.st_dev, st.st_ino)
            first, mask, known, had_files = wanted.get(inode, (path, Mask(0), frozenset(), False))
            mask |= FILES_MASK if files else LOOKUP_MASK
            wanted[inode] = (first, mask, known | names, had_files or files)

        for step in walked.steps:
            if isinstance(step, pathwalk.Lookup):
                want(step.directory, step.st, frozenset({step.name}), files=False)
        if walked.path is not None and walked.st is not None and stat.S_ISDIR(walked.st.st_mode):
            want(walked.path, walked.st, frozenset(), files=True)

        watches: dict[int, Watch] = {}
        roles: dict[int, _Role] = {}
        for path, mask, names, files in wanted.values():
            try:
                watch = self._inotify.add_watch(path, mask)
            except (FileNotFoundError, NotADirectoryError):
                continue  # changed since the walk: the next walk differs and says so
            except OSError as exc:
                problem = exc.strerror or str(exc)
                if self._problems.get(path) != problem:
                    self._describe(path, problem)
                self._problems[path] = problem
                continue
            self._problems.pop(path, None)
            watches[watch.wd] = watch
            roles[watch.wd] = _Role(names, files)
        gone = [(wd, w) for wd, w in self._watches.items() if wd not in watches]
        for wd, watch in gone:
            self._retired[wd] = watch  # first, so that its last events are known as stale
        self._roles = roles
        for wd, watch in gone:
            try:
                self._inotify.rm_watch(watch)
            except OSError:
                self._retired.pop(wd, None)  # the kernel removed it already (directory deleted)
        self._watches = watches

    # --- event loop -----------------------------------------------------------------------------

    def classify(self, event: Event) -> Seen:
        """What ``event`` means: nothing, a change on the way to the directory, or a file."""
        watch = event.watch
        role = self._roles.get(watch.wd) if watch is not None else None
        if role is None:
            if watch is not None and watch.wd in self._retired:
                if Mask.IGNORED in event.mask:
                    self._retired.pop(watch.wd, None)
                return Seen.NOTHING  # a watch we removed: its last events mean nothing now
            return Seen.PATH  # placed by a pass that has not published it yet
        if event.name is None:
            # The directory itself was deleted or moved (the path leads elsewhere now), or its
            # owner or mode changed (the trust rules judge it again).
            return Seen.PATH if event.mask & _SELF else Seen.NOTHING
        name = str(event.name)
        if name in role.names:
            return Seen.PATH  # created, removed, replaced, chmodded: resolve and judge again
        return Seen.FILE if role.files else Seen.NOTHING
