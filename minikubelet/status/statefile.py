"""One JSON file of the state dir: written behind, atomically, and retried until it works.

The status store and the event log each keep one such file (``status.json``, ``events.json``)
so that a restarted daemon can show what happened before. Neither file is needed to run pods, so
nothing that happens to them may stop the daemon:

- Writing: a change marks the file dirty and wakes ``run()``, which writes at most once per
  ``flush_interval``. A write goes to a temp file, is fsynced, renamed over the old file, and
  then the directory is fsynced: a reader (or a crash) sees the old file or the new one, never
  half of one. When a write fails (a full disk, EMFILE, EIO, a read-only remount, or anything
  else) the temp file is removed, the old file stays as it was, and the write is retried with a
  doubling delay up to ``retry_max``. The failure is said once (a log line and a Warning event
  through ``report``) and shown by ``health()`` until a write succeeds again.
- Reading: ``load()`` hands the parsed JSON to the caller's ``parse``, which raises on any
  shape it does not expect. A file that cannot be read, is not JSON, is nested too deep, or has
  the wrong shape is set aside (renamed to ``<name>.corrupt-<UTC time>``, kept for a human to
  look at) and reported; the daemon then starts without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from minikubelet.api.model import EventType

log = logging.getLogger(__name__)

T = TypeVar("T")

Report = Callable[[EventType, str, str], None]
"""(type, reason, message): an event about the node, recorded by the daemon's event log."""

RETRY_MAX = 10.0  # seconds: the longest wait between two attempts at a failing write
MAX_BYTES = 64 * 2**20  # a larger state file is not ours: set aside unread
MAX_DEPTH = 64  # JSON nesting; Kubernetes objects stay far below, a crafted file does not

