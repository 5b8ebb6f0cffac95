"""What the benches share: a real daemon on a temporary directory, and percentiles."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as r:
                if r.read() == b"ok":
                    return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("daemon did not become healthy")


@contextlib.contextmanager
def running_daemon(
    root: Path,
    *,
    node_name: str = "bench",
    stop_timeout: float = 120.0,
    extra_args: Sequence[str] = (),
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``python -m minikubelet run`` on root/manifests and root/state (its log in
    root/daemon.log), healthy; yields (process, API URL); SIGTERM (then SIGKILL) at the end.
    ``extra_args`` go after the others (``--config FILE``, say)."""
    manifests, state = root / "manifests", root / "state"
    for d in (manifests, state):
        d.mkdir(exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(root / "daemon.log", "wb") as log:
        daemon = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "minikubelet",
                "run",
                "--manifests",
                str(manifests),
                "--state-dir",
                str(state),
                "--node-name",
                node_name,
                "--listen",
                f"127.0.0.1:{port}",
                *extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            wait_healthy(url)
            yield daemon, url
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(stop_timeout)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]
