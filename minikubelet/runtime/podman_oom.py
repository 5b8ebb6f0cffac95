"""The kernel's word on whether a podman container was OOM-killed.

podman 4.3 reports ``OOMKilled=false`` after a real OOM kill on cgroup v1 "hybrid" hosts (its
conmon looks for the event in the wrong place), and the container's cgroup is removed soon
after it exits, so reading the memory cgroup once at the end is a race. This module owns a
watch that is armed *before the container's process runs* (between podman's ``init`` and
``start``), so nothing can be missed:

- cgroup v1: an eventfd registered on the container's ``memory.oom_control`` through
  ``cgroup.event_control``. The kernel signals it once per OOM episode and once when the cgroup
  is removed. So: the cgroup said ``oom_kill > 0`` (or ``under_oom 1``) while it existed, or
  the eventfd counted two signals or more in all (a removal alone counts one) -> OOM-killed.
  The eventfd sits on the event loop (``add_reader``): no polling, no thread.
- cgroup v2: podman's own flag is truthful there (conmon reads ``memory.events``); the watch only
  adds a read of ``memory.events`` (``oom_kill``) at exit if the cgroup is still there.

Nothing here talks to podman: the caller gives the container's pid after ``init``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")


class OomWatch:
    """One container's OOM evidence, from arm() until close()."""

    def __init__(self, directory: Path | None, *, v1: bool) -> None:
        self._dir = directory  # the container's memory cgroup directory, if found
        self._v1 = v1
        self._efd = -1  # the eventfd (v1), -1 when not armed
        self._signals = 0  # eventfd signals seen so far
        self.oom_killed = False  # the kernel said so

    @classmethod
    def arm(cls, pid: int) -> OomWatch:
        """Watch the memory cgroup of ``pid`` (the container's init process, not yet running).
        Never raises: without a memory cgroup the watch is simply blind (and says so at debug)."""
        directory, v1 = _memory_cgroup_of(pid)
        watch = cls(directory, v1=v1)
        if directory is not None and v1:
            watch._register_v1(directory)
        return watch

    def _register_v1(self, directory: Path) -> None:
        try:
            efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        except OSError as exc:
            log.debug("no eventfd for %s: %s", directory, exc)
            return
        try:
            cfd = os.open(directory / "memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
            try:
                with open(directory / "cgroup.event_control", "w") as control:
                    control.write(f"{efd} {cfd}")
            finally:
                os.close(cfd)  # the kernel keeps its own reference once registered
            asyncio.get_running_loop().add_reader(efd, self._on_event)
        except OSError as exc:
            os.close(efd)
            log.debug("cannot watch %s for OOM: %s", directory, exc)
            return
        self._efd = efd
        self._check()  # registered while already under OOM

    def _on_event(self) -> None:
        self._drain()
        self._check()

    def _drain(self) -> None:
        if self._efd < 0:
            return
        with contextlib.suppress(BlockingIOError, OSError):
            self._signals += os.eventfd_read(self._efd)
        if self._signals >= 2:
            # More than the removal's one signal: an OOM notification came first.
            self.oom_killed = True

    def _check(self) -> None:
        """Read the cgroup's own counters while it still exists."""
        if self._dir is None or self.oom_killed:
            return
        name = "memory.oom_control" if self._v1 else "memory.events"
        try:
            text = (self._dir / name).read_text()
        except OSError:
            return  # removed: the eventfd count decides
        fields = dict(line.split(maxsplit=1) for line in text.splitlines() if " " in line)
        if int(fields.get("oom_kill", "0")) > 0 or fields.get("under_oom", "0").strip() == "1":
            self.oom_killed = True

    def finish(self) -> bool:
        """The verdict once the container has exited: reads what is pending, then closes."""
        self._drain()
        self._check()
        self.close()
        return self.oom_killed

    def close(self) -> None:
        if self._efd >= 0:
            with contextlib.suppress(RuntimeError):  # the loop may be closed already
                asyncio.get_running_loop().remove_reader(self._efd)
            os.close(self._efd)
            self._efd = -1


def _memory_cgroup_of(pid: int) -> tuple[Path | None, bool]:
    """(the memory cgroup directory of pid, whether it is cgroup v1), from /proc/<pid>/cgroup."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None, False
    unified: str | None = None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            directory = CGROUP_ROOT / "memory" / path.lstrip("/")
            return (directory if directory.is_dir() else None), True
        if controllers == "":
            unified = path
    if unified is not None:
        directory = CGROUP_ROOT / unified.lstrip("/")
        if (directory / "memory.events").exists():
            return directory, False
    return None, False
