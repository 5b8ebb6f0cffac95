"""One-container pod start through minikubelet's podman runtime vs podman's own front doors.

Three ways to get the same container (busybox ``sleep 3600`` from the local image, podman's
default bridge network) running, each timed until the container is running, median of N:

1. minikubelet: ``PodmanRuntime.start_pod`` + ``start_container`` over the REST API (a podman
   pod with its infra container, then the container in it);
2. ``podman run -d`` (the CLI; one container, no pod);
3. ``podman kube play`` of the same Pod YAML (the CLI; a pod with its infra container).

Cleanup after each run is not timed. Target (issue 5): minikubelet <= 1.2x ``podman run``.
Prints figures, never asserts. Needs root; sets podman up with ``scripts/podman-test-env``
unless ``--socket`` names a running service. Usage: python bench/podman_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from minikubelet.api.model import PodSpec
from minikubelet.runtime.base import ContainerConfig, ContainerKind, PodSandboxConfig
from minikubelet.runtime.podman import PodmanRuntime

REPO = Path(__file__).resolve().parents[1]
IMAGE = "localhost/busybox:latest"
COMMAND = ["sleep", "3600"]
YAML = """\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: app
    image: {image}
    imagePullPolicy: Never
    command: ["sleep", "3600"]
"""


def podman(*args: str) -> str:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"podman {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def pod_config() -> PodSandboxConfig:
    spec = PodSpec.model_validate(
        {
            "containers": [
                {"name": "app", "image": IMAGE, "imagePullPolicy": "Never", "command": COMMAND}
            ],
            "terminationGracePeriodSeconds": 0,
        }
    )
    return PodSandboxConfig(
        uid=str(uuid.uuid4()), name=f"bench-{uuid.uuid4().hex[:6]}", namespace="bench", spec=spec
    )


async def minikubelet_runs(socket: Path, runs: int) -> list[float]:
    times: list[float] = []
    async with PodmanRuntime(socket=socket) as rt:
        for _ in range(runs):
            pod = pod_config()
            container = pod.spec.containers[0]
            config = ContainerConfig(
                container=container,
                kind=ContainerKind.REGULAR,
                command=tuple(COMMAND),
                args=(),
                env=(),
                restart_count=0,
            )
            began = time.perf_counter()
            await rt.start_pod(pod)
            started = await rt.start_container(pod, config)
            times.append(time.perf_counter() - began)
            await rt.stop_container(started.container_id, grace_seconds=0)
            await rt.wait_container(started.container_id)
            await rt.remove_container(started.container_id)
            await rt.stop_pod(pod)
    return times


def podman_run_runs(runs: int) -> list[float]:
    times: list[float] = []
    for _ in range(runs):
        name = f"bench-run-{uuid.uuid4().hex[:6]}"
        began = time.perf_counter()
        podman("run", "-d", "--name", name, IMAGE, *COMMAND)
        times.append(time.perf_counter() - began)
        podman("rm", "-f", "-t", "0", name)
    return times


def kube_play_runs(runs: int) -> list[float]:
    times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(runs):
            name = f"bench-play-{uuid.uuid4().hex[:6]}"
            path = Path(tmp) / f"{name}.yaml"
            path.write_text(YAML.format(name=name, image=IMAGE))
            began = time.perf_counter()
            podman("kube", "play", str(path))
            times.append(time.perf_counter() - began)
            podman("kube", "down", str(path))
    return times


def describe(label: str, times: list[float]) -> float:
    median = statistics.median(times)
    spread = ", ".join(f"{t * 1000:.0f}" for t in times)
    print(f"{label:<38} median {median * 1000:7.1f} ms   (runs: {spread} ms)")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--socket", type=Path, help="a running podman service's socket")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print(f"podman_start: n/a: needs root (running as uid {os.geteuid()})")
        return
    os.environ.setdefault("CONTAINERS_CONF", str(REPO / "tests/podman/containers.conf"))
    socket = args.socket
    if socket is None:
        done = subprocess.run(
            [str(REPO / "scripts/podman-test-env")], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            print(f"podman_start: n/a: scripts/podman-test-env failed: {done.stderr.strip()}")
            return
        socket = Path(done.stdout.strip().splitlines()[-1])
    # One untimed round of each: image and network caches, the infra image build.
    asyncio.run(minikubelet_runs(socket, 1))
    podman_run_runs(1)
    kube_play_runs(1)

    print(f"podman_start: one-container pod, median of {args.runs}, {podman('--version').strip()}")
    ours = describe(
        "minikubelet (start_pod+start_container)", asyncio.run(minikubelet_runs(socket, args.runs))
    )
    run = describe("podman run -d", podman_run_runs(args.runs))
    play = describe("podman kube play", kube_play_runs(args.runs))
    print(f"ratio minikubelet / podman run         {ours / run:.2f}  (target <= 1.2)")
    print(f"ratio minikubelet / podman kube play   {ours / play:.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
