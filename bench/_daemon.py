"""What the benches share: a real daemon on a temporary directory, and percentiles.

The daemon's API wants its token (``state/token``) over TLS signed by its own CA
(``state/pki/ca.crt``); ``api_open``/``api_json`` use both for a URL ``running_daemon`` gave.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_CREDENTIALS: dict[str, Path] = {}  # API URL -> the daemon's state dir


def _context(state: Path) -> ssl.SSLContext | None:
    ca = state / "pki" / "ca.crt"
    return ssl.create_default_context(cafile=str(ca)) if ca.exists() else None


def api_open(url: str, path: str, *, timeout: float = 10.0) -> Any:
    """``urlopen`` of ``url + path`` with the daemon's token, trusting its CA."""
    state = _CREDENTIALS[url]
    token = (state / "token").read_text().strip()
    request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}"})
    return urllib.request.urlopen(request, timeout=timeout, context=_context(state))


def api_json(url: str, path: str) -> Any:
    with api_open(url, path) as response:
        return json.load(response)


def wait_healthy(url: str, state: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            context = _context(state)
            with urllib.request.urlopen(f"{url}/healthz", timeout=1, context=context) as r:
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
    manifests: Path | None = None,
    config: dict[str, Any] | None = None,
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``python -m minikubelet run`` on root/manifests (or ``manifests``, made by the caller)
    and root/state (its log in root/daemon.log; ``config`` written to root/config.yaml),
    healthy; yields (process, API URL); SIGTERM (then SIGKILL) at the end."""
    state = root / "state"
    state.mkdir(exist_ok=True)
    if manifests is None:
        manifests = root / "manifests"
        manifests.mkdir(exist_ok=True)
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    extra: list[str] = []
    if config is not None:
        (root / "config.yaml").write_text(yaml.safe_dump(config))
        extra = ["--config", str(root / "config.yaml")]
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
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            wait_healthy(url, state)
            _CREDENTIALS[url] = state
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
