"""The process runtime's e2e scenarios, through the real daemon, as real podman containers.

Every pod has ``runtimeClassName: podman`` (one test uses ``--runtime podman`` instead) and runs
the local ``localhost/busybox:latest`` (never pulled). The podman service and the image come from
``podman_socket`` (tests/podman/conftest.py: ``scripts/podman-test-env``, once per session); each
daemon gets ``--podman-socket`` and a node name of its own, so pods, podman objects and their
names never collide with another test or another session sharing podman's storage.

Checks go through the daemon's HTTP API and CLI, as for the process runtime (tests/e2e), plus
podman's own API where the claim is about podman: the container IDs, and that a removed pod
leaves no container, pod or volume labelled with its UID. The teardown of ``podman_daemon``
fails a test whose node still has podman objects once its daemon has stopped (and removes them).

Probes: exec probes run through podman's exec API; httpGet, tcpSocket and grpc probes go from
the host to the pod's IP (busybox ``httpd`` is the server). busybox has no gRPC server, so the
gRPC pods run the host's grpc health server (tests/e2e/probe_servers.py) inside their container:
the host's root is a read-only hostPath at /host and the container ``chroot``s into it. The
server is still a process of the container, in the pod's network namespace, so the probe dials
the pod IP as for any other port.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from minikubelet.runtime.podman import LABEL_POD_NAME
from minikubelet.runtime.podman_api import PodmanClient
from tests.e2e.harness import FAST_CONFIG, REPO_ROOT, Daemon
from tests.e2e.pods import status_of, terminated
from tests.e2e.probe_support import describe_events, event_count, find_events, parse_time
from tests.podman.conftest import IMAGE, leftovers

T = TypeVar("T")

SLACK = 3.0  # seconds on top of one period: second-precision timestamps, a busy 2-core box


# --- manifests --------------------------------------------------------------------------------


def box(name: str, script: str | None = None, **fields: Any) -> dict[str, Any]:
    """A busybox container; with ``script``, its command is ``sh -c script``."""
    c: dict[str, Any] = {"name": name, "image": IMAGE, "imagePullPolicy": "Never"}
    if script is not None:
        c["command"] = ["sh", "-c", script]
    return {**c, **fields}


def pod_yaml(
    name: str,
    containers: list[dict[str, Any]],
    *,
    runtime_class: str | None = "podman",
    grace: int = 1,
    **spec: Any,
) -> str:
    """A Pod manifest. ``sh`` as PID 1 ignores SIGTERM: a short grace keeps stops quick."""
    body: dict[str, Any] = {"terminationGracePeriodSeconds": grace}
    if runtime_class is not None:
        body["runtimeClassName"] = runtime_class
    body |= spec
    body["containers"] = containers
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": body}
    return yaml.safe_dump(manifest, sort_keys=False)


def conditions(pod: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions") or []}


# --- podman's side ----------------------------------------------------------------------------


def on_podman(socket: Path, call: Callable[[PodmanClient], Awaitable[T]]) -> T:
    """Run ``call(api)`` against the podman service (the tests themselves are synchronous)."""

    async def run() -> T:
        async with PodmanClient(socket) as api:
            return await call(api)

    return asyncio.run(run())


async def objects_of_node(api: PodmanClient, node: str) -> list[tuple[str, str]]:
    """(kind, name) of every podman container, pod and volume of a pod of this node."""
    suffix = f"-{node}"

    def mine(labels: object) -> bool:
        return isinstance(labels, dict) and str(labels.get(LABEL_POD_NAME, "")).endswith(suffix)

    filters = json.dumps({"label": [LABEL_POD_NAME]})
    found: list[tuple[str, str]] = []
    containers = await api.call(
        "GET", "/containers/json", params={"all": "true", "filters": filters}, what="ps"
    )
    found += [("container", c["Id"]) for c in containers or [] if mine(c.get("Labels"))]
    pods = await api.call("GET", "/pods/json", params={"filters": filters}, what="pod ps")
    found += [("pod", p["Id"]) for p in pods or [] if mine(p.get("Labels"))]
    volumes = await api.call("GET", "/volumes/json", params={"filters": filters}, what="ls")
    found += [("volume", v["Name"]) for v in volumes or [] if mine(v.get("Labels"))]
    return found


async def remove_objects(api: PodmanClient, objects: list[tuple[str, str]]) -> None:
    paths = {"container": "/containers/{}", "pod": "/pods/{}", "volume": "/volumes/{}"}
    for kind in ("container", "pod", "volume"):
        for k, ref in objects:
            if k == kind:
                await api.call(
                    "DELETE",
                    paths[kind].format(ref),
                    params={"force": "true"},
                    ok=(200, 204, 404, 500),
                    what=f"remove {kind}",
                )


# --- the daemon -------------------------------------------------------------------------------

PodmanDaemon = Callable[..., Daemon]


@pytest.fixture
def podman_daemon(podman_socket: Path, tmp_path: Path) -> Iterator[PodmanDaemon]:
    """``podman_daemon(runtime=None, config=None, extra_args=None)``: a started daemon with
    ``--podman-socket`` (unless extra_args replace it) on a node of its own. At teardown:
    stopped with the harness's checks, then podman must hold nothing of that node's pods."""
    daemons: list[Daemon] = []

    def make(
        *,
        runtime: str | None = None,
        config: dict[str, Any] | None = None,
        extra_args: list[str] | None = None,
    ) -> Daemon:
        daemon = Daemon(
            tmp_path / f"daemon{len(daemons)}",
            node_name=f"pm{uuid.uuid4().hex[:8]}",
            config={**FAST_CONFIG, **(config or {})},
            runtime=runtime,
            extra_args=extra_args or ["--podman-socket", str(podman_socket)],
        )
        daemons.append(daemon)
        return daemon.start()

    yield make

    errors = []
    for daemon in reversed(daemons):
        try:
            daemon.close()
        except AssertionError as exc:
            errors.append(str(exc))
        node = daemon.node_name
        left = on_podman(podman_socket, functools.partial(objects_of_node, node=node))
        if left:
            on_podman(podman_socket, functools.partial(remove_objects, objects=left))
            errors.append(f"podman objects left behind by node {node}: {left}")
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


# --- init containers, restart policies --------------------------------------------------------


def test_init_containers_run_in_order_in_the_pod_sharing_an_empty_dir(
    podman_daemon: PodmanDaemon,
) -> None:
    d = podman_daemon()
    mount = [{"name": "work", "mountPath": "/work"}]
    # The first one is the slowest: were they started together, "second" would come first.
    d.write_manifest(
        "init-order",
        pod_yaml(
            "init-order",
            [box("app", "cat /work/order.txt; exec sleep 1000", volumeMounts=mount)],
            initContainers=[
                box("first", "sleep 0.6; echo first >> /work/order.txt", volumeMounts=mount),
                box("second", "sleep 0.3; echo second >> /work/order.txt", volumeMounts=mount),
                box("third", "echo third >> /work/order.txt", volumeMounts=mount),
            ],
            volumes=[{"name": "work", "emptyDir": {}}],
        ),
    )
    pod = d.wait_for_phase("init-order", "Running", timeout=40)
    log = d.wait_for(lambda: d.logs("init-order", "app").strip(), timeout=20)
    assert log.splitlines() == ["first", "second", "third"]

    for name in ("first", "second", "third"):
        cs = status_of(pod, name)
        done = terminated(cs)
        assert done is not None and (done["exitCode"], done["reason"]) == (0, "Completed"), name
        assert cs["restartCount"] == 0
        assert re.fullmatch(r"podman://[0-9a-f]{64}", cs["containerID"]), cs
    app = status_of(pod, "app")
    assert "running" in app["state"] and app["restartCount"] == 0
    assert conditions(pod)["Initialized"] == "True"
    pulled = f'Container image "{IMAGE}" already present on machine'
    assert event_count(d, "init-order", "Pulled", pulled) == 4, describe_events(d, "init-order")


# (policy, exit code) -> what the pod settles to. None: the container keeps being restarted.
POLICY_CASES: dict[tuple[str, int], tuple[str, str | None]] = {
    ("Always", 0): ("Running", None),
    ("Always", 1): ("Running", None),
    ("OnFailure", 0): ("Succeeded", "Completed"),
    ("OnFailure", 1): ("Running", None),
    ("Never", 0): ("Succeeded", "Completed"),
    ("Never", 1): ("Failed", "Error"),
}


def test_restart_policies_always_onfailure_never_with_exit_0_and_1(
    podman_daemon: PodmanDaemon,
) -> None:
    d = podman_daemon()

    def name_of(policy: str, code: int) -> str:
        return f"rp-{policy.lower()}-{code}"

    for policy, code in POLICY_CASES:
        name = name_of(policy, code)
        d.write_manifest(
            name, pod_yaml(name, [box("c", f"sleep 0.2; exit {code}")], restartPolicy=policy)
        )

    def settled() -> dict[str, dict[str, Any]] | None:
        pods = {p["metadata"]["name"]: p for p in d.pods()}
        for (policy, code), (phase, reason) in POLICY_CASES.items():
            pod = pods[d.full_name(name_of(policy, code))]
            cs = status_of(pod, "c")
            if pod["status"]["phase"] != phase:
                return None
            if reason is None and (cs["restartCount"] < 2 or not terminated(cs, last=True)):
                return None
            if reason is not None and not terminated(cs):
                return None
        return pods

    pods = d.wait_for(settled, timeout=60)

    for (policy, code), (phase, reason) in POLICY_CASES.items():
        what = f"restartPolicy {policy}, exit {code}"
        pod = pods[d.full_name(name_of(policy, code))]
        cs = status_of(pod, "c")
        assert pod["status"]["phase"] == phase, what
        if reason is None:
            last = terminated(cs, last=True)
            assert last is not None, what
            assert last["exitCode"] == code, what
            assert last["reason"] == ("Completed" if code == 0 else "Error"), what
            assert cs["restartCount"] >= 2, what
        else:
            now = terminated(cs)
            assert now is not None, what
            assert (now["exitCode"], now["reason"]) == (code, reason), what
            assert now["containerID"].startswith("podman://"), what
            assert cs["restartCount"] == 0, what
            assert not cs.get("lastState"), what
            assert cs["ready"] is False, what


# --- probes -----------------------------------------------------------------------------------

GRPC_PORT = 9090


def grpc_server(status: str) -> dict[str, Any]:
    """The host's grpc health server, run inside the container through chroot (module doc)."""
    return {
        "command": [
            "busybox",
            "chroot",
            "/host",
            sys.executable,
            str(REPO_ROOT / "tests/e2e/probe_servers.py"),
            "grpc",
            str(GRPC_PORT),
            status,
        ],
        "volumeMounts": [{"name": "host", "mountPath": "/host", "readOnly": True}],
    }


