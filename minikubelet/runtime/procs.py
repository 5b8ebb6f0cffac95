"""Processes the process runtime holds on to: by pidfd and start time, never by a bare number.

A pid is only a name for a process while that process exists (or, dead, is not yet reaped):
after that the kernel may give the number to anything. So the runtime never signals or adopts a
pid it has not pinned first:

- ``Leader`` holds a pidfd on an instance's leader (the exit recorder, see ``mounts``), opened
  right after the spawn or, for a process a previous daemon started, ``adopt``ed after checking
  its identity: the same start time (``/proc/<pid>/stat`` field 22, clock ticks since boot) as
  recorded at its start, the same boot, and membership of its cgroup when there is one. The
  pidfd is opened *before* the check, so the process checked is the one held.
- Signals go through the pidfd (``pidfd_send_signal``). Its process group is signalled by number
  only while the leader is our unreaped child (the number is then reserved); otherwise each
  member is found in /proc, pinned by its own pidfd, checked again, and signalled through it.

``scan`` reads /proc once; ``members`` finds a container's processes from it without cgroups:
its process group and session, and every live descendant of those (a process that called
``setsid`` under a container process that is still there). The /proc readers are plain
functions for ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass

_BOOT_ID = "/proc/sys/kernel/random/boot_id"


@dataclass(frozen=True, slots=True)
class ProcStat:
    pid: int
    state: str  # R, S, D, Z (zombie), X (dead), ...
    ppid: int
    pgid: int
    sid: int
    start_ticks: int  # clock ticks after boot: with the boot, tells a process from a reused pid

    @property
    def alive(self) -> bool:
        return self.state not in ("Z", "X")


def proc_stat(pid: int) -> ProcStat | None:
    """/proc/<pid>/stat, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        # fields[0] is stat(5)'s field 3 (state); starttime is field 22.
        return ProcStat(
            pid=pid,
            state=fields[0].decode(),
            ppid=int(fields[1]),
            pgid=int(fields[2]),
            sid=int(fields[3]),
            start_ticks=int(fields[19]),
        )
    except (OSError, IndexError, ValueError):
        return None


def start_ticks(pid: int) -> int | None:
    stat = proc_stat(pid)
    return stat.start_ticks if stat is not None else None


def boot_id() -> str:
    """This boot's id: a pid or start time recorded in another boot means nothing."""
    try:
        with open(_BOOT_ID) as f:
            return f.read().strip()
    except OSError:
        return ""


def scan() -> list[ProcStat]:
    """Every process in /proc (blocking: run it in a thread)."""
    found: list[ProcStat] = []
    with os.scandir("/proc") as entries:
        for entry in entries:
            if entry.name.isdigit() and (stat := proc_stat(int(entry.name))) is not None:
                found.append(stat)
    return found


def members(
    procs: Iterable[ProcStat], *, group: int, descendants: bool, exclude: int | None = None
) -> list[ProcStat]:
    """The live processes of process group or session ``group``, and with ``descendants``
    every live descendant of theirs (also one that started a session of its own)."""
    procs = [p for p in procs if p.alive and p.pid != exclude]
    found = {p.pid: p for p in procs if group in (p.pgid, p.sid)}
    if descendants:
        children: dict[int, list[ProcStat]] = {}
        for p in procs:
            children.setdefault(p.ppid, []).append(p)
        todo = list(found)
        while todo:
            for child in children.get(todo.pop(), []):
                if child.pid not in found:
                    found[child.pid] = child
                    todo.append(child.pid)
    return list(found.values())


def signal_checked(pid: int, sig: int, *, check: Callable[[int], bool]) -> bool:
    """Signal ``pid`` only if, once pinned by a pidfd, ``check(pid)`` still holds."""
    try:
        pidfd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return False
    try:
        if not check(pid):
            return False
        signal.pidfd_send_signal(pidfd, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(pidfd)


class Leader:
    """An instance's leading process, held by a pidfd: our child (we reap it) or adopted from a
    previous daemon (its parent, init, reaps it). ``exited`` resolves when it has exited; until
    ``reap`` (for a child) its pid and process group number stay reserved."""

    def __init__(self, pid: int, pidfd: int, *, child: bool) -> None:
        self.pid = pid  # also its process group and session (it called setsid)
        self.child = child  # our child: waitpid gives its status
        self.returncode: int | None = None  # a child's, once reaped (negative: its signal)
        self._pidfd: int | None = pidfd
        self._loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[None] = self._loop.create_future()
        self._reaped = False
        self._loop.add_reader(pidfd, self._on_exit)

    @classmethod
    def spawned(cls, pid: int) -> Leader:
        """Hold a child we have just spawned (not reaped by anyone yet, so the pid is ours)."""
        return cls(pid, os.pidfd_open(pid), child=True)

    @classmethod
    def adopt(
        cls, pid: int, *, start_ticks: int, check: Callable[[int], bool] | None = None
    ) -> Leader | None:
        """Hold the process ``pid`` if it is the one recorded: started at ``start_ticks`` (and
        passing ``check``, e.g. cgroup membership). None if it is gone or another process."""
        try:
            pidfd = os.pidfd_open(pid)
        except (ProcessLookupError, OSError):
            return None
        stat = proc_stat(pid)
        if stat is None or stat.start_ticks != start_ticks or not stat.alive:
            if stat is not None and stat.start_ticks == start_ticks and stat.ppid == os.getpid():
                # It has exited, and it is our child (a runtime reopened in the same process):
                # reap it, as its parent would have.
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
            os.close(pidfd)
            return None
        if check is not None and not check(pid):
            os.close(pidfd)
            return None
        return cls(pid, pidfd, child=stat.ppid == os.getpid())

    def _on_exit(self) -> None:
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
        if not self._exited.done():
            self._exited.set_result(None)

    @property
    def exited(self) -> bool:
        return self._exited.done()

    async def wait_exited(self) -> None:
        await asyncio.shield(self._exited)

    @property
    def holds_group(self) -> bool:
        """Its pid, hence its process group number, cannot be reused yet: our unreaped child."""
        return self.child and not self._reaped and self._pidfd is not None

    def send_signal(self, sig: int) -> bool:
        """Through the pidfd; False if it has exited or is no longer held."""
        if self._pidfd is None or self.exited:
            return False
        try:
            signal.pidfd_send_signal(self._pidfd, sig)
        except ProcessLookupError:
            return False
        return True

    def signal_group(self, sig: int) -> bool:
        """killpg, only while the group number is reserved (see ``holds_group``)."""
        if not self.holds_group:
            return False
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def reap(self) -> int | None:
        """After ``exited``: reap a child (its status as Popen's returncode); release the pidfd.
        None for an adopted process: its status went to its parent."""
        if not self._reaped:
            self._reaped = True
            if self.child:
                try:
                    _, status = os.waitpid(self.pid, 0)
                    self.returncode = os.waitstatus_to_exitcode(status)
                except ChildProcessError:
                    self.returncode = None  # reaped by someone else: unknown
            self.close()
        return self.returncode

    def close(self) -> None:
        """Stop watching and release the pidfd (without reaping: a later daemon may adopt it)."""
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
