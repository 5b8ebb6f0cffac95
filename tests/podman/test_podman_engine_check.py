"""The daemon's report on a podman that cannot make a pod's infra (pause) container.

Each test starts a podman service of its own, on its own socket, that cannot make pause
containers, and a daemon pointed at it; then, through the daemon's HTTP API: the Node Warning
event ``RuntimeNotReady`` (once, naming the package to install), the ``runtime-podman`` line of
``/healthz?verbose``, and a podman pod's FailedCreatePodSandBox message, which says the same.

Two ways podman fails to make a pause container, both real:

- catatonit is missing (what ``apt-get install --no-install-recommends podman`` leaves): podman
  4.3 builds its local pause image from catatonit on the first pod creation. Only a store that has
  no pause image yet shows it, so this service gets a store of its own (vfs, in the test's
  directory), and neither its PATH nor its ``helper_binaries_dir`` has catatonit.
- containers.conf's ``infra_image`` names an image that cannot be pulled (a registry on
  loopback port 1: the connection is refused; no registry is reachable here). This service shares
  the test podman's storage, which holds ``localhost/busybox``: once it is restarted with the
  project's containers.conf, the pod starts and the daemon's warning clears.

Both services share the test podman's ``tmp_dir`` (/run/libpod), so that podman does not reset the
lock state the test podman relies on.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import FAST_CONFIG, REPO_ROOT, Daemon
from tests.e2e.probe_support import describe_events, find_events
from tests.podman.conftest import IMAGE
from tests.podman.test_podman_e2e import box, pod_yaml

UNPULLABLE_INFRA = "localhost:1/minikubelet/pause:none"
TEST_CONF = REPO_ROOT / "tests" / "podman" / "containers.conf"
NO_CATATONIT_PATH = "/usr/sbin:/sbin"  # catatonit is /usr/bin/catatonit


class PodmanService:
    """``podman system service`` on ``socket`` with a containers.conf (and storage.conf) of its
    own; ``stop()`` ends it and waits, ``start()`` may run it again with another config."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket = directory / "podman.sock"
        self.log = directory / "podman.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(
        self, conf: Path, *, storage_conf: Path | None = None, path: str | None = None
    ) -> None:
        env = {**os.environ, "CONTAINERS_CONF": str(conf)}
        if storage_conf is not None:
            env["CONTAINERS_STORAGE_CONF"] = str(storage_conf)
        if path is not None:
            env["PATH"] = path
        self.socket.unlink(missing_ok=True)
        podman = shutil.which("podman")
        assert podman is not None, "podman is not installed (tests/podman/conftest.py does it)"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [podman, "system", "service", "--time=0", f"unix://{self.socket}"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.directory,
                start_new_session=True,
            )
        deadline = time.monotonic() + 20
        while not self.socket.exists():
            assert self.process.poll() is None, f"podman exited:\n{self.log.read_text()}"
            assert time.monotonic() < deadline, f"no socket after 20 s:\n{self.log.read_text()}"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def service(podman_socket: Path, tmp_path: Path) -> Iterator[PodmanService]:
    """A second podman service (the test podman, ``podman_socket``, is up first: installed,
    its image built, and /run/libpod initialised)."""
    svc = PodmanService(tmp_path / "podman")
    svc.directory.mkdir()
    try:
        yield svc
    finally:
        svc.stop()


def broken_conf(directory: Path, *, infra_image: str | None) -> Path:
    """The project's containers.conf, with no helper binaries (so no catatonit) and, when
    given, an infra_image."""
    helpers = directory / "no-helpers"
    helpers.mkdir(exist_ok=True)
    engine = f"[engine]\nhelper_binaries_dir = [{str(helpers)!r}]\n"
    if infra_image is not None:
        engine += f"infra_image = {infra_image!r}\n"
    conf = directory / "containers.conf"
    conf.write_text(TEST_CONF.read_text().replace("[engine]\n", engine, 1))
    return conf


def daemon_on(tmp_path: Path, socket: Path) -> Daemon:
    return Daemon(
        tmp_path / "daemon",
        node_name=f"pe{uuid.uuid4().hex[:8]}",
        config=FAST_CONFIG,
        extra_args=["--podman-socket", str(socket)],
    )