HOST_ROOT = {"name": "host", "hostPath": {"path": "/", "type": "Directory"}}


def test_every_probe_kind_reaches_the_container(podman_daemon: PodmanDaemon) -> None:
    """exec through podman's exec API (its output and its timeout); httpGet, tcpSocket and grpc
    from the host to the pod's IP."""
    d = podman_daemon()
    often = {"periodSeconds": 1}
    d.write_manifest(
        "exec",
        pod_yaml(
            "exec",
            [
                box(
                    "flips",
                    "sleep 3; touch /tmp/ready; exec sleep 1000",
                    readinessProbe={"exec": {"command": ["cat", "/tmp/ready"]}, **often},
                ),
                box(
                    "slow",
                    "exec sleep 1000",
                    readinessProbe={
                        "exec": {"command": ["sleep", "5"]},
                        "periodSeconds": 2,
                        "timeoutSeconds": 1,
                    },
                ),
            ],
        ),
    )
    d.write_manifest(
        "net",
        pod_yaml(
            "net",
            [
                box(
                    "web",
                    "mkdir -p /www; echo ok > /www/ok; exec httpd -f -p 8080 -h /www",
                    readinessProbe={"httpGet": {"path": "/ok", "port": 8080}, **often},
                    livenessProbe={"tcpSocket": {"port": 8080}, **often},
                ),
                box(
                    "missing",
                    "exec sleep 1000",
                    readinessProbe={"httpGet": {"path": "/missing", "port": 8080}, **often},
                ),
                box(
                    "closed",
                    "exec sleep 1000",
                    livenessProbe={"tcpSocket": {"port": 8081}, **often, "failureThreshold": 2},
                ),
            ],
        ),
    )
    d.write_manifest(
        "grpc",
        pod_yaml(
            "grpc",
            [
                box("serving", readinessProbe={"grpc": {"port": GRPC_PORT}, **often})
                | grpc_server("SERVING"),
            ],
            volumes=[HOST_ROOT],
        ),
    )
    d.write_manifest(
        "grpc-bad",
        pod_yaml(
            "grpc-bad",
            [
                box("not-serving", readinessProbe={"grpc": {"port": GRPC_PORT}, **often})
                | grpc_server("NOT_SERVING"),
            ],
            volumes=[HOST_ROOT],
        ),
    )

    def everything_seen() -> bool:
        return (
            d.container_status("exec", "flips")["ready"] is True
            and d.container_status("net", "web")["ready"] is True
            and d.container_status("grpc", "serving")["ready"] is True
            and d.container_status("net", "closed")["restartCount"] >= 1
            and bool(find_events(d, "exec", "Unhealthy", prefix="Readiness probe failed: cat"))
            and bool(
                find_events(
                    d, "exec", "Unhealthy", 'Readiness probe failed: command "sleep 5" timed out'
                )
            )
            and bool(find_events(d, "grpc-bad", "Unhealthy", prefix="Readiness probe failed"))
            and bool(find_events(d, "net", "Unhealthy", prefix="Readiness probe failed: HTTP"))
        )

    d.wait_for(
        everything_seen,
        timeout=45,
        describe=lambda: "\n".join(describe_events(d, p) for p in ("exec", "net", "grpc-bad")),
    )
    events = "\n".join(describe_events(d, p) for p in ("exec", "net", "grpc", "grpc-bad"))
    net = d.pod("net")
    ip = net["status"]["podIP"]
    assert ip and not ip.startswith("127."), f"the pod has no IP of its own: {ip}"

    # exec: busybox's own message, from inside the container (the file is not on the host).
    assert find_events(
        d,
        "exec",
        "Unhealthy",
        "Readiness probe failed: cat: can't open '/tmp/ready': No such file or directory",
    ), events
    assert d.container_status("exec", "slow")["ready"] is False
    # httpGet to the pod IP: 200 makes ready, 404 is a failure.
    assert find_events(
        d, "net", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 404"
    ), events
    assert d.container_status("net", "missing")["ready"] is False
    # tcpSocket to the pod IP: the open port keeps "web" alive, the closed one kills "closed".
    refused = f"Liveness probe failed: dial tcp {ip}:8081: connect: connection refused"
    assert find_events(d, "net", "Unhealthy", refused), events
    assert find_events(
        d, "net", "Killing", "Container closed failed liveness probe, will be restarted"
    ), events
    assert d.container_status("net", "web")["restartCount"] == 0
    # grpc to the pod IP.
    not_serving = 'Readiness probe failed: service unhealthy (responded with "NOT_SERVING")'
    assert find_events(d, "grpc-bad", "Unhealthy", not_serving), events
    assert d.container_status("grpc-bad", "not-serving")["ready"] is False
    # Before the server listens a probe may be refused; once it answers, it says SERVING.
    assert not find_events(d, "grpc", "Unhealthy", prefix="Readiness probe failed: service"), events
    assert conditions(d.pod("grpc"))["Ready"] == "True"


