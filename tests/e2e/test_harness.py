"""The e2e harness (tests/e2e/harness.py) against a stand-in daemon.

The stand-in takes the real daemon's arguments and answers /healthz, /pods, /events and
/containerLogs from the manifest directory, so the harness's own promises can be checked without
the package: start and health wait, API helpers, atomic manifest writes, waiting with a useful
error, SIGTERM/SIGKILL escalation, and finding processes the daemon left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.e2e.harness import (
    Daemon,
    DaemonExited,
    HarnessError,
    WaitTimeout,
    free_port,
    summarize_pods,
    wait_for,
    write_atomically,
)

FAKE_DAEMON = textwrap.dedent(
    """
    import argparse, http.server, json, os, pathlib, signal, subprocess, sys

    parser = argparse.ArgumentParser()
    parser.add_argument("--server")
    sub = parser.add_subparsers(dest="cmd")
    run = sub.add_parser("run")
    for flag in ("--manifests", "--state-dir", "--node-name", "--listen", "--config"):
        run.add_argument(flag)
    get = sub.add_parser("get")
    get.add_argument("what")
    args = parser.parse_args()
    if args.cmd == "get":
        print(json.dumps({"server": args.server, "env": os.environ.get("MINIKUBELET_SERVER")}))
        sys.exit(0)

    manifests = pathlib.Path(args.manifests)
    if os.environ.get("FAKE_CRASH"):
        print("fake: cannot start", flush=True)
        sys.exit(3)
    if os.environ.get("FAKE_IGNORE_TERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if os.environ.get("FAKE_LEAK"):
        # A "container" in a session of its own that outlives the daemon.
        subprocess.Popen(["sleep", os.environ["FAKE_LEAK"]], start_new_session=True, cwd="/")

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def reply(self, code, body, ctype="application/json"):
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/healthz":
                return self.reply(200, "ok", "text/plain")
            names = sorted(
                p.stem for p in manifests.iterdir()
                if p.suffix == ".yaml" and not p.name.startswith(".")
            )
            if self.path == "/pods":
                items = [
                    {"metadata": {"name": f"{n}-{args.node_name}", "namespace": "default"},
                     "status": {"phase": "Running", "containerStatuses": [
                         {"name": "app", "state": {"running": {}}, "restartCount": 0,
                          "ready": True}]}}
                    for n in names
                ]
                return self.reply(200, json.dumps({"kind": "PodList", "items": items}))
            if self.path == "/events":
                items = [{"reason": "Started", "involvedObject": {"name": f"{n}-{args.node_name}"}}
                         for n in names]
                return self.reply(200, json.dumps({"kind": "EventList", "items": items}))
            if self.path.startswith("/containerLogs/"):
                return self.reply(200, f"log of {self.path}\\n", "text/plain")
            return self.reply(404, "not found", "text/plain")

    host, port = args.listen.rsplit(":", 1)
    http.server.HTTPServer((host, int(port)), Handler).serve_forever()
    """
)


@pytest.fixture
def fake(tmp_path: Path) -> list[str]:
    script = tmp_path / "fake_daemon.py"
    script.write_text(FAKE_DAEMON)
    return [sys.executable, str(script)]


def test_daemon_lifecycle_and_api_helpers(tmp_path: Path, fake: list[str]) -> None:
    config = {"crashLoopBackOff": {"initialDelay": "1s"}}
    with Daemon(tmp_path / "d", command=fake, tls=False, config=config) as daemon:
        assert daemon.get("/healthz") == "ok"
        assert "--config" in daemon.argv()
        assert daemon.config_path is not None
        assert "initialDelay: 1s" in daemon.config_path.read_text()

        daemon.write_manifest("web", "apiVersion: v1\nkind: Pod\n")
        assert sorted(p.name for p in daemon.manifests_dir.iterdir()) == ["web.yaml"]
        pod = daemon.wait_for_phase("web", "Running", timeout=5)
        assert pod["metadata"]["name"] == "web-testnode"
        assert daemon.container_status("web", "app")["ready"] is True
        assert daemon.event_reasons("web") == ["Started"]
        assert daemon.events("other") == []
        assert daemon.logs("web", "app", previous=True, tail_lines=5) == (
            "log of /containerLogs/default/web-testnode/app?previous=true&tailLines=5\n"
        )
        assert daemon.request("/nope") == (404, "not found")

        result = daemon.cli("get", "pods", check=True)
        assert json.loads(result.stdout) == {"server": daemon.url, "env": daemon.url}

        daemon.remove_manifest("web")
        daemon.wait_for_gone("web", timeout=5)
    assert daemon.returncode == 0
    assert "=== harness: start #1" in daemon.log_text()


def test_restart_keeps_the_port(tmp_path: Path, fake: list[str]) -> None:
    with Daemon(tmp_path, command=fake, tls=False) as daemon:
        url = daemon.url
        daemon.restart(sig=None)
        assert daemon.url == url
        assert daemon.get("/healthz") == "ok"
        assert daemon.starts == 2


def test_a_process_the_daemon_left_behind_fails_the_stop(tmp_path: Path, fake: list[str]) -> None:
    daemon = Daemon(tmp_path, command=fake, tls=False, env={"FAKE_LEAK": "61"})
    daemon.start()
    daemon.wait_for(lambda: any("sleep 61" in c for c in daemon._tracker.keys().values()))  # type: ignore[union-attr]
    with pytest.raises(HarnessError, match="sleep 61") as info:
        daemon.stop()
    assert "processes left running" in str(info.value)
    assert daemon.leftover_processes() == []


def test_a_process_mentioning_the_workdir_is_found(tmp_path: Path, fake: list[str]) -> None:
    daemon = Daemon(tmp_path, command=fake, tls=False)
    daemon.start()
    # Not the daemon's descendant, not in its session: found by its working directory.
    stray = subprocess.Popen(["sleep", "62"], cwd=daemon.state_dir, start_new_session=True)
    try:
        with pytest.raises(HarnessError, match="sleep 62"):
            daemon.stop()
    finally:
        stray.kill()
        stray.wait()


def test_a_daemon_that_ignores_sigterm_is_killed_and_reported(
    tmp_path: Path, fake: list[str]
) -> None:
    daemon = Daemon(
        tmp_path, command=fake, tls=False, env={"FAKE_IGNORE_TERM": "1"}, stop_timeout=1
    )
    daemon.start()
    with pytest.raises(HarnessError, match="ignored SIGTERM for 1s"):
        daemon.stop()
    assert daemon.returncode == -signal.SIGKILL


def test_a_daemon_that_cannot_start_fails_with_its_log(tmp_path: Path, fake: list[str]) -> None:
    daemon = Daemon(tmp_path, command=fake, tls=False, env={"FAKE_CRASH": "1"})
    with pytest.raises(HarnessError, match=r"(?s)exit code 3.*fake: cannot start"):
        daemon.start()
    daemon.close()


def test_a_daemon_that_dies_during_the_test_is_reported(tmp_path: Path, fake: list[str]) -> None:
    daemon = Daemon(tmp_path, command=fake, tls=False)
    daemon.start()
    assert daemon.process is not None
    os.kill(daemon.process.pid, signal.SIGKILL)
    with pytest.raises(DaemonExited, match="the daemon has exited"):
        daemon.wait_for(lambda: daemon.pods() == ["never"], timeout=60)
    with pytest.raises(HarnessError, match="had exited by itself"):
        daemon.stop()
    daemon.close()  # stopping twice is a no-op


def test_kill_is_an_expected_exit(tmp_path: Path, fake: list[str]) -> None:
    daemon = Daemon(tmp_path, command=fake, tls=False)
    daemon.start()
    assert daemon.kill() == -signal.SIGKILL
    daemon.close()


def test_wait_for_returns_the_value_and_reports_the_last_state_on_timeout() -> None:
    values = iter([0, None, "yes"])
    assert wait_for(lambda: next(values), timeout=5, interval=0.01) == "yes"

    def pod_is_ready() -> bool:
        raise KeyError("no pod 'web-testnode'")

    with pytest.raises(WaitTimeout, match=r"(?s)pod_is_ready.*KeyError.*web-testnode.*pods: x"):
        wait_for(pod_is_ready, timeout=0.2, interval=0.05, describe=lambda: "pods: x")


def test_write_atomically_replaces_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "pod.yaml"
    write_atomically(target, "one")
    write_atomically(target, "two")
    assert target.read_text() == "two"
    assert os.listdir(tmp_path) == ["pod.yaml"]


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_summarize_pods_names_states_and_reasons() -> None:
    pods = [
        {
            "metadata": {"name": "crash-testnode"},
            "status": {
                "phase": "Running",
                "containerStatuses": [
                    {
                        "name": "app",
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        "restartCount": 3,
                        "ready": False,
                    }
                ],
            },
        }
    ]
    assert summarize_pods(pods) == (
        "pods:\n  crash-testnode: phase=Running\n"
        "    app: waiting/CrashLoopBackOff restarts=3 ready=False"
    )
