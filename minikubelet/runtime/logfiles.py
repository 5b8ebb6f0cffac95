"""Container log files for the process runtime: written by the container, rotated by the daemon.

A container's stdout and stderr are its instance's log file itself, opened ``O_APPEND`` by the
runtime and handed to the process: no pipe, and no process of ours in between. So a container
never depends on the daemon for its output: it cannot get SIGPIPE when the daemon dies, and
nothing it writes while the daemon is down is lost. The log is raw: exactly what the process
wrote, interleaved as it wrote it (no CRI timestamps or stream tags). Layout, per container:

    <dir>/<restart_count>.log       the instance's live file, appended to by the container
    <dir>/<restart_count>.log.1     the newest rotation, ... up to .<max_files - 1>

Rotation (``LiveLog``) is the daemon's job, while the instance runs: the file grows under the
container's appends, so it cannot be renamed away (the container would keep writing to the
renamed file). Instead the head of the live file is *copied* to ``.1`` (``copy_file_range``) and
then *dropped* from the live file with ``fallocate(FALLOC_FL_COLLAPSE_RANGE)``, which removes a
block-aligned range from the start of the file atomically with respect to the container's
appends: nothing written meanwhile is lost or duplicated. Where the filesystem cannot collapse
(tmpfs, btrfs; ext4 and xfs can) it falls back to copytruncate: the bytes the container appends
between the last copy and the truncate, a window of microseconds, are lost. The daemon learns
that a file grew from inotify (``IN_MODIFY``, one instance for the whole runtime:
``LogWatcher``), not by polling, and rotates once the file reaches ``max_bytes``; rotated files
therefore hold at least ``max_bytes`` each (what was written by the time the daemon looked,
rounded down to the filesystem's block), and ``max_files`` files are kept in all. While the
daemon is down nothing rotates: the live file grows unbounded until the next daemon takes it
over and rotates it at once. See docs/recovery.md.

Readers (``read_log``) serve everything, the last N lines, or follow. Followers hold no file
descriptor at all between reads (a rotated file is opened, read and closed within one step) and
cost nothing while the log does not grow: they wait on the ``LiveLog``'s change event, which
only inotify sets. Positions are absolute (bytes since the oldest file kept when this daemon
took the log over), so a rotation never makes a follower skip or repeat bytes: a follower that
fell behind finds its bytes in the rotated files, as long as they are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import itertools
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

from asyncinotify import Inotify, Mask, Watch

from minikubelet.aiotasks import TaskSet

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
POLL_INTERVAL = 1.0  # seconds between size checks for a log inotify cannot watch
FALLOC_FL_COLLAPSE_RANGE = 0x08

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
_libc.fallocate.restype = ctypes.c_int


def log_path(directory: Path, restart_count: int) -> Path:
    return directory / f"{restart_count}.log"


def rotations(path: Path) -> list[Path]:
    """The files of one instance's log that exist, oldest first (``.N`` ... ``.1``, current)."""
    older: list[Path] = []
    n = 1
    while os.path.exists(f"{path}.{n}"):
        older.append(Path(f"{path}.{n}"))
        n += 1
    older.reverse()
    return [*older, path] if path.exists() else older