# The seed's three exercises (seed notes sections 1-3) with busybox programs; settings verbatim.
EXEC_LIVENESS = """\
apiVersion: v1
kind: Pod
metadata:
  name: exec-liveness
spec:
  runtimeClassName: podman
  terminationGracePeriodSeconds: 1
  containers:
  - name: liveness
    image: localhost/busybox:latest
    imagePullPolicy: IfNotPresent
    args:
    - /bin/sh
    - -c
    - "touch /tmp/healthy; sleep 15; rm -f /tmp/healthy; sleep 300"
    livenessProbe:
      exec:
        command:
        - cat
        - /tmp/healthy
      periodSeconds: 3
      initialDelaySeconds: 30
      timeoutSeconds: 1
      successThreshold: 1
      failureThreshold: 3
"""

# agnhost liveness (200 for 10 s, then 500) -> busybox httpd serving a file that a background
# loop removes after 10 s, so /healthz answers 404 from then on. busybox httpd cannot show the
# request's headers, so Custom-Header's arrival is checked by the process runtime's seed test
# only (the prober is the same, whichever the runtime).
HTTP_LIVENESS = """\
apiVersion: v1
kind: Pod
metadata:
  name: http-liveness
spec:
  runtimeClassName: podman
  terminationGracePeriodSeconds: 1
  containers:
  - name: liveness
    image: localhost/busybox:latest
    imagePullPolicy: IfNotPresent
    command:
    - sh
    - -c
    - "mkdir -p /www; echo ok > /www/healthz; (sleep 10; rm -f /www/healthz) &
      exec httpd -f -p 8080 -h /www"
    livenessProbe:
      httpGet:
        path: /healthz
        port: 8080
        httpHeaders:
        - name: Custom-Header
          value: Awesome
      periodSeconds: 3
"""

