"""Faults against the real daemon: a full state filesystem, a read-only one, descriptors running
out, a flood of API connections, state files of the wrong shape, and manifests the runtime
cannot take. In every case the daemon stays up, every pod stays supervised (a crashing container
keeps being restarted, a steady one keeps running, status keeps being reported), and it recovers
once the fault is gone. The harness's stop then checks the ordered shutdown: exit code 0 and
nothing left running.

The filesystem faults mount a small tmpfs as the state directory (root).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.e2e.conftest import DaemonFactory
from tests.e2e.harness import Daemon, wait_for
from tests.e2e.pods import container, pod_yaml, status_of
from tests.filesystems import fill, free, remount, small_tmpfs

CRASHER = pod_yaml("crasher", [container("app", "sleep 0.3; exit 1")])
STEADY = pod_yaml("steady", [container("app", "exec sleep 3600")])


def restarts(d: Daemon, name: str = "crasher") -> int:
    count: int = status_of(d.pod(name), "app")["restartCount"]
    return count


def healthz(d: Daemon) -> tuple[int, str]:
    return d.request("/healthz?verbose")


def unhealthy(d: Daemon) -> str:
    """Wait until /healthz fails (500); its body, which lists the checks."""

    def failing() -> str | None:
        code, body = healthz(d)
        return body if code == 500 else None

    return d.wait_for(failing, timeout=15)


def saved_restarts(state: Path, name: str = "crasher") -> int:
    """The crasher's restartCount as the status file on disk has it (-1: not there)."""
    try:
        pods = json.loads((state / "status.json").read_bytes())["pods"]
    except (OSError, ValueError):
        return -1
    for entry in pods:
        view = entry["view"]
        if view["metadata"]["name"].startswith(f"{name}-"):
            count: int = status_of(view, "app")["restartCount"]
            return count
    return -1


def still_supervised(d: Daemon, *, through_api: bool = True) -> None:
    """The daemon runs; the crasher is restarted again (twice more); the steady pod runs."""
    assert d.running, d.log_tail()
    if not through_api:
        return
    before = restarts(d)
    d.wait_for(lambda: restarts(d) >= before + 2, timeout=30)
    steady = d.pod("steady")
    assert steady["status"]["phase"] == "Running"
    assert "running" in status_of(steady, "app")["state"]


def add_pods(d: Daemon) -> None:
    """The crasher and the steady pod, running (the crasher restarted once already)."""
    d.write_manifest("crasher", CRASHER)
    d.write_manifest("steady", STEADY)
    d.wait_for_phase("steady", "Running")
    d.wait_for(lambda: restarts(d) >= 1, timeout=30)


def start_with_pods(d: Daemon) -> None:
    d.start()
    add_pods(d)


def no_tracebacks(d: Daemon) -> None:
    log = d.log_text()
    assert "Traceback" not in log, d.log_tail(120)


# --- the state filesystem ------------------------------------------------------------------------


@pytest.mark.root
def test_a_full_state_filesystem_is_reported_and_the_daemon_recovers(
    daemon_factory: DaemonFactory,
) -> None:
    d = daemon_factory(start=False)
    with small_tmpfs(d.state_dir, size="8m") as state:
        start_with_pods(d)
        d.wait_for(lambda: saved_restarts(state) >= 1, timeout=10)
        filler = fill(state)
        # Reported: /healthz fails with the reason, and a Warning event says it.
        body = unhealthy(d)
        assert "-file failed: cannot write the" in body and "No space left on device" in body
        assert "StateWriteFailed" in d.event_reasons()
        still_supervised(d)
        # Nothing already written is lost: the previous file is whole (and behind).
        behind = saved_restarts(state)
        assert 1 <= behind < restarts(d)
        free(filler)
        d.wait_for(lambda: healthz(d)[0] == 200, timeout=20)
        d.wait_for(lambda: saved_restarts(state) >= restarts(d) - 1, timeout=10)
        assert "StateWriteRecovered" in d.event_reasons()
        still_supervised(d)
        d.stop()