def open_for_container(path: Path) -> int:
    """The fd a container's stdout and stderr become: appends only, so that the daemon may drop
    the file's head while the container writes. Close-on-exec: the spawn dup2s it."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)


def _collapse(fd: int, length: int) -> None:
    if _libc.fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, length) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class LiveLog:
    """One instance's log while the daemon serves it: rotation by size, and the wake-ups of
    followers. Created when the instance starts (or is adopted), ``finish``ed when its processes
    are all gone, ``close``d when the runtime forgets the log."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int,
        max_files: int,
        tasks: TaskSet | None = None,
        finished: bool = False,
    ) -> None:
        self.path = path  # the live file: <dir>/<restart_count>.log
        self._max_bytes = max(1, max_bytes)  # rotate when the live file reaches this size
        self._max_files = max(1, max_files)  # files kept in all, the live one included
        self._tasks = tasks  # where rotations run; None: this log is only read
        # The daemon's own fd on the live file (never on a rotated one): reads, fstat, and the
        # collapse or truncate of a rotation. Read and write, never append.
        self._fd = os.open(path, (os.O_RDONLY if finished else os.O_RDWR) | os.O_CLOEXEC)
        older = rotations(path)[:-1]
        # Lengths of the rotated files this log knows, oldest (.N) first, newest (.1) last.
        self._rotated: list[int] = [_size(p) for p in older]
        self._base = sum(self._rotated)  # absolute position of the live file's first byte
        self._collapse = True  # the filesystem can collapse ranges (until it says it cannot)
        self._rotating = False  # a rotation task is running
        self._failed = False  # a rotation failed: said once, retried on the next growth
        self._changed = asyncio.Event()  # set (and replaced) when the log grows or ends
        self.finished = finished  # no process will write to it any more
        self.closed = False  # the fd is closed: readers stop

    # --- the writer's side: growth and rotation ------------------------------------------------

    def grew(self) -> None:
        """The live file changed (inotify or a poll): wake followers, rotate if it is due."""
        if self.closed:
            return
        self._notify()
        if self._tasks is not None and not self._rotating and self._due():
            self._rotating = True
            self._tasks.spawn(self._rotate(), name=f"rotate {self.path}")

    def _due(self) -> bool:
        try:
            return os.fstat(self._fd).st_size >= self._max_bytes
        except OSError:
            return False

    async def _rotate(self) -> None:
        try:
            while not self.closed and self._due():
                await self._rotate_once()
            self._failed = False
        except OSError as exc:
            if not self._failed and not self.closed:
                log.error("cannot rotate %s (will retry when it grows): %s", self.path, exc)
            self._failed = True
        finally:
            self._rotating = False

    async def _rotate_once(self) -> None:
        st = os.fstat(self._fd)
        # Collapsing needs whole filesystem blocks and must leave at least one byte.
        length = (st.st_size - 1) // st.st_blksize * st.st_blksize if self._collapse else 0
        keep = self._max_files - 1  # rotated files kept
        tmp = Path(f"{self.path}.rotating")
        if keep and length:
            await asyncio.to_thread(_copy_head, self.path, st.st_ino, tmp, length)
        if self.closed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            return
        # From here on, one step of the event loop: readers see the files before or after the
        # rotation, never in between.
        dropped = 0
        if length:
            try:
                _collapse(self._fd, length)
                dropped = length
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                self._collapse = False
                log.info(
                    "%s: this filesystem cannot collapse ranges; rotating by copy and truncate "
                    "(what is written during a rotation may be lost)",
                    self.path.parent,
                )
        if not dropped:
            # copytruncate: the rest of the file, then empty it. Appends between the copy and
            # the truncate are lost: a window of microseconds.
            size = os.fstat(self._fd).st_size
            if keep:
                _append_range(self._fd, length, size, tmp)
            os.ftruncate(self._fd, 0)
            dropped = size
        if keep:
            self._shift(tmp)
            self._rotated.append(dropped)
            del self._rotated[: max(0, len(self._rotated) - keep)]
        self._base += dropped

    def _shift(self, tmp: Path) -> None:
        """.k -> .k+1 (the oldest falls off), then the new head becomes .1."""
        keep = self._max_files - 1
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{self.path}.{keep}")
        for n in range(keep - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                os.replace(f"{self.path}.{n}", f"{self.path}.{n + 1}")
        os.replace(tmp, f"{self.path}.1")

    def finish(self) -> None:
        """Its processes are gone: followers read to the end and stop. Rotates once more if due."""
        if self.finished:
            return
        self.grew()
        self.finished = True
        self._notify()

    def close(self) -> None:
        """Forget the log: readers stop, the fd is closed (no read is in flight: they run on the
        event loop, as this does)."""
        if self.closed:
            return
        self.closed = self.finished = True
        os.close(self._fd)
        self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def changes(self) -> asyncio.Event:
        """An event set by the next growth, end or close. Take it *before* reading, so that a
        change while reading is not missed."""
        return self._changed

    # --- the readers' side -----------------------------------------------------------------------

    @property
    def origin(self) -> int:
        """Absolute position of the oldest byte kept."""
        return self._base - sum(self._rotated)

    @property
    def end(self) -> int:
        """Absolute position just after the last byte written so far."""
        return self._base + os.fstat(self._fd).st_size

    async def read(self, position: int, end: int | None = None) -> tuple[int, bytes]:
        """Up to CHUNK bytes from ``position`` (from the oldest kept byte if that is gone), never
        past ``end``: (where they start, the bytes); b"" when nothing more is there yet."""
        if self.closed:
            return position, b""
        position = max(position, self.origin)
        size = CHUNK if end is None else min(CHUNK, end - position)
        if size <= 0:
            return position, b""
        if position >= self._base:
            # The live file: on the loop, like the rotation that may move its bytes. Small
            # reads of what was just written, from the page cache.
            return position, os.pread(self._fd, size, position - self._base)
        start = self.origin
        for index, length in enumerate(self._rotated):
            if position < start + length:
                suffix = len(self._rotated) - index  # the oldest is .N
                offset, size = position - start, min(size, start + length - position)
                try:
                    fd = os.open(f"{self.path}.{suffix}", os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    return start + length, b""  # removed with its pod
                try:
                    # Opened before any await: a rotation that renames it later does not matter.
                    return position, await asyncio.to_thread(os.pread, fd, size, offset)
                finally:
                    os.close(fd)
            start += length
        return position, b""

    async def tail_start(self, lines: int) -> int:
        """Absolute position where the last ``lines`` lines begin (a final newline ends the last
        line rather than starting an empty one, as ``tail -n`` counts)."""
        end = self.end
        if lines <= 0:
            return end
        # The files' boundaries, newest last; positions stay valid if a rotation happens.
        bounds = [self.origin]
        for length in self._rotated:
            bounds.append(bounds[-1] + length)
        bounds.append(end)
        remaining = lines
        skip_last_newline = True
        for seg_start, seg_end in reversed(list(itertools.pairwise(bounds))):
            position = seg_end
            while position > seg_start:
                start = max(seg_start, position - CHUNK)
                got, block = await self.read(start, position)
                if not block or got != start:
                    return max(got, start)  # dropped while we read: start at what is left
                stop = len(block)
                if skip_last_newline:
                    skip_last_newline = False
                    if block.endswith(b"\n"):
                        stop -= 1
                while (found := block.rfind(b"\n", 0, stop)) >= 0:
                    remaining -= 1
                    if remaining == 0:
                        return start + found + 1
                    stop = found
                position = start
        return self.origin


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _copy_head(path: Path, ino: int, tmp: Path, length: int) -> None:
    """Copy the first ``length`` bytes of the live file to ``tmp`` (in a thread)."""
    src = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if os.fstat(src).st_ino != ino:
            raise FileNotFoundError(errno.ENOENT, "replaced while rotating", str(path))
        dst = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
        try:
            offset = 0
            while offset < length:
                copied = os.copy_file_range(src, dst, length - offset, offset, offset)
                if copied == 0:
                    break
                offset += copied
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _append_range(fd: int, start: int, end: int, tmp: Path) -> None:
    dst = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
    try:
        position = start
        while position < end:
            data = os.pread(fd, min(CHUNK, end - position), position)
            if not data:
                break
            os.write(dst, data)
            position += len(data)
    finally:
        os.close(dst)


class LogWatcher:
    """One inotify instance for every live log of a runtime: IN_MODIFY calls ``LiveLog.grew``.
    A log that inotify cannot watch (no inotify, or its watch limit reached) is polled."""

    def __init__(self, tasks: TaskSet) -> None:
        self._tasks = tasks
        self._inotify: Inotify | None = None  # once started
        self._watches: dict[int, tuple[LiveLog, Watch]] = {}  # by watch descriptor
        self._wd: dict[LiveLog, int] = {}  # the watch descriptor of each watched log
        self._polled: set[LiveLog] = set()  # logs inotify could not watch
        self._poller: asyncio.Task[None] | None = None

    def start(self) -> None:
        try:
            self._inotify = Inotify(cache_size=64)
        except OSError as exc:
            log.warning("inotify unavailable (%s): logs are checked every %gs", exc, POLL_INTERVAL)
            return
        self._tasks.spawn(self._read(self._inotify), name="log watcher")

    def add(self, live: LiveLog) -> None:
        if self._inotify is not None:
            try:
                watch = self._inotify.add_watch(live.path, Mask.MODIFY)
            except OSError as exc:
                log.warning("%s: cannot watch (%s); checking it every %gs", live.path, exc, 1.0)
            else:
                self._watches[watch.wd] = (live, watch)
                self._wd[live] = watch.wd
                return
        self._polled.add(live)
        if self._poller is None:
            self._poller = self._tasks.spawn(self._poll(), name="log poller")

    def remove(self, live: LiveLog) -> None:
        self._polled.discard(live)
        wd = self._wd.pop(live, None)
        entry = self._watches.get(wd) if wd is not None else None
        if entry is not None and entry[0] is live:
            del self._watches[entry[1].wd]
            if self._inotify is not None:
                with contextlib.suppress(OSError):  # already gone with its file
                    self._inotify.rm_watch(entry[1])

    async def _read(self, inotify: Inotify) -> None:
        try:
            async for event in inotify:
                watch = event.watch
                if watch is not None and (entry := self._watches.get(watch.wd)) is not None:
                    entry[0].grew()
        finally:
            inotify.close()

    async def _poll(self) -> None:
        try:
            while True:
                await asyncio.sleep(POLL_INTERVAL)
                for live in list(self._polled):
                    live.grew()
        finally:
            self._poller = None


async def read_log(
    path: Path,
    *,
    live: LiveLog | None,
    tail_lines: int | None,
    follow: bool,
) -> AsyncIterator[bytes]:
    """Yield one instance's log. The caller has checked that it exists (see ``rotations``).
    ``live``: the daemon's LiveLog of a running (or recently run) instance; without one the
    files are read as they are now, and a follow ends at their end."""
    own = live is None
    if live is None:
        live = LiveLog(path, max_bytes=1, max_files=1, finished=True)
    try:
        if tail_lines is None or tail_lines < 0:  # kubectl's --tail=-1: everything
            position = live.origin
        else:
            position = await live.tail_start(tail_lines)
        end = None if follow else live.end
        while True:
            finished = live.finished  # before reading: bytes written before the end are seen
            changed = live.changes()
            position, chunk = await live.read(position, end)
            if chunk:
                position += len(chunk)
                yield chunk
                continue
            if end is not None or finished:
                return
            await changed.wait()
    finally:
        if own:
            live.close()