# goproxy listening on 8080 -> busybox httpd on 8080 (an open port); 8081 stays closed.
TCP_LIVENESS = """\
apiVersion: v1
kind: Pod
metadata:
  name: tcp-liveness
spec:
  runtimeClassName: podman
  terminationGracePeriodSeconds: 1
  containers:
  - name: goproxy
    image: localhost/busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["httpd", "-f", "-p", "8080", "-h", "/tmp"]
    ports:
    - containerPort: 8080
    readinessProbe:
      tcpSocket:
        port: 8080
      initialDelaySeconds: 15
      periodSeconds: 10
    livenessProbe:
      tcpSocket:
        port: 8081
      initialDelaySeconds: 15
      timeoutSeconds: 1
      periodSeconds: 10
      successThreshold: 1
      failureThreshold: 3
"""


def first_start(d: Daemon, pod: str, container: str) -> float:
    (created,) = find_events(d, pod, "Created", f"Created container: {container}")
    return parse_time(created["firstTimestamp"]).timestamp()


def first_kill_after(d: Daemon, pod: str, container: str, start: float) -> float:
    message = f"Container {container} failed liveness probe, will be restarted"
    (killing,) = find_events(d, pod, "Killing", message)
    assert killing["type"] == "Normal"
    return parse_time(killing["firstTimestamp"]).timestamp() - start


def check_exec(d: Daemon) -> None:
    pod, c = "exec-liveness", "liveness"
    d.wait_for(lambda: d.container_status(pod, c)["restartCount"] >= 1, timeout=70)
    events = describe_events(d, pod)
    start = first_start(d, pod, c)
    # File removed at 15 s; probes from 30 s every 3 s fail: kill at 30 + 3 x (3 - 1) = 36 s.
    killed_at = first_kill_after(d, pod, c, start)
    assert 36 - 3 - SLACK <= killed_at <= 36 + 3 + SLACK, f"killed at {killed_at}s\n{events}"
    message = "Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory"
    (unhealthy,) = find_events(d, pod, "Unhealthy", message)
    assert unhealthy["count"] == 3 and unhealthy["type"] == "Warning", events
    # Only args: the image's entrypoint (none) is kept and args run as the command.
    describe = d.cli("describe", "pod", d.full_name(pod), check=True).stdout
    assert "Container liveness failed liveness probe, will be restarted" in describe
    assert message in describe


def check_http(d: Daemon) -> None:
    pod, c = "http-liveness", "liveness"
    d.wait_for(lambda: d.container_status(pod, c)["restartCount"] >= 1, timeout=60)
    events = describe_events(d, pod)
    start = first_start(d, pod, c)
    message = "Liveness probe failed: HTTP probe failed with statuscode: 404"
    assert event_count(d, pod, "Unhealthy", message) >= 3, events
    # 200 until 10 s; ticks at 0, 3, 6, 9 pass, 12, 15, 18 fail: the kill comes at ~18 s.
    killed_at = first_kill_after(d, pod, c, start)
    assert 18 - 3 - SLACK <= killed_at <= 18 + 3 + SLACK, f"killed at {killed_at}s\n{events}"