def node_events(d: Daemon, reason: str) -> list[dict[str, Any]]:
    return [
        e
        for e in d.events()
        if e["involvedObject"].get("kind") == "Node" and e.get("reason") == reason
    ]


def podman_health(d: Daemon) -> str:
    (line,) = [x for x in d.get("/healthz?verbose").splitlines() if "runtime-podman" in x]
    return line


def check_report(d: Daemon, *, podman_says: str, advice: str) -> dict[str, Any]:
    """The daemon's report, through its API: one Node event, the health line, and the pod's
    FailedCreatePodSandBox (at least twice: the event must not be repeated). Returns the
    Node event."""
    d.write_manifest("web", pod_yaml("web", [box("c", "exec sleep 1000")]))
    d.wait_for(
        lambda: (
            len(find_events(d, "web", "FailedCreatePodSandBox")) >= 1
            and find_events(d, "web", "FailedCreatePodSandBox")[0]["count"] >= 2
        ),
        timeout=40,
        describe=lambda: describe_events(d, "web"),
    )
    (sandbox,) = find_events(d, "web", "FailedCreatePodSandBox")
    assert sandbox["type"] == "Warning"
    assert sandbox["message"].startswith("Failed to create pod sandbox: create pod "), sandbox
    assert podman_says in sandbox["message"] and advice in sandbox["message"], sandbox
    cs = d.container_status("web", "c")
    assert cs["state"]["waiting"]["reason"] == "ContainerCreating", cs

    events = node_events(d, "RuntimeNotReady")
    assert len(events) == 1 and events[0]["count"] == 1, events
    event = events[0]
    assert event["type"] == "Warning"
    assert event["involvedObject"]["name"] == d.node_name
    message = event["message"]
    assert message.startswith("podman runtime: podman cannot make pods' infra containers: ")
    assert podman_says in message and advice in message, message

    assert d.get("/healthz").strip() == "ok"  # the node works; podman pods wait
    problem = message.removeprefix("podman runtime: ")
    assert podman_health(d) == f"[+]runtime-podman warning: {problem}"
    assert "[+]runtime-process ok" in d.get("/healthz?verbose").splitlines()
    return event


def test_without_catatonit_the_daemon_says_to_install_it(
    service: PodmanService, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    storage_conf = tmp_path / "storage.conf"
    storage_conf.write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{store}/graph"\nrunroot = "{store}/run"\n'
    )
    conf = broken_conf(service.directory, infra_image=None)
    service.start(conf, storage_conf=storage_conf, path=NO_CATATONIT_PATH)
    with daemon_on(tmp_path, service.socket) as d:
        # The engine check at start: before any pod, the node says what is missing.
        d.wait_for(lambda: node_events(d, "RuntimeNotReady"), timeout=30)
        check_report(
            d,
            podman_says='finding pause binary: exec: "catatonit": executable file not found',
            advice="apt-get install catatonit",
        )
        d.remove_manifest("web")
        d.wait_for_gone("web", timeout=30)


def test_an_unpullable_infra_image_is_reported_and_cleared_once_podman_is_fixed(
    service: PodmanService, podman_socket: Path, tmp_path: Path
) -> None:
    conf = broken_conf(service.directory, infra_image=UNPULLABLE_INFRA)
    service.start(conf, path=NO_CATATONIT_PATH)
    with daemon_on(tmp_path, service.socket) as d:
        d.wait_for(lambda: node_events(d, "RuntimeNotReady"), timeout=30)
        event = check_report(
            d,
            podman_says=f"initializing source docker://{UNPULLABLE_INFRA}",
            advice="containers.conf's infra_image names cannot be pulled",
        )
        assert "apt-get install catatonit" in event["message"]

        # podman is fixed and restarted on the same socket: the daemon reconnects, checks it
        # again, clears the warning, and the waiting pod starts.
        service.stop()
        service.start(TEST_CONF)
        d.wait_for(lambda: podman_health(d) == "[+]runtime-podman ok", timeout=60)
        pod = d.wait_for_phase("web", "Running", timeout=60)
        assert pod["spec"]["containers"][0]["image"] == IMAGE
        assert len(node_events(d, "RuntimeNotReady")) == 1  # nothing new was reported
        d.remove_manifest("web")
        d.wait_for_gone("web", timeout=40)
