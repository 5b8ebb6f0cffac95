"""Container log files for the process runtime: the pump that writes them and the readers.

A container's stdout and stderr share one pipe; ``pump`` copies it, byte for byte, into the
instance's file, so the log is raw: exactly what the process wrote, interleaved as it wrote it
(no CRI timestamps or stream tags; ``logs`` serves it unchanged). Layout, per container:

    <dir>/<restart_count>.log       the instance's current file
    <dir>/<restart_count>.log.1     the previous rotation (newest), ... up to .<max_files - 1>

``LogWriter`` rotates by size exactly at ``max_bytes`` (a line may be split across two files),
keeping ``max_files`` files in all, like kubelet's containerLogMaxSize/containerLogMaxFiles.
Writes are unbuffered appends from the event loop: small, to a local file, the same class of
cost as the cgroupfs writes elsewhere. Readers pin files by opening them, so a rotation that
happens while a reader works never mixes two files' bytes; their ``pread``s run in threads.

``read_log`` serves the three ways a user asks: everything (all rotations, oldest first), the
last N lines, and follow, which keeps yielding until the writer is closed and drained. It is
woken by the writer on every write, and polls at ``FOLLOW_POLL`` as a safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
FOLLOW_POLL = 0.2  # seconds between checks for new bytes when no wake-up arrives


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


class LogWriter:
    """Appends one instance's output to its file, rotating by size; followers wait on it."""

    def __init__(self, path: Path, *, max_bytes: int, max_files: int) -> None:
        self.path = path  # the current file: <dir>/<restart_count>.log
        self._max_bytes = max(1, max_bytes)  # rotate when the current file reaches this size
        self._max_files = max(1, max_files)  # files kept in all, the current one included
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size  # bytes in the current file
        self._failed = False  # a write failed (disk full): log once, then drop output
        self._changed = asyncio.Event()  # set (and replaced) on every write and on close
        self.closed = False  # the pump has seen EOF (or was cancelled): no more bytes come

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                if self._size >= self._max_bytes:
                    self._rotate()
                part = view[: self._max_bytes - self._size]
                written = os.write(self._fd, part)
                self._size += written
                view = view[written:]
        except OSError as exc:
            # Keep draining the pipe: a container must never block on a full disk of ours.
            if not self._failed:
                log.error("cannot write %s, dropping output until it works: %s", self.path, exc)
            self._failed = True
        else:
            self._failed = False
        self._notify()

    def _rotate(self) -> None:
        os.close(self._fd)
        keep = self._max_files - 1
        if keep == 0:
            os.unlink(self.path)
        else:
            for n in range(keep - 1, 0, -1):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(f"{self.path}.{n}", f"{self.path}.{n + 1}")
            os.replace(self.path, f"{self.path}.1")
        self._fd = self._open()
        self._size = 0

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self._fd)
            self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_changed(self, timeout: float) -> None:
        """Return after the next write or close, or after timeout, whichever comes first."""
        if self.closed:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._changed.wait()


async def pump(reader: asyncio.StreamReader, writer: LogWriter) -> None:
    """Copy the container's output pipe into its log until EOF (every writer has closed it)."""
    try:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
    finally:
        writer.close()


async def read_log(
    path: Path,
    *,
    writer: LogWriter | None,
    tail_lines: int | None,
    follow: bool,
) -> AsyncIterator[bytes]:
    """Yield one instance's log. The caller has checked that it exists (see ``rotations``)."""
    fds: list[int] = []
    try:
        for p in rotations(path):
            with contextlib.suppress(FileNotFoundError):  # rotated away since we listed it
                fds.append(os.open(p, os.O_RDONLY | os.O_CLOEXEC))
        sizes = [os.fstat(fd).st_size for fd in fds]
        if tail_lines is None or tail_lines < 0:  # kubectl's --tail=-1: everything
            index, offset = 0, 0
        else:
            index, offset = await asyncio.to_thread(_tail_start, fds, sizes, tail_lines)
        # Everything up to each file's snapshot size; the current file is read on below.
        for i in range(index, len(fds) - 1):
            async for chunk in _read_range(fds[i], offset if i == index else 0, sizes[i]):
                yield chunk
        if not fds:
            return
        position = offset if index == len(fds) - 1 else 0
        if not follow or writer is None:
            async for chunk in _read_range(fds[-1], position, sizes[-1]):
                yield chunk
            return
        current = fds[-1]
        while True:
            closed = writer.closed  # read before draining: bytes written before close are seen
            async for chunk in _read_range(current, position, None):
                position += len(chunk)
                yield chunk
            replaced = await _follow_rotation(path, current, position)
            if replaced is not None:
                for chunk in replaced.chunks:
                    yield chunk
                fds.append(replaced.fd)
                current, position = replaced.fd, 0
                continue
            if closed:
                return
            await writer.wait_changed(FOLLOW_POLL)
    finally:
        for fd in fds:
            os.close(fd)


class _Replaced:
    def __init__(self, fd: int, chunks: list[bytes]) -> None:
        self.fd = fd  # the new current file, opened
        self.chunks = chunks  # bytes written after our position, up to the new current file


async def _follow_rotation(path: Path, current: int, position: int) -> _Replaced | None:
    """If the file we follow was rotated away, collect what was written after it, in order."""
    try:
        latest = os.stat(path).st_ino
    except FileNotFoundError:
        return None  # the pod's logs are being removed
    ino = os.fstat(current).st_ino
    if latest == ino:
        return None
    chunks = [c async for c in _read_range(current, position, None)]  # its last bytes
    # The rotations newer than ours: normally none, more if several happened since we looked.
    older = rotations(path)[:-1]
    newer: list[Path] = []
    for p in reversed(older):  # newest (.1) first
        try:
            if os.stat(p).st_ino == ino:
                break
        except FileNotFoundError:
            continue
        newer.append(p)
    else:
        newer = []  # ours was rotated out of existence: we cannot tell what was in between
    for p in reversed(newer):
        try:
            fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            chunks += [c async for c in _read_range(fd, 0, None)]
        finally:
            os.close(fd)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    return _Replaced(fd, chunks)


async def _read_range(fd: int, start: int, end: int | None) -> AsyncIterator[bytes]:
    """Chunks of fd from start to end (to EOF when end is None)."""
    position = start
    while end is None or position < end:
        size = CHUNK if end is None else min(CHUNK, end - position)
        chunk = await asyncio.to_thread(os.pread, fd, size, position)
        if not chunk:
            return
        position += len(chunk)
        yield chunk


def _tail_start(fds: list[int], sizes: list[int], lines: int) -> tuple[int, int]:
    """(file index, offset) where the last ``lines`` lines of the concatenation begin.

    A final newline ends the last line rather than starting an empty one, as ``tail -n`` counts.
    """
    if not fds:
        return 0, 0
    if lines <= 0:
        return len(fds) - 1, sizes[-1]
    remaining = lines
    skip_last_newline = True
    for index in range(len(fds) - 1, -1, -1):
        end = sizes[index]
        while end > 0:
            start = max(0, end - CHUNK)
            block = os.pread(fds[index], end - start, start)
            stop = len(block)
            if skip_last_newline and stop:
                skip_last_newline = False
                if block.endswith(b"\n"):
                    stop -= 1
            while (found := block.rfind(b"\n", 0, stop)) >= 0:
                remaining -= 1
                if remaining == 0:
                    return index, start + found + 1
                stop = found
            end = start
    return 0, 0