def check_tcp(d: Daemon, ready_seen: float | None) -> None:
    pod, c = "tcp-liveness", "goproxy"
    d.wait_for(lambda: d.container_status(pod, c)["restartCount"] >= 1, timeout=60)
    events = describe_events(d, pod)
    start = first_start(d, pod, c)
    assert ready_seen is not None, "the Ready condition never became True"
    assert 15 - 1.5 <= ready_seen - start <= 15 + 10 + SLACK, f"ready at {ready_seen - start}s"
    ip = d.pod(pod)["status"]["podIP"]
    message = f"Liveness probe failed: dial tcp {ip}:8081: connect: connection refused"
    (unhealthy,) = find_events(d, pod, "Unhealthy", message)
    assert unhealthy["count"] == 3, events
    killed_at = first_kill_after(d, pod, c, start)
    assert 35 - 10 - SLACK <= killed_at <= 35 + 10 + SLACK, f"killed at {killed_at}s\n{events}"
    assert not find_events(d, pod, "Unhealthy", prefix="Readiness probe failed"), events


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_seed_probe_exercises_restart_on_kubelets_timeline(podman_daemon: PodmanDaemon) -> None:
    d = podman_daemon()
    d.write_manifest("exec-liveness", EXEC_LIVENESS)
    d.write_manifest("http-liveness", HTTP_LIVENESS)
    d.write_manifest("tcp-liveness", TCP_LIVENESS)

    # The tcp pod's Ready condition must flip at ~15 s: watch it while everything runs.
    ready_seen: float | None = None
    deadline = time.monotonic() + 32
    while time.monotonic() < deadline and ready_seen is None:
        pod = d.pod_or_none("tcp-liveness")
        if pod is not None and conditions(pod).get("Ready") == "True":
            ready_seen = time.time()
        time.sleep(0.2)

    failures = []
    checks: list[Callable[[], None]] = [
        lambda: check_exec(d),
        lambda: check_http(d),
        lambda: check_tcp(d, ready_seen),
    ]
    for check in checks:
        try:
            check()
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, "\n\n".join(failures)


# --- sidecar and adapter, limits, OOM ---------------------------------------------------------


