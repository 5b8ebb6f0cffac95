"""Children of the process runtime without asyncio's subprocess machinery: every exec (probes,
hooks) and every container's leading process.

Exec probes start about a hundred children a second, and every one of them costs the event
loop its time. ``asyncio.create_subprocess_exec`` builds, per child, a ``subprocess.Popen``, a
transport and protocol with their futures, and a child-watcher registration, and the caller
added a pipe transport, a StreamReader and a task for the output. Here a child is one
``os.posix_spawn`` (vfork-based like Popen: the loop pauses only until the child has exec'd),
its exit is one reader callback on a pidfd, and its output (``Output``, also used for the execs
that still go through asyncio) is one reader callback that appends to a bytearray. Measured on
the project's 2-core machine: the daemon's CPU per exec probe went from ~0.55 ms to ~0.30 ms
(~0.35 to ~0.18 ms with 20 at once); the exec's own processes are another matter (see
``ProcessRuntime.exec_in_container``). Container starts use ``spawn_pid`` for another reason:
the runtime must hold a pidfd on the leader from the moment it exists (``procs.Leader``), which
asyncio's Process does not give.

What ``posix_spawn`` gives up, and why the callers can live with it:

- no working directory and no PATH search in the child's environment: ``argv[0]`` must be an
  absolute path (``nsenter``, ``sh``), and the working directory is set by what it runs;
- no closing of inherited fds: every fd Python opens is close-on-exec (PEP 446), as are the
  runtime's pipes; the child gets exactly stdin = /dev/null and stdout = stderr = ``stdout``;
- signal dispositions: Python ignores SIGPIPE (and SIGXFSZ), and an ignored signal stays
  ignored across exec, so both are reset to the default, as Popen's ``restore_signals`` does.

The child leads a new session (``setsid``), so its process group id is its pid. It stays a
zombie until its pidfd reports the exit; ``Child`` then kills what the exec left in its process
group (the zombie still holds the group's number, so no other group can be hit) and reaps it,
once.

Needs Linux >= 5.3 (``pidfd_open``); ``available()`` says whether this kernel has it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence

_DEFAULT_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ", "SIGXFZ") if hasattr(signal, name)
)
_READ_SIZE = 64 * 1024


def available() -> bool:
    """Whether this kernel (and Python) can wait for children through pidfds."""
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return False
    return True


class Child:
    """A spawned child: ``pid`` (also its process group), ``returncode`` once reaped
    (negative: killed by that signal, as Popen's), ``await wait()`` for it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = self._loop.create_future()
        self._reaped = False
        self._pidfd = os.pidfd_open(pid)
        self._loop.add_reader(self._pidfd, self._reap)

    def kill_group(self) -> None:
        """SIGKILL its process group, only while the child is not reaped (its pid, hence the
        group's number, cannot have been reused)."""
        if not self._reaped:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)

    def _reap(self) -> None:
        # The pidfd is readable once the child has exited: waitpid does not block. Until then
        # the zombie reserves its pid, so its group can be killed by number.
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self.kill_group()
        self._reaped = True
        try:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            # Reaped by someone else (a waitpid(-1) child watcher): asyncio's answer too.
            self.returncode = 255
        self._exited.set_result(self.returncode)

    async def wait(self) -> int:
        """The exit code, once the child has exited and been reaped (cancelling the wait does
        not stop the reaping)."""
        if self.returncode is not None:
            return self.returncode
        return await asyncio.shield(self._exited)


def spawn_pid(
    argv: Sequence[str], *, env: Mapping[str, str], stdout: int, stdin: int | None = None
) -> int:
    """Start ``argv`` (``argv[0]`` an absolute path) in a new session, with stdin ``stdin``
    (/dev/null when None) and stdout and stderr both ``stdout``; its pid. The caller reaps it.
    OSError when the exec fails (glibc reports it)."""
    stdin_action = (
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)
        if stdin is None
        else (os.POSIX_SPAWN_DUP2, stdin, 0)
    )
    return os.posix_spawn(
        argv[0],
        list(argv),
        dict(env),
        file_actions=[
            stdin_action,
            (os.POSIX_SPAWN_DUP2, stdout, 1),
            (os.POSIX_SPAWN_DUP2, stdout, 2),
        ],
        setsid=True,
        setsigdef=_DEFAULT_SIGNALS,
    )


def spawn(argv: Sequence[str], *, env: Mapping[str, str], stdout: int) -> Child:
    """Start ``argv`` (``argv[0]`` an absolute path) in a new session, with stdin /dev/null and
    stdout and stderr both ``stdout``. OSError when the exec fails (glibc reports it)."""
    pid = spawn_pid(argv, env=env, stdout=stdout)
    try:
        return Child(pid)
    except BaseException:
        # No pidfd (or no loop): nobody would reap it otherwise.
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise


class Output:
    """Collects what a pipe's write ends deliver, keeping at most ``limit`` bytes but reading
    on to EOF (a blocked writer would never exit). Takes ownership of ``fd``."""

    def __init__(self, fd: int, *, limit: int) -> None:
        self.data = bytearray()
        self._fd = fd
        self._limit = limit
        self._loop = asyncio.get_running_loop()
        self._eof: asyncio.Future[None] = self._loop.create_future()
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self._read)

    def _read(self) -> None:
        try:
            chunk = os.read(self._fd, _READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.close()
            return
        if (room := self._limit - len(self.data)) > 0:
            self.data += chunk[:room]

    async def wait_eof(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for EOF (every write end closed); False if not."""
        if self._eof.done():
            return True  # the usual case: the pipe's EOF came with the child's exit
        done, _ = await asyncio.wait([self._eof], timeout=timeout)
        return bool(done)

    def close(self) -> None:
        """Stop reading and close the fd (idempotent)."""
        if self._eof.done():
            return
        self._loop.remove_reader(self._fd)
        os.close(self._fd)
        self._eof.set_result(None)


__all__ = ["Child", "Output", "available", "spawn", "spawn_pid"]
