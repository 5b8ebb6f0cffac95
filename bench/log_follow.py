"""What ``logs -f`` costs the daemon: idle followers, and followers of a log that rotates.

1. Idle: ``--followers`` streams (default 1,000) follow a container that wrote one line and
   sleeps. Once they are all connected, the daemon's CPU share of one core over ``--window``
   seconds: an idle follower should cost nothing (it waits on inotify, no polling).
2. Rotating: a container writes ~1 MB/s with containerLogMaxSize 64Ki and containerLogMaxFiles
   2 (a rotation about every 64 ms); 10 followers read it slowly for ``--window`` seconds. The
   daemon's open file descriptors that point at rotated or deleted log files are counted every
   100 ms: a follower should hold none (it opens a rotated file only for the read itself).

Before this bench's issue (issue 9, item 6): 1,000 idle followers used 28% of a core, and 34
deleted-but-open files were held after 20 s of small rotations. Target: ~0% and 0. Prints
figures; never asserts. Needs root like the daemon itself (the process runtime's private /tmp).

Usage: python bench/log_follow.py [--followers 1000] [--window 10]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import socket
import ssl
import tempfile
import threading
import time
from pathlib import Path

import psutil
from _daemon import api_json, running_daemon

IDLE = """\
apiVersion: v1
kind: Pod
metadata: {name: idle}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: app, image: busybox, command: [sh, -c, "echo hello; exec sleep 3600"]}
"""

BUSY = """\
apiVersion: v1
kind: Pod
metadata: {name: busy}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command:
    - sh
    - -c
    - while :; do seq 1 10000 | sed "s/$/ padding to about fifty bytes a line/"; sleep 0.2; done
"""


def wait_running(url: str, name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _running(url, name):
            return
        time.sleep(0.2)
    raise SystemExit(f"pod {name} did not start")


def _running(url: str, name: str) -> bool:
    for pod in api_json(url, "/pods")["items"]:
        if pod["metadata"]["name"] == f"{name}-bench":
            return any(
                "running" in cs["state"] for cs in pod["status"].get("containerStatuses") or []
            )
    return False


def follow(port: int, state: Path, pod: str) -> socket.socket:
    """A raw ``follow=true`` request over TLS with the daemon's token; the caller reads it."""
    context = ssl.create_default_context(cafile=str(state / "pki" / "ca.crt"))
    sock = context.wrap_socket(
        socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1"
    )
    token = (state / "token").read_text().strip()
    sock.sendall(
        f"GET /containerLogs/default/{pod}-bench/app?follow=true HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    )
    return sock


def cpu_share(pid: int, window: float) -> float:
    proc = psutil.Process(pid)
    before = proc.cpu_times()
    time.sleep(window)
    after = proc.cpu_times()
    used = (after.user - before.user) + (after.system - before.system)
    return 100 * used / window


def log_fds(pid: int, state: Path) -> int:
    held = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(state)) and (".log." in target or target.endswith("(deleted)")):
            held += 1
    return held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--followers", type=int, default=1000)
    parser.add_argument("--window", type=float, default=10.0)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * args.followers)), hard))

    with tempfile.TemporaryDirectory(prefix="mkl-bench-", dir="/var/tmp") as tmp:
        root = Path(tmp)
        state = root / "state"
        config = {
            "containerLogMaxSize": "64Ki",
            "containerLogMaxFiles": 2,
            "api": {
                "maxFollowsPerClient": 2 * args.followers,
                "maxConnections": 4 * args.followers,
            },
        }
        with running_daemon(root, config=config) as (daemon, url):
            port = int(url.rsplit(":", 1)[1])
            (root / "manifests" / "idle.yaml").write_text(IDLE)
            wait_running(url, "idle")
            idle_before = cpu_share(daemon.pid, args.window)
            socks = [follow(port, state, "idle") for _ in range(args.followers)]
            time.sleep(3.0)  # every stream connected and served its first bytes
            connected = len(psutil.Process(daemon.pid).net_connections("tcp")) - 1
            idle_after = cpu_share(daemon.pid, args.window)
            streaming = 0
            for sock in socks:  # each one answered, and sent the line already there
                sock.settimeout(5)
                received = b""
                with contextlib.suppress(OSError):
                    while b"hello" not in received and len(received) < 4096:
                        chunk = sock.recv(4096)
                        if not chunk:
                            break
                        received += chunk
                streaming += b"hello" in received
            print(
                f"idle: daemon CPU {idle_before:.1f}% of a core without followers, "
                f"{idle_after:.1f}% with {args.followers} idle followers "
                f"({streaming} of them streaming, {connected} connected)"
            )
            for sock in socks:
                sock.close()
            time.sleep(1.0)

            (root / "manifests" / "busy.yaml").write_text(BUSY)
            wait_running(url, "busy")
            stop = threading.Event()
            received = [0]

            def slow_reader() -> None:
                sock = follow(port, state, "busy")
                sock.settimeout(1.0)
                while not stop.is_set():
                    try:
                        data = sock.recv(4096)
                    except (TimeoutError, ssl.SSLWantReadError):
                        continue
                    if not data:
                        break
                    received[0] += len(data)
                    time.sleep(0.005)
                sock.close()

            readers = [threading.Thread(target=slow_reader) for _ in range(10)]
            for reader in readers:
                reader.start()
            most, deadline = 0, time.monotonic() + args.window
            while time.monotonic() < deadline:
                most = max(most, log_fds(daemon.pid, root / "state"))
                time.sleep(0.1)
            stop.set()
            for reader in readers:
                reader.join()
            print(
                f"rotating: 10 slow followers read {received[0] / 2**20:.1f} MiB in "
                f"{args.window:g}s; most rotated or deleted log files the daemon held open at "
                f"once: {most}"
            )


if __name__ == "__main__":
    main()