def test_sidecar_and_adapter_share_an_empty_dir_and_localhost(
    podman_daemon: PodmanDaemon,
) -> None:
    """A writer fills the shared emptyDir, httpd serves it, and an adapter reads it back over
    localhost: three containers, one network namespace, one volume."""
    d = podman_daemon()
    shared = [{"name": "shared", "mountPath": "/shared"}]
    d.write_manifest(
        "patterns",
        pod_yaml(
            "patterns",
            [
                box(
                    "web",
                    "exec httpd -f -p 8080 -h /shared",
                    volumeMounts=shared,
                    readinessProbe={"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
                ),
                box(
                    "sidecar",
                    "n=0; while :; do n=$((n+1)); echo hello $n > /shared/index.html; sleep 1; "
                    "done",
                    volumeMounts=shared,
                ),
                box(
                    "adapter",
                    "while :; do wget -q -O - http://localhost:8080/index.html "
                    "| sed 's/^/adapted: /'; sleep 1; done",
                ),
            ],
            volumes=[{"name": "shared", "emptyDir": {}}],
        ),
    )
    d.wait_for_phase("patterns", "Running", timeout=40)
    log = d.wait_for(
        lambda: re.findall(r"^adapted: hello (\d+)$", d.logs("patterns", "adapter"), re.M)[1:],
        timeout=30,
    )
    assert int(log[-1]) > 1  # successive versions, fresh from the sidecar
    d.wait_for(lambda: d.container_status("patterns", "web")["ready"] is True, timeout=10)


def test_limits_are_visible_inside_the_container(podman_daemon: PodmanDaemon) -> None:
    d = podman_daemon()
    script = (
        "if [ -e /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then "
        "echo memory $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes); "
        "echo cpu $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) "
        "$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us); "
        "else echo memory $(cat /sys/fs/cgroup/memory.max); "
        "echo cpu $(cat /sys/fs/cgroup/cpu.max); fi"
    )
    d.write_manifest(
        "limits",
        pod_yaml(
            "limits",
            [
                box(
                    "c",
                    script,
                    resources={
                        "limits": {"memory": "48Mi", "cpu": "500m"},
                        "requests": {"memory": "32Mi", "cpu": "250m"},
                    },
                )
            ],
            restartPolicy="Never",
        ),
    )
    d.wait_for_phase("limits", "Succeeded", timeout=40)
    lines = d.logs("limits", "c").splitlines()
    assert lines == [f"memory {48 * 1024 * 1024}", "cpu 50000 100000"], lines
    assert d.pod("limits")["status"]["qosClass"] == "Burstable"


def test_oom_kill_is_reported_as_oom_killed_and_restarted_under_always(
    podman_daemon: PodmanDaemon,
) -> None:
    d = podman_daemon()
    d.write_manifest(
        "oom",
        pod_yaml(
            "oom",
            [box("hog", "head -c 200m /dev/zero | tail", resources={"limits": {"memory": "32Mi"}})],
            restartPolicy="Always",
        ),
    )
    cs = d.wait_for(
        lambda: (
            (c := d.container_status("oom", "hog"))["restartCount"] >= 1
            and terminated(c, last=True)
            and c
        ),
        timeout=40,
    )
    last = terminated(cs, last=True)
    assert last is not None
    assert (last["reason"], last["exitCode"]) == ("OOMKilled", 137), cs
    assert d.pod("oom")["status"]["phase"] == "Running"


# --- logs, describe, removal ------------------------------------------------------------------


def test_logs_and_previous_logs_and_describe_show_the_podman_container(
    podman_daemon: PodmanDaemon, podman_socket: Path
) -> None:
    d = podman_daemon()
    mount = [{"name": "state", "mountPath": "/state"}]
    script = (
        "if [ -e /state/ran ]; then echo second run; exec sleep 1000; fi; "
        "touch /state/ran; echo first run; echo to stderr >&2; exit 1"
    )
    d.write_manifest(
        "talky",
        pod_yaml(
            "talky",
            [box("c", script, volumeMounts=mount)],
            restartPolicy="OnFailure",
            volumes=[{"name": "state", "emptyDir": {}}],
        ),
    )
    d.wait_for(
        lambda: (
            (c := d.container_status("talky", "c"))["restartCount"] == 1 and "running" in c["state"]
        ),
        timeout=40,
    )
    full = d.full_name("talky")
    current = d.wait_for(
        lambda: (r := d.cli("logs", full, "-c", "c")).returncode == 0 and r.stdout, timeout=10
    )
    assert current == "second run\n"
    previous = d.cli("logs", "-p", full, "-c", "c", check=True).stdout
    assert sorted(previous.splitlines()) == ["first run", "to stderr"]

    cs = d.container_status("talky", "c")
    podman_id = cs["containerID"].removeprefix("podman://")
    describe = d.cli("describe", "pod", full, check=True).stdout
    assert re.search(rf"Container ID:\s+podman://{podman_id}\n", describe), describe
    assert "Runtime Class Name:  podman" in describe
    inspected = on_podman(
        podman_socket,
        lambda api: api.call("GET", f"/containers/{podman_id}/json", what="inspect"),
    )
    labels = inspected["Config"]["Labels"]
    assert labels["io.kubernetes.pod.uid"] == d.pod("talky")["metadata"]["uid"]
    assert labels["io.kubernetes.container.restartCount"] == "1"
    assert inspected["State"]["Running"] is True


def test_removed_pod_leaves_nothing_behind_in_podman(
    podman_daemon: PodmanDaemon, podman_socket: Path
) -> None:
    """With ``--runtime podman`` (no runtimeClassName): a pod with both kinds of emptyDir, a
    crash-looping container (kept previous instances) and a running one, then removed."""
    d = podman_daemon(runtime="podman")
    d.write_manifest(
        "doomed",
        pod_yaml(
            "doomed",
            [
                box("runs", "exec sleep 1000", volumeMounts=[{"name": "disk", "mountPath": "/d"}]),
                box("crashes", "exit 2", volumeMounts=[{"name": "mem", "mountPath": "/m"}]),
            ],
            runtime_class=None,
            volumes=[
                {"name": "disk", "emptyDir": {}},
                {"name": "mem", "emptyDir": {"medium": "Memory"}},
            ],
        ),
    )
    d.wait_for(lambda: d.container_status("doomed", "crashes")["restartCount"] >= 2, timeout=40)
    uid = d.pod("doomed")["metadata"]["uid"]
    before = on_podman(podman_socket, lambda api: leftovers(api, [uid]))
    kinds = sorted({entry.split()[0] for entry in before})
    assert kinds == ["container", "pod", "volume"], before
    # The teardown's check by node name sees the same objects (it is not vacuous).
    of_node = on_podman(podman_socket, lambda api: objects_of_node(api, d.node_name))
    assert len(of_node) == len(before), (of_node, before)

    d.remove_manifest("doomed")
    d.wait_for_gone("doomed", timeout=40)
    assert on_podman(podman_socket, lambda api: leftovers(api, [uid])) == []
    assert "Killing" in d.event_reasons("doomed")


# --- podman unreachable -----------------------------------------------------------------------


def test_a_podman_pod_waits_while_the_socket_is_missing_and_runs_once_podman_answers(
    podman_daemon: PodmanDaemon, podman_socket: Path, tmp_path: Path
) -> None:
    """The daemon starts before podman (no socket yet): the pod waits with kubelet's
    FailedCreatePodSandBox naming the socket, and runs once a service answers there."""
    late = tmp_path / "late-podman"
    socket = late / "podman.sock"
    d = podman_daemon(extra_args=["--podman-socket", str(socket)])
    d.write_manifest("patient", pod_yaml("patient", [box("c", "exec sleep 1000")]))
    event = d.wait_for(lambda: find_events(d, "patient", "FailedCreatePodSandBox"), timeout=20)[0]
    assert event["type"] == "Warning"
    assert f"podman is unreachable on {socket}" in event["message"], event
    cs = d.container_status("patient", "c")
    assert cs["state"]["waiting"]["reason"] == "ContainerCreating", cs
    assert d.pod("patient")["status"]["phase"] == "Pending"

    try:
        subprocess.run(
            [str(REPO_ROOT / "scripts/podman-test-env"), str(late)],
            capture_output=True,
            check=True,
            timeout=60,
        )
        d.wait_for_phase("patient", "Running", timeout=40)
        assert d.container_status("patient", "c")["containerID"].startswith("podman://")
        d.remove_manifest("patient")
        d.wait_for_gone("patient", timeout=40)
    finally:
        pid_file = late / "podman.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGTERM)


# --- images: kubelet's pull reasons and texts -------------------------------------------------

# A registry on loopback port 1: the connection is refused at once (podman retries it for ~3 s).
# Never a registry or host name beyond loopback: this machine talks to nothing else.
UNPULLABLE = "localhost:1/minikubelet/nonexistent:1"
MISSING_LOCAL = "localhost/minikubelet-never-built:1"


def get_pods_status(d: Daemon, name: str) -> str | None:
    """The STATUS column of ``get pods`` for pod ``name``."""
    out = d.cli("get", "pods", check=True).stdout.splitlines()
    header = out[0].split()
    for line in out[1:]:
        cols = line.split()
        if cols and cols[0] == d.full_name(name):
            return cols[header.index("STATUS")]
    return None


def test_image_pull_failures_and_present_images_as_kubelet_shows_them(
    podman_daemon: PodmanDaemon,
) -> None:
    """IfNotPresent with an unpullable image: Pulling, Failed (the pull's error), Failed
    "Error: ErrImagePull", then ImagePullBackOff and a BackOff event; Never with a missing
    image: ErrImageNeverPull; a present image: Pulled "already present on machine"."""
    d = podman_daemon()
    d.write_manifest(
        "pull-fails",
        pod_yaml(
            "pull-fails",
            [
                box("c", "exec sleep 1000")
                | {"image": UNPULLABLE, "imagePullPolicy": "IfNotPresent"}
            ],
        ),
    )
    d.write_manifest(
        "never-pull",
        pod_yaml("never-pull", [box("c", "exec sleep 1000") | {"image": MISSING_LOCAL}]),
    )
    d.write_manifest(
        "present",
        pod_yaml("present", [box("c", "exec sleep 1000", imagePullPolicy="IfNotPresent")]),
    )

    statuses: set[str] = set()

    def backed_off() -> bool:
        statuses.add(get_pods_status(d, "pull-fails") or "")
        cs = d.container_status("pull-fails", "c")
        waiting = cs["state"].get("waiting") or {}
        return (
            waiting.get("reason") == "ImagePullBackOff"
            and bool(find_events(d, "pull-fails", "BackOff"))
            and bool(find_events(d, "pull-fails", "Failed", "Error: ErrImagePull"))
        )

    d.wait_for(backed_off, timeout=30, describe=lambda: describe_events(d, "pull-fails"))
    events = describe_events(d, "pull-fails")
    (pulling,) = find_events(d, "pull-fails", "Pulling")
    assert (pulling["type"], pulling["message"]) == ("Normal", f'Pulling image "{UNPULLABLE}"')
    assert pulling["involvedObject"]["fieldPath"] == "spec.containers{c}", pulling
    failed = find_events(d, "pull-fails", "Failed", prefix=f'Failed to pull image "{UNPULLABLE}": ')
    assert len(failed) == 1 and failed[0]["type"] == "Warning", events
    # podman's own words for the refused connection, after kubelet's prefix.
    assert "localhost:1" in failed[0]["message"] and "connection refused" in failed[0]["message"]
    (error,) = find_events(d, "pull-fails", "Failed", "Error: ErrImagePull")
    assert error["type"] == "Warning", events
    (backoff,) = find_events(d, "pull-fails", "BackOff")
    assert (backoff["type"], backoff["message"]) == (
        "Normal",
        f'Back-off pulling image "{UNPULLABLE}"',
    ), events
    waiting = d.container_status("pull-fails", "c")["state"]["waiting"]
    assert waiting["message"] == f'Back-off pulling image "{UNPULLABLE}"', waiting
    statuses.add(get_pods_status(d, "pull-fails") or "")
    assert "ImagePullBackOff" in statuses, statuses
    assert statuses <= {"ErrImagePull", "ImagePullBackOff", "ContainerCreating", "Pending", ""}
    assert d.pod("pull-fails")["status"]["phase"] == "Pending"
    # The worker keeps trying: another pull after the backoff, with the same events counted.
    d.wait_for(
        lambda: event_count(d, "pull-fails", "Pulling") >= 2,
        timeout=20,
        describe=lambda: describe_events(d, "pull-fails"),
    )

    # Never, with an image podman does not have: kubelet's ErrImageNeverPull and its message.
    never = f'Container image "{MISSING_LOCAL}" is not present with pull policy of Never'
    cs = d.wait_for(
        lambda: (
            (c := d.container_status("never-pull", "c"))["state"].get("waiting", {}).get("reason")
            == "ErrImageNeverPull"
            and c
        ),
        timeout=20,
    )
    assert cs["state"]["waiting"]["message"] == never, cs
    (event,) = find_events(d, "never-pull", "ErrImageNeverPull", never)
    assert event["type"] == "Warning"
    assert find_events(d, "never-pull", "Failed", "Error: ErrImageNeverPull")
    assert not find_events(d, "never-pull", "Pulling"), describe_events(d, "never-pull")
    assert get_pods_status(d, "never-pull") == "ErrImageNeverPull"

    # IfNotPresent with the local image: no pull, kubelet's "already present".
    d.wait_for_phase("present", "Running", timeout=20)
    (pulled,) = find_events(
        d, "present", "Pulled", f'Container image "{IMAGE}" already present on machine'
    )
    assert pulled["type"] == "Normal"
    assert not find_events(d, "present", "Pulling"), describe_events(d, "present")


# --- podman's events: OOM and external kills --------------------------------------------------

PODMAN_EVENTS_LOG = Path("/run/libpod/events/events.log")  # events_logger "file", root's tmpdir


def test_an_external_podman_kill_is_an_event_and_the_container_restarts_per_policy(
    podman_daemon: PodmanDaemon, podman_socket: Path
) -> None:
    d = podman_daemon()
    d.write_manifest("victim", pod_yaml("victim", [box("c", "exec sleep 1000")]))
    d.wait_for_phase("victim", "Running", timeout=30)
    podman_id = d.container_status("victim", "c")["containerID"].removeprefix("podman://")
    on_podman(
        podman_socket,
        lambda api: api.call(
            "POST",
            f"/containers/{podman_id}/kill",
            params={"signal": "SIGKILL"},
            ok=(204,),
            what="kill",
        ),
    )
    cs = d.wait_for(
        lambda: (
            (c := d.container_status("victim", "c"))["restartCount"] >= 1
            and "running" in c["state"]
            and c
        ),
        timeout=30,
        describe=lambda: describe_events(d, "victim"),
    )
    events = describe_events(d, "victim")
    last = terminated(cs, last=True)
    assert last is not None and (last["exitCode"], last["reason"]) == (137, "Error"), cs
    assert cs["containerID"] != f"podman://{podman_id}", cs  # a new instance runs
    (event,) = find_events(
        d,
        "victim",
        "ContainerStoppedExternally",
        "Container c was killed outside minikubelet (podman kill)",
    )
    assert event["type"] == "Warning", events
    assert event["involvedObject"]["fieldPath"] == "spec.containers{c}", event
    assert not find_events(d, "victim", "OOMKilled"), events

    # minikubelet's own stop (the pod's removal) is not "external".
    d.remove_manifest("victim")
    d.wait_for_gone("victim", timeout=30)
    assert event_count(d, "victim", "ContainerStoppedExternally") == 1, describe_events(d, "victim")


def test_podmans_oom_event_makes_an_exit_oom_killed(
    podman_daemon: PodmanDaemon, podman_socket: Path, tmp_path: Path
) -> None:
    """podman 4.3 on this cgroup v1 host never emits "oom" (ENGINES.md: conmon misses the kill),
    so the test writes the event podman would write into podman's own event log, which the
    service streams; the container then dies of a SIGKILL that is no OOM kill (no memory limit:
    no cgroup evidence at all). The exit must say OOMKilled: the event stream alone decided."""
    assert PODMAN_EVENTS_LOG.exists(), f"podman's event log is not at {PODMAN_EVENTS_LOG}"
    signal_dir = tmp_path / "signal"
    signal_dir.mkdir()
    d = podman_daemon()
    # The inner sh is not PID 1, so SIGKILL kills it; the outer one exits with its 137.
    script = 'sh -c "while [ ! -e /signal/die ]; do sleep 0.1; done; kill -9 \\$\\$"; exit $?'
    d.write_manifest(
        "oom-event",
        pod_yaml(
            "oom-event",
            [box("c", script, volumeMounts=[{"name": "signal", "mountPath": "/signal"}])],
            volumes=[{"name": "signal", "hostPath": {"path": str(signal_dir)}}],
        ),
    )
    d.wait_for_phase("oom-event", "Running", timeout=30)
    podman_id = d.container_status("oom-event", "c")["containerID"].removeprefix("podman://")
    inspected = on_podman(
        podman_socket, lambda api: api.call("GET", f"/containers/{podman_id}/json", what="inspect")
    )
    event = {
        "ID": podman_id,
        "Image": IMAGE,
        "Name": inspected["Name"],
        "Status": "oom",
        "Time": time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime()),
        "Type": "container",
        "Attributes": inspected["Config"]["Labels"],
    }
    with PODMAN_EVENTS_LOG.open("a") as log:
        log.write(json.dumps(event) + "\n")
    (signal_dir / "die").touch()

    cs = d.wait_for(
        lambda: (
            (c := d.container_status("oom-event", "c"))["restartCount"] >= 1
            and terminated(c, last=True)
            and c
        ),
        timeout=30,
        describe=lambda: describe_events(d, "oom-event"),
    )
    last = terminated(cs, last=True)
    assert last is not None and (last["reason"], last["exitCode"]) == ("OOMKilled", 137), cs
    assert find_events(d, "oom-event", "OOMKilled"), describe_events(d, "oom-event")
    assert not find_events(d, "oom-event", "ContainerStoppedExternally")