WRITE_FAILED = "StateWriteFailed"  # Warning: a state file could not be written
WRITE_RECOVERED = "StateWriteRecovered"  # Normal: it was written again
SET_ASIDE = "StateFileSetAside"  # Warning: a state file was unreadable and renamed


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temp file, fsync, rename, fsync the directory.

    A reader sees the old or the new file, never half of one, and after a crash the rename is
    on disk. On failure the temp file is removed and ``path`` is left as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # A partial temp file on a full disk holds the very space the next attempt needs.
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def describe(exc: BaseException) -> str:
    """An exception as users read it: OSError's own text, the type name for anything else."""
    if isinstance(exc, OSError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _check_depth(value: object) -> None:
    """Raise ValueError if ``value`` nests deeper than MAX_DEPTH (iteratively: no recursion)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


class StateFile:
    """One state file: dirty flag, the writer loop, its health, and the reader."""

    def __init__(
        self,
        path: Path | None,
        *,
        what: str,
        serialise: Callable[[], bytes],
        flush_interval: float = 0.5,
        retry_max: float = RETRY_MAX,
        report: Report | None = None,
    ) -> None:
        """``what`` names the contents in messages ("status", "events"); ``path`` None keeps
        everything in memory (tests, and ``report`` may be set later by the owner)."""
        self.path = path
        self.what = what
        self.report = report
        self._serialise = serialise
        self._flush_interval = flush_interval
        self._retry_max = retry_max
        self._dirty = asyncio.Event()
        self._writing: asyncio.Future[None] | None = None  # the write in a thread, if any
        self.failure: str | None = None  # why writes fail right now; None: they work
        self.failures = 0  # attempts failed in a row
        self.written = 0  # successful writes (tests and the soak bench read it)

    # --- writing ------------------------------------------------------------------------------

    def mark_dirty(self) -> None:
        self._dirty.set()

    async def flush(self) -> None:
        """Write the current contents now. Raises what the write raised."""
        if self.path is None:
            return
        self._dirty.clear()
        try:
            data = self._serialise()
        except BaseException:
            self._dirty.set()
            raise
        # Shielded: a thread cannot be cancelled, so the final write in run() waits for this one
        # (two writers of one temp file race, and an older snapshot could land last).
        self._writing = asyncio.ensure_future(asyncio.to_thread(write_atomically, self.path, data))
        try:
            await asyncio.shield(self._writing)
        except asyncio.CancelledError:
            raise
        except BaseException:
            self._dirty.set()  # what was not written is still to be written
            raise
        self.written += 1

    async def run(self) -> None:
        """Write whenever dirty, at most once per flush_interval, retrying failures with a
        doubling delay. Runs until cancelled; then writes once more if anything is unwritten,
        so that a clean shutdown loses nothing (a failure then is logged, not raised)."""
        delay = 0.0  # the current retry delay; 0 while writes work
        try:
            while True:
                await self._dirty.wait()
                await asyncio.sleep(max(self._flush_interval, delay))
                try:
                    await self.flush()
                except Exception as exc:
                    delay = min(max(2 * delay, self._flush_interval, 0.1), self._retry_max)
                    self._failed(exc, retry_in=delay)
                else:
                    delay = 0.0
                    self._succeeded()
        finally:
            await self._final_write()

    async def _final_write(self) -> None:
        if self._writing is not None:
            await asyncio.wait([self._writing])
            if not self._writing.cancelled():
                self._writing.exception()  # retrieved: run() has already reported it
        if self.path is None or not self._dirty.is_set():
            return
        try:
            write_atomically(self.path, self._serialise())
        except Exception as exc:
            log.error(
                "the %s file %s was not saved at shutdown: %s", self.what, self.path, describe(exc)
            )

    def _failed(self, exc: Exception, *, retry_in: float) -> None:
        self.failures += 1
        message = f"cannot write the {self.what} file {self.path}: {describe(exc)}"
        if message == self.failure:
            log.debug("%s (attempt %d; retrying in %.1fs)", message, self.failures, retry_in)
            return
        self.failure = message
        if isinstance(exc, OSError):
            log.error("%s; retrying every %gs at most", message, self._retry_max)
        else:
            # Not the disk: the contents could not be turned into JSON. A bug; keep trying.
            log.error("%s (a bug); retrying", message, exc_info=exc)
        if self.report is not None:
            self.report(
                "Warning",
                WRITE_FAILED,
                f"{message}; the previous file is kept and the write is retried",
            )

    def _succeeded(self) -> None:
        if self.failure is None:
            return
        log.warning(
            "the %s file %s is written again (after %d failed attempts)",
            self.what,
            self.path,
            self.failures,
        )
        if self.report is not None:
            self.report(
                "Normal",
                WRITE_RECOVERED,
                f"the {self.what} file {self.path} is written again after {self.failures} "
                "failed attempts",
            )
        self.failure = None
        self.failures = 0

    def health(self) -> tuple[str, bool, str]:
        """(name, ok, reason) for /healthz: failing while writes fail."""
        return (f"{self.what}-file", self.failure is None, self.failure or "")

    # --- reading ------------------------------------------------------------------------------

    def load(self, parse: Callable[[Any], T]) -> T | None:
        """The parsed file, or None when there is none. A file that cannot be read or parsed
        (``parse`` raises on a shape it does not expect) is set aside and reported."""
        if self.path is None:
            return None
        try:
            size = self.path.stat().st_size
            if size > MAX_BYTES:
                raise ValueError(f"{size} bytes, more than the {MAX_BYTES} a state file may have")
            raw = json.loads(self.path.read_bytes())
            _check_depth(raw)
            return parse(raw)
        except FileNotFoundError:
            return None
        except Exception as exc:  # any content at all: RecursionError from json included
            self._set_aside(exc)
            return None

    def _set_aside(self, exc: Exception) -> None:
        assert self.path is not None
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            n += 1
        reason = describe(exc)
        try:
            os.replace(self.path, target)
        except OSError as rename_error:
            outcome = f"it could not be set aside ({rename_error}) and is ignored"
        else:
            outcome = f"set aside as {target.name}"
        message = (
            f"the {self.what} file {self.path} could not be read ({reason}): {outcome}; "
            f"starting without the saved {self.what}"
        )
        log.warning("%s", message)
        if self.report is not None:
            self.report("Warning", SET_ASIDE, message)
