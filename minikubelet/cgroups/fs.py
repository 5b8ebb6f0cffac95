"""One cgroup v2 directory and the file operations on it: write, read, kill, remove.

``Cgroup`` is a path with methods; it holds no state, so two handles on the same directory are
the same cgroup, and a daemon restart can pick a subtree up again from the filesystem alone.

Writes open the interface file without ``O_CREAT``: a missing file is an error (a controller not
enabled, or not a cgroup at all), never a new plain file. Every OSError is translated into
``CgroupError`` naming the file and the value, so a pod worker can show it as an event.

The writes are a few bytes to a pseudo-filesystem and return in microseconds, so they are plain
synchronous calls (STYLE.md 2); only waiting for a cgroup to empty after a kill is async.

Killing: ``cgroup.kill`` (Linux 5.14+) SIGKILLs the whole subtree atomically, forks included.
On older kernels we freeze the subtree (``cgroup.freeze``, 5.2+) so nothing can fork while each
pid in ``cgroup.procs`` gets SIGKILL, then thaw so the signals are delivered; without a freezer
we repeat the sweep until the cgroup is empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from minikubelet.api.errors import RuntimeFailure


class CgroupError(RuntimeFailure):
    """A cgroup could not be created, configured, emptied or removed."""


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


@dataclass(frozen=True, slots=True)
class Cgroup:
    path: Path  # absolute directory under the cgroup2 mount

    # --- files --------------------------------------------------------------------------------

    @property
    def procs_path(self) -> Path:
        """The file a process writes its own pid into to enter this cgroup."""
        return self.path / "cgroup.procs"

    def write(self, name: str, value: str) -> None:
        target = self.path / name
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise CgroupError(f"cannot open {target}: {_reason(exc)}") from exc
        try:
            os.write(fd, value.encode())
        except OSError as exc:
            raise CgroupError(f"writing {value!r} to {target}: {_reason(exc)}") from exc
        finally:
            os.close(fd)

    def read(self, name: str) -> str:
        target = self.path / name
        try:
            return target.read_text()
        except OSError as exc:
            raise CgroupError(f"reading {target}: {_reason(exc)}") from exc

    def read_keyed(self, name: str) -> dict[str, int]:
        """A flat-keyed file (memory.events, cpu.stat, cgroup.events) as {key: value}."""
        out: dict[str, int] = {}
        for line in self.read(name).splitlines():
            key, _, value = line.partition(" ")
            if value.strip().lstrip("-").isdigit():
                out[key] = int(value)
        return out

    def exists(self) -> bool:
        return (self.path / "cgroup.procs").exists()

    # --- state --------------------------------------------------------------------------------

    def memory_events(self) -> dict[str, int]:
        """low, high, max, oom, oom_kill, oom_group_kill counters (this cgroup and below)."""
        return self.read_keyed("memory.events")

    def oom_kills(self) -> int:
        """How many processes the OOM killer has killed in this cgroup and below."""
        return self.memory_events().get("oom_kill", 0)

    def cpu_stat(self) -> dict[str, int]:
        """usage_usec, user_usec, system_usec, nr_periods, nr_throttled, throttled_usec."""
        return self.read_keyed("cpu.stat")

    def pids(self) -> list[int]:
        return [int(p) for p in self.read("cgroup.procs").split()]

    def populated(self) -> bool:
        """Whether any process is left in this cgroup or below."""
        return self.read_keyed("cgroup.events").get("populated", 0) == 1

    # --- lifecycle ----------------------------------------------------------------------------

    def create(self, *, enable: frozenset[str] = frozenset()) -> None:
        """mkdir (idempotent), then enable ``enable`` for this cgroup's children."""
        try:
            self.path.mkdir(exist_ok=True)
        except OSError as exc:
            raise CgroupError(f"cannot create cgroup {self.path}: {_reason(exc)}") from exc
        if enable:
            self.enable_controllers(enable)

    def enable_controllers(self, controllers: frozenset[str]) -> None:
        current = set(self.read("cgroup.subtree_control").split())
        todo = sorted(controllers - current)
        if todo:
            self.write("cgroup.subtree_control", " ".join(f"+{c}" for c in todo))

    def kill(self) -> None:
        """SIGKILL every process in this cgroup and below; returns without waiting."""
        if (self.path / "cgroup.kill").exists():
            self.write("cgroup.kill", "1")
        else:
            self.kill_by_signal()

    def kill_by_signal(self) -> None:
        """The pre-5.14 way: freeze, SIGKILL each pid below, thaw (or sweep until empty)."""
        frozen = (self.path / "cgroup.freeze").exists()
        if frozen:
            self.write("cgroup.freeze", "1")
        try:
            for _ in range(100):
                found = False
                for directory, _dirs, _files in os.walk(self.path):
                    for pid in Cgroup(Path(directory)).pids():
                        found = True
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                if frozen or not found:
                    break
        finally:
            if frozen:
                self.write("cgroup.freeze", "0")

    async def wait_empty(self, *, timeout: float, poll: float = 0.005) -> bool:
        """Wait until no process is left below; False if some still are after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.populated():
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(poll)
        return True

    async def kill_and_wait(self, *, timeout: float = 5.0) -> None:
        if not self.exists():
            return
        self.kill()
        if not await self.wait_empty(timeout=timeout):
            raise CgroupError(
                f"processes {self.pids()} in {self.path} survived SIGKILL for {timeout:.1f}s"
            )

    def remove(self) -> None:
        """rmdir this cgroup and everything below it, deepest first. Must be empty of
        processes (kill and wait first); a missing directory is not an error."""
        if not self.path.exists():
            return
        for directory, _dirs, _files in os.walk(self.path, topdown=False):
            try:
                os.rmdir(directory)
            except FileNotFoundError:
                continue
            except OSError as exc:
                hint = ""
                if exc.errno == errno.EBUSY:
                    hint = f" (processes left: {Cgroup(Path(directory)).pids()})"
                raise CgroupError(
                    f"cannot remove cgroup {directory}: {_reason(exc)}{hint}"
                ) from exc
