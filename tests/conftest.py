"""Fixtures every test gets: nothing may be left behind, and root-only tests say why they skip.

STYLE.md section 5. Two autouse guards fail a test, in its teardown, that leaves work running:

- ``_no_leftover_child_processes``: child processes of the pytest process (recursively) that did
  not exist before the test and are still there ~1 s after it (time for asyncio's child watcher
  or ``Popen.wait`` to reap them) are listed, killed, reaped, and the test fails. A leaked
  ``sleep 30`` otherwise outlives the run and makes a later test flaky.
- ``_no_asyncio_pending_tasks``: for async tests, tasks of the test's event loop that did not
  exist before the test and are not done after it (kopf's ``_no_asyncio_pending_tasks``). They
  are cancelled and the test fails: every task has an owner that awaits it (STYLE.md section 2).

The guards are set up before every other function-scoped fixture, so they are torn down after
them: a fixture that starts a server or a daemon and stops it in its teardown is fine.
Wider-scoped fixtures (module, session) start before the "before" snapshot and are not counted.

``require_root`` (fixture) and ``@pytest.mark.root`` (marker) skip with a reason when not root.
CI runs as root, so there they never skip.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import Literal

import psutil
import pytest
import pytest_asyncio

# How long a finished child may take to be reaped by its owner before it counts as leaked.
CHILD_REAP_GRACE = 1.0

ProcKey = tuple[int, float]  # (pid, create_time): a pid alone may be reused
LoopScope = Literal["function", "class", "module", "package", "session"]

# The files tests write (manifests above all) get mode 0644 whatever umask the CI shell has: the
# daemon refuses a manifest that group or others may write (docs/security.md), and a 002 umask
# would otherwise turn every test's manifest into a refusal.
os.umask(0o022)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "root: needs root (namespaces, mounts, cgroups, apt); skipped otherwise"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("root") is not None and os.geteuid() != 0:
        pytest.skip(f"needs root (running as uid {os.geteuid()})")


@pytest.fixture
def require_root() -> None:
    """Skip the requesting test, with the reason, unless running as root."""
    if os.geteuid() != 0:
        pytest.skip(f"needs root (running as uid {os.geteuid()})")


# --- child processes -------------------------------------------------------------------------


def _key(proc: psutil.Process) -> ProcKey:
    return (proc.pid, proc.create_time())


def child_processes() -> list[psutil.Process]:
    """Every descendant of this (pytest) process, zombies included."""
    try:
        children: list[psutil.Process] = psutil.Process().children(recursive=True)
    except psutil.Error:
        return []
    return children


def child_process_keys() -> set[ProcKey]:
    keys = set()
    for proc in child_processes():
        try:
            keys.add(_key(proc))
        except psutil.Error:
            continue
    return keys


def leftover_children(
    before: set[ProcKey], *, grace: float = CHILD_REAP_GRACE
) -> list[psutil.Process]:
    """Descendants not in ``before`` that are still in the process table after ``grace`` s.

    A zombie counts: nobody waited for it. Within the grace its owner usually does.
    """
    deadline = time.monotonic() + grace
    while True:
        left = []
        for proc in child_processes():
            try:
                if _key(proc) not in before:
                    left.append(proc)
            except psutil.Error:
                continue
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def describe_processes(procs: list[psutil.Process]) -> str:
    lines = []
    for proc in procs:
        try:
            with proc.oneshot():
                cmd = " ".join(proc.cmdline()) or proc.name()
                lines.append(f"  pid {proc.pid} ppid {proc.ppid()} [{proc.status()}]: {cmd}")
        except psutil.Error as exc:
            lines.append(f"  pid {proc.pid}: {type(exc).__name__}")
    return "\n".join(lines)


def kill_and_reap(procs: list[psutil.Process], *, timeout: float = 5.0) -> None:
    """SIGKILL ``procs``, wait for them, and reap the ones that are our direct children."""
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(procs, timeout=timeout)
    for proc in procs:
        try:
            os.waitpid(proc.pid, os.WNOHANG)
        except ChildProcessError:
            continue


@pytest.fixture(autouse=True)
def _no_leftover_child_processes() -> Iterator[None]:
    before = child_process_keys()
    yield
    left = leftover_children(before)
    if left:
        report = describe_processes(left)
        kill_and_reap(left)
        pytest.fail(
            f"test left {len(left)} child process(es) behind (now killed):\n{report}",
            pytrace=False,
        )


# --- asyncio tasks ---------------------------------------------------------------------------


def _pending_tasks_report(tasks: set[asyncio.Task[object]]) -> str:
    return "\n".join(f"  {task!r}" for task in sorted(tasks, key=lambda t: t.get_name()))


async def _fail_on_new_tasks(before: set[asyncio.Task[object]]) -> None:
    # Tasks cancelled at the very end of the test need a few loop turns to finish cancelling.
    for _ in range(5):
        await asyncio.sleep(0)
    current = asyncio.current_task()
    left = {t for t in asyncio.all_tasks() - before if t is not current and not t.done()}
    if left:
        report = _pending_tasks_report(left)
        for task in left:
            task.cancel()
        await asyncio.wait(left, timeout=5)
        pytest.fail(f"test left {len(left)} asyncio task(s) pending:\n{report}", pytrace=False)


def _make_task_guard(loop_scope: LoopScope) -> object:
    """A function-scoped async fixture that runs in the event loop of ``loop_scope``."""

    @pytest_asyncio.fixture(loop_scope=loop_scope, name=f"_asyncio_task_guard_{loop_scope}")
    async def guard() -> AsyncIterator[None]:
        before = asyncio.all_tasks()
        yield
        await _fail_on_new_tasks(before)

    return guard


# One guard per loop scope, so that the guard sees the same event loop as the test it guards.
_asyncio_task_guard_function = _make_task_guard("function")
_asyncio_task_guard_class = _make_task_guard("class")
_asyncio_task_guard_module = _make_task_guard("module")
_asyncio_task_guard_package = _make_task_guard("package")
_asyncio_task_guard_session = _make_task_guard("session")


def _asyncio_loop_scope(item: pytest.Item) -> str | None:
    """The loop scope an async test runs in, or None for a synchronous test."""
    scope = getattr(item, "_loop_scope", None)  # pytest-asyncio's PytestAsyncioFunction
    if isinstance(scope, str):
        return scope
    marker = item.get_closest_marker("asyncio")
    function = getattr(item, "function", None)
    if marker is None and not inspect.iscoroutinefunction(function):
        return None
    if marker is not None:
        scope = marker.kwargs.get("loop_scope") or marker.kwargs.get("scope")
    return str(scope or item.config.getini("asyncio_default_test_loop_scope") or "function")


@pytest.fixture(autouse=True)
def _no_asyncio_pending_tasks(request: pytest.FixtureRequest) -> None:
    scope = _asyncio_loop_scope(request.node)
    if scope is not None:
        request.getfixturevalue(f"_asyncio_task_guard_{scope}")
