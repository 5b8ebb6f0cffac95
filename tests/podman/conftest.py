"""A real podman service for the podman runtime's tests: no fakes, no mocks.

``podman_socket`` (session) runs ``scripts/podman-test-env`` on a socket directory of its own:
it installs podman and runc when missing, builds ``localhost/busybox:latest`` from Debian's
busybox-static, and starts ``podman system service`` with ``tests/podman/containers.conf``.
The service is stopped at the end of the session. Not as root, every test here skips with the
reason; as root (CI) a failure to set podman up fails the tests instead of skipping them.

``rt`` gives each test a ``PodmanRuntime`` and, when the test is done, stops every pod it made
(for a test that failed half-way) and checks that podman holds nothing labelled with their UIDs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from minikubelet.api.model import PodSpec
from minikubelet.runtime.base import PodSandboxConfig
from minikubelet.runtime.podman import LABEL_POD_UID, PodmanRuntime
from minikubelet.runtime.podman_api import PodmanClient

REPO = Path(__file__).resolve().parents[2]
IMAGE = "localhost/busybox:latest"


@pytest.fixture(scope="session")
def podman_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip(f"podman tests need root (running as uid {os.geteuid()})")
    directory = tmp_path_factory.mktemp("podman")
    done = subprocess.run(
        [str(REPO / "scripts/podman-test-env"), str(directory)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"scripts/podman-test-env failed ({done.returncode}):\n{done.stderr}")
    socket = Path(done.stdout.strip().splitlines()[-1])
    try:
        yield socket
    finally:
        pid_file = directory / "podman.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text())
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


_made: list[PodSandboxConfig] = []


@pytest.fixture
async def rt(podman_socket: Path) -> AsyncIterator[PodmanRuntime]:
    _made.clear()
    async with PodmanRuntime(socket=podman_socket) as runtime:
        try:
            yield runtime
        finally:
            for pod in _made:
                await runtime.stop_pod(pod)
    async with PodmanClient(podman_socket) as api:
        left = await leftovers(api, [p.uid for p in _made])
    assert left == [], f"podman objects left behind: {left}"


async def leftovers(api: PodmanClient, uids: list[str]) -> list[str]:
    """Names of containers, pods and volumes (all=true) labelled with any of these pod UIDs."""
    found: list[str] = []
    for uid in uids:
        filters = json.dumps({"label": [f"{LABEL_POD_UID}={uid}"]})
        containers = await api.call(
            "GET", "/containers/json", params={"all": "true", "filters": filters}, what="ps"
        )
        found += [f"container {c['Names'][0]}" for c in containers or []]
        pods = await api.call("GET", "/pods/json", params={"filters": filters}, what="pod ps")
        found += [f"pod {p['Name']}" for p in pods or []]
        volumes = await api.call("GET", "/volumes/json", params={"filters": filters}, what="ls")
        found += [f"volume {v['Name']}" for v in volumes or []]
    return found


def make_pod(
    containers: list[dict[str, Any]],
    *,
    name: str = "web",
    volumes: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> PodSandboxConfig:
    raw: dict[str, Any] = {"containers": containers, **spec}
    if volumes is not None:
        raw["volumes"] = volumes
    pod = PodSandboxConfig(
        uid=f"{uuid.uuid4()}",
        name=f"{name}-node1",
        namespace="default",
        spec=PodSpec.model_validate(raw),
    )
    _made.append(pod)
    return pod


def box(name: str = "main", /, **fields: Any) -> dict[str, Any]:
    """A container of the local busybox image (never pulled)."""
    return {"name": name, "image": IMAGE, "imagePullPolicy": "Never", **fields}


def sh(script: str, name: str = "main", **fields: Any) -> dict[str, Any]:
    return box(name, command=["sh", "-c", script], **fields)