@pytest.mark.root
def test_a_read_only_state_dir_is_reported_and_the_daemon_recovers(
    daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    d = daemon_factory(start=False)
    # A filesystem with files open for writing cannot be remounted read-only, and the process
    # runtime keeps its containers' logs open under state/process: that part lives on a mount of
    # its own, so that the remount hits the status and events files.
    runtime_dir = tmp_path / "runtime"
    with small_tmpfs(d.state_dir) as state, small_tmpfs(runtime_dir, size="16m"):
        (state / "process").mkdir()
        subprocess_run(["mount", "--bind", str(runtime_dir), str(state / "process")])
        try:
            start_with_pods(d)
            d.wait_for(lambda: saved_restarts(state) >= 1, timeout=10)
            remount(state, "ro")
            try:
                body = unhealthy(d)
                assert "Read-only file system" in body
                assert "StateWriteFailed" in d.event_reasons()
                still_supervised(d)
            finally:
                remount(state, "rw")
            d.wait_for(lambda: healthz(d)[0] == 200, timeout=20)
            d.wait_for(lambda: saved_restarts(state) >= restarts(d) - 1, timeout=10)
            still_supervised(d)
            d.stop()
        finally:
            subprocess_run(["umount", "-l", str(state / "process")], check=False)


def subprocess_run(argv: list[str], *, check: bool = True) -> None:
    subprocess.run(argv, check=check)


# --- descriptors and connections ---------------------------------------------------------------


@contextlib.contextmanager
def idle_connections(port: int, count: int) -> Iterator[list[socket.socket]]:
    """``count`` TCP connections that never send a byte (non-blocking connects: those beyond
    the server's backlog simply stay pending, as an attacker's would)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            socks.append(s)
        yield socks
    finally:
        for s in socks:
            s.close()


def fds(d: Daemon) -> int:
    assert d.process is not None
    count: int = psutil.Process(d.process.pid).num_fds()
    return count


def changes(path: Path, timeout: float = 10.0) -> bool:
    """Whether ``path`` is rewritten within ``timeout`` (its mtime moves)."""
    before = path.stat().st_mtime_ns
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.stat().st_mtime_ns != before:
            return True
        time.sleep(0.1)
    return False


def test_idle_connections_cannot_take_the_descriptors_the_daemon_needs(
    daemon_factory: DaemonFactory,
) -> None:
    # The case: nofile 1024 (a shell's), 1,100 idle connections.
    d = daemon_factory(
        start=False,
        command=["prlimit", "--nofile=1024:1024", sys.executable, "-m", "minikubelet"],
    )
    start_with_pods(d)
    assert d.port is not None
    with idle_connections(d.port, 1100):
        time.sleep(3)
        assert d.running, d.log_tail()
        assert fds(d) < 1024 - 256  # a quarter of the limit for the API, no more
        # The API is saturated by idle connections, but the daemon works: its status and
        # events files are still written (the crasher keeps restarting), nothing is logged
        # per connection.
        assert changes(d.state_dir / "status.json")
        assert changes(d.state_dir / "events.json")
        assert d.running
    still_supervised(d)
    assert healthz(d)[0] == 200
    no_tracebacks(d)
    assert d.log_path.stat().st_size < 200_000
    d.stop()


@pytest.mark.daemon_config({"api": {"maxConnections": 32, "idleTimeout": "1s"}})
def test_a_connection_flood_is_held_to_the_limit_and_idle_connections_are_closed(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    add_pods(d)
    baseline = fds(d)
    assert d.port is not None
    # 150: 32 served, the rest within the listen backlog (128), so that every handshake
    # completes at once and the test need not wait out SYN retries.
    with idle_connections(d.port, 150) as flood:
        peak = 0
        for _ in range(20):
            peak = max(peak, fds(d))
            time.sleep(0.1)
        assert peak <= baseline + 32 + 8
        # The daemon closes idle connections after 1 s, batch after batch: the API answers
        # again although the flood is still there, and every flood connection ends closed.
        still_supervised(d)
        closed = 0
        for s in flood:
            s.setblocking(True)
            s.settimeout(30)
            with contextlib.suppress(OSError):
                if s.recv(1) == b"":
                    closed += 1
        assert closed == len(flood)
    assert healthz(d)[0] == 200
    no_tracebacks(d)


# --- the daemon's own machinery ----------------------------------------------------------------

SYS_PIDFD_GETFD = 438  # Linux >= 5.6


def shut_down_listener(d: Daemon) -> None:
    """Break the daemon's API from outside: take a copy of its listening socket (pidfd_getfd)
    and shut it down, so that its accept() fails with EINVAL. Not a client's doing: a fault of
    the daemon's own machinery."""
    assert d.process is not None and d.port is not None
    proc = psutil.Process(d.process.pid)
    connections = getattr(proc, "net_connections", None) or proc.connections  # psutil < 6
    listening = [
        c
        for c in connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == d.port
    ]
    assert len(listening) == 1
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(d.process.pid)
    try:
        fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, listening[0].fd, 0)
        if fd < 0:
            pytest.skip(f"pidfd_getfd: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(pidfd)
    with socket.socket(fileno=fd) as copy:
        copy.shutdown(socket.SHUT_RDWR)


def test_a_failure_of_the_daemons_machinery_stops_every_pod_before_it_exits(
    daemon_factory: DaemonFactory,
) -> None:
    d = daemon_factory()
    add_pods(d)
    assert d.process is not None
    shut_down_listener(d)
    wait_for(lambda: d.process is not None and d.process.poll() is not None, timeout=30)
    log = d.log_text()
    assert "API server failed: stopping every pod, then the daemon" in log
    assert "stopping 2 pods" in log and "pod stopped" in log
    assert d.process.returncode == 1
    # Stopped in order: nothing it started is left running, and the last status was saved.
    time.sleep(1)
    assert not d.leftover_processes()
    saved = json.loads((d.state_dir / "status.json").read_bytes())["pods"]
    assert sorted(p["view"]["metadata"]["name"] for p in saved) == [
        d.full_name("crasher"),
        d.full_name("steady"),
    ]
    d.stop(check=False)


# --- state files of the wrong shape ------------------------------------------------------------

DEEP = "[" * 200_000 + "]" * 200_000
SHAPES = {
    "status [], events null": ("[]", "null"),
    "status null, events []": ("null", "[]"),
    "deep nesting in both": (DEEP, DEEP),
    "status right shape wrong items, events garbage": ('{"pods": [1, 2]}', "\x00\x01garbage"),
}


@pytest.mark.parametrize("status,events", SHAPES.values(), ids=SHAPES.keys())
def test_state_files_of_the_wrong_shape_are_set_aside_and_the_daemon_starts(
    daemon_factory: DaemonFactory, status: str, events: str
) -> None:
    d = daemon_factory(start=False)
    (d.state_dir / "status.json").write_text(status)
    (d.state_dir / "events.json").write_text(events)
    d.start()
    aside = sorted(p.name.split(".corrupt-")[0] for p in d.state_dir.glob("*.corrupt-*"))
    assert aside == ["events.json", "status.json"]
    set_aside = [e for e in d.events() if e["reason"] == "StateFileSetAside"]
    assert len(set_aside) == 2 and all(e["type"] == "Warning" for e in set_aside)
    d.write_manifest("steady", STEADY)
    d.wait_for_phase("steady", "Running")
    d.wait_for(lambda: json.loads((d.state_dir / "status.json").read_bytes())["pods"])
    # The next start reads what this one wrote.
    d.restart()
    assert len(list(d.state_dir.glob("*.corrupt-*"))) == 2
    d.wait_for_phase("steady", "Running")


# --- manifests the runtime cannot take ----------------------------------------------------------

BAD_MANIFESTS: dict[str, Callable[[str], str]] = {
    "nul-in-args": lambda name: pod_yaml(
        name, [{"name": "app", "image": "busybox", "command": ["sh", "-c", "echo a\x00b"]}]
    ),
    "huge-period": lambda name: pod_yaml(
        name,
        [
            container(
                "app",
                "exec sleep 3600",
                livenessProbe={"exec": {"command": ["true"]}, "periodSeconds": 1e309},
            )
        ],
    ),
    "huge-cpu": lambda name: pod_yaml(
        name,
        [
            container(
                "app",
                "exec sleep 3600",
                resources={"requests": {"cpu": "1e1000000"}, "limits": {"cpu": "1e1000000"}},
            )
        ],
    ),
}


def test_manifests_the_runtime_cannot_take_stay_with_their_pods(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    add_pods(d)
    for name, manifest in BAD_MANIFESTS.items():
        d.write_manifest(name, manifest(name))

    def warned(name: str) -> list[dict[str, Any]]:
        full = d.full_name(name)
        return [
            e
            for e in d.events()
            if e["type"] == "Warning" and e["involvedObject"].get("name") == full
        ]

    for name in BAD_MANIFESTS:
        d.wait_for(lambda n=name: warned(n), timeout=20)  # type: ignore[misc]
    still_supervised(d)
    # And again after a restart of the daemon: no crash loop of the node.
    d.restart()
    d.wait_for_phase("steady", "Running")
    still_supervised(d)
    assert all(warned(name) for name in BAD_MANIFESTS)
