"""The pod worker's decisions, driven through the FakeRuntime: what starts, when, and the status
and events it reports. Backoff is shrunk to milliseconds; the default schedule is tested in
test_backoff.py on a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import yaml

from minikubelet.api.identity import StaticPod
from minikubelet.api.model import ContainerStatus, ObjectMeta, Pod, PodStatus, pod_key
from minikubelet.pods.worker import PodWorker, WorkerSettings
from minikubelet.runtime.base import ExitReason
from minikubelet.status.events import EventRecorder
from minikubelet.status.store import StatusStore
from tests.fakes import FakeRuntime

SETTINGS = WorkerSettings(
    node_name="node1", host_ip="10.0.0.1", backoff_initial=0.2, backoff_max=0.8
)


def static_pod(manifest: str, *, uid: str = "uid-1") -> StaticPod:
    pod = Pod.model_validate(yaml.safe_load(manifest))
    name = f"{pod.metadata.name}-node1"
    meta = ObjectMeta.model_validate({"name": name, "namespace": "default", "uid": uid})
    return StaticPod(
        key=pod_key("default", name), uid=uid, metadata=meta, pod=pod, source="test.yaml"
    )


class Harness:
    def __init__(self, manifest: str) -> None:
        self.runtime = FakeRuntime()
        self.store = StatusStore(None)
        self.events = EventRecorder(node_name="node1")
        self.static = static_pod(manifest)
        self.worker = PodWorker(
            self.static,
            runtime=self.runtime,
            store=self.store,
            events=self.events,
            settings=SETTINGS,
        )

    def status(self) -> PodStatus:
        entry = self.store.get(self.static.key)
        assert entry is not None
        return entry.view.status

    def container(self, name: str) -> ContainerStatus:
        status = self.status()
        for s in [*(status.init_container_statuses or []), *(status.container_statuses or [])]:
            if s.name == name:
                return s
        raise KeyError(name)

    def reasons(self) -> list[str]:
        return [e.reason for e in self.events.events()]

    async def until(self, predicate: Callable[[], Any], timeout: float = 3.0) -> None:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    if predicate():
                        return
                except (KeyError, AssertionError, AttributeError):
                    pass
                await asyncio.sleep(0.005)


@pytest.fixture
async def run() -> AsyncIterator[Callable[[str], Any]]:
    tasks: list[tuple[Harness, asyncio.Task[None]]] = []

    async def start(manifest: str) -> Harness:
        h = Harness(manifest)
        tasks.append((h, asyncio.create_task(h.worker.run(), name="pod under test")))
        await h.until(lambda: h.store.get(h.static.key) is not None)
        return h

    yield start
    for h, task in tasks:
        h.worker.request_stop()
        await asyncio.wait_for(task, 5)


INIT_POD = """
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  restartPolicy: %s
  initContainers:
  - {name: first, command: [a]}
  - {name: second, command: [b]}
  containers:
  - {name: app, command: [c]}
"""


async def test_init_containers_run_in_order_before_regular_containers(run):
    h = await run(INIT_POD % "Always")
    await h.until(lambda: h.runtime.running("first"))
    assert h.runtime.starts("second") == 0 and h.runtime.starts("app") == 0
    assert h.status().phase == "Pending"
    h.runtime.exit("first", 0)
    await h.until(lambda: h.runtime.running("second"))
    assert h.runtime.starts("app") == 0
    h.runtime.exit("second", 0)
    await h.until(lambda: h.runtime.running("app"))
    await h.until(lambda: h.status().phase == "Running")
    assert h.container("first").state.terminated.reason == "Completed"
    conditions = {c.type: c.status for c in h.status().conditions}
    assert conditions["Initialized"] == "True" and conditions["Ready"] == "True"


async def test_failed_init_container_fails_the_pod_under_never(run):
    h = await run(INIT_POD % "Never")
    await h.until(lambda: h.runtime.running("first"))
    h.runtime.exit("first", 1)
    await h.until(lambda: h.status().phase == "Failed")
    assert h.runtime.starts("first") == 1
    assert h.runtime.starts("second") == 0 and h.runtime.starts("app") == 0
    assert h.container("first").state.terminated.exit_code == 1


async def test_failed_init_container_is_retried_with_backoff_under_always(run):
    h = await run(INIT_POD % "Always")
    await h.until(lambda: h.runtime.running("first"))
    h.runtime.exit("first", 1)
    await h.until(lambda: h.runtime.starts("first") == 2)  # the first restart is immediate
    h.runtime.exit("first", 1)
    await h.until(lambda: h.container("first").state.waiting.reason == "CrashLoopBackOff")
    assert h.status().phase == "Pending"
    await h.until(lambda: h.runtime.starts("first") == 3, timeout=2)
    h.runtime.exit("first", 0)
    await h.until(lambda: h.runtime.running("second"))
    assert h.container("first").restart_count == 2


ONE = """
apiVersion: v1
kind: Pod
metadata: {name: one}
spec:
  restartPolicy: %s
  containers:
  - {name: app, command: [x]}
"""


@pytest.mark.parametrize(
    ("policy", "code", "restarted", "phase"),
    [
        ("Always", 0, True, "Running"),
        ("Always", 1, True, "Running"),
        ("OnFailure", 0, False, "Succeeded"),
        ("OnFailure", 1, True, "Running"),
        ("Never", 0, False, "Succeeded"),
        ("Never", 1, False, "Failed"),
    ],
)
async def test_restart_policy_decides_whether_an_exited_container_runs_again(
    run, policy, code, restarted, phase
):
    h = await run(ONE % policy)
    await h.until(lambda: h.runtime.running("app"))
    h.runtime.exit("app", code)
    if restarted:
        await h.until(lambda: h.runtime.starts("app") == 2)
        await h.until(lambda: h.container("app").restart_count == 1)
        last = h.container("app").last_state.terminated
        assert last is not None and last.exit_code == code
    else:
        await h.until(lambda: h.container("app").state.terminated is not None)
        await asyncio.sleep(0.3)
        assert h.runtime.starts("app") == 1
        terminated = h.container("app").state.terminated
        assert terminated.exit_code == code
        assert terminated.reason == ("Completed" if code == 0 else "Error")
    await h.until(lambda: h.status().phase == phase)


async def test_crash_loop_waits_with_crashloopbackoff_and_records_backoff_event(run):
    h = await run(ONE % "Always")
    await h.until(lambda: h.runtime.running("app"))
    h.runtime.exit("app", 1)
    await h.until(lambda: h.runtime.running("app") and h.runtime.starts("app") == 2)
    h.runtime.exit("app", 1)
    await h.until(lambda: h.container("app").state.waiting is not None)
    waiting = h.container("app").state.waiting
    assert waiting.reason == "CrashLoopBackOff"
    assert waiting.message == (
        "back-off 200ms restarting failed container=app pod=one-node1_default(uid-1)"
    )
    backoff = [e for e in h.events.events() if e.reason == "BackOff"]
    assert backoff[0].message == (
        "Back-off restarting failed container app in pod one-node1_default(uid-1)"
    )
    assert backoff[0].involved_object.field_path == "spec.containers{app}"
    assert h.container("app").last_state.terminated.exit_code == 1
    await h.until(lambda: h.runtime.starts("app") == 3)


async def test_created_and_started_events_name_the_container(run):
    h = await run(ONE % "Always")
    await h.until(lambda: h.runtime.running("app"))
    messages = [(e.reason, e.message) for e in h.events.events()]
    assert ("Created", "Created container: app") in messages
    assert ("Started", "Started container app") in messages


async def test_config_error_waits_with_reason_and_is_retried(run):
    h = Harness(ONE % "Always")
    h.runtime.fail_config["app"] = "no command specified"
    task = asyncio.create_task(h.worker.run())
    try:
        await h.until(
            lambda: h.container("app").state.waiting.reason == "CreateContainerConfigError"
        )
        assert h.container("app").state.waiting.message == "no command specified"
        failed = [e for e in h.events.events() if e.reason == "Failed"]
        assert failed[0].message == "Error: no command specified"
        await h.until(lambda: h.runtime.starts("app") >= 2)
        del h.runtime.fail_config["app"]
        await h.until(lambda: h.runtime.running("app"), timeout=3)
        assert h.container("app").restart_count == 0
    finally:
        h.worker.request_stop()
        await task


async def test_start_failure_is_a_start_error_with_exit_128(run):
    h = Harness(ONE % "Never")
    h.runtime.fail_start["app"] = 'exec: "x": executable file not found in $PATH'
    task = asyncio.create_task(h.worker.run())
    try:
        await h.until(lambda: h.status().phase == "Failed")
        terminated = h.container("app").state.terminated
        assert terminated.reason == "StartError" and terminated.exit_code == 128
        assert "executable file not found" in terminated.message
    finally:
        h.worker.request_stop()
        await task


SIDECAR = """
apiVersion: v1
kind: Pod
metadata: {name: job}
spec:
  restartPolicy: Never
  initContainers:
  - {name: setup, command: [s]}
  - {name: logger, command: [l], restartPolicy: Always}
  - {name: proxy, command: [p], restartPolicy: Always}
  containers:
  - {name: main, command: [m]}
"""


async def test_sidecars_start_in_order_restart_always_and_stop_in_reverse_after_main(run):
    h = await run(SIDECAR)
    await h.until(lambda: h.runtime.running("setup"))
    h.runtime.exit("setup", 0)
    await h.until(lambda: h.runtime.running("main"))
    assert [n for op, n in h.runtime.calls if op == "start"] == ["setup", "logger", "proxy", "main"]
    # A sidecar is restarted even though the pod's policy is Never.
    h.runtime.exit("logger", 1)
    await h.until(lambda: h.runtime.starts("logger") == 2)
    assert h.status().phase == "Running"
    # The main container finishing completes the pod; sidecars stop, in reverse order.
    h.runtime.exit("main", 0)
    await h.until(lambda: h.status().phase == "Succeeded")
    stops = [n for op, n in h.runtime.calls if op == "stop"]
    assert stops == ["proxy", "logger"]


async def test_stop_kills_containers_with_the_pods_grace_and_removes_the_sandbox():
    h = Harness(
        """
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  terminationGracePeriodSeconds: 7
  initContainers:
  - {name: side, command: [s], restartPolicy: Always}
  containers:
  - {name: a, command: [a]}
  - {name: b, command: [b]}
"""
    )
    task = asyncio.create_task(h.worker.run())
    await h.until(lambda: h.runtime.running("a") and h.runtime.running("b"))
    h.worker.request_stop()
    await asyncio.wait_for(task, 5)
    stops = [n for op, n in h.runtime.calls if op == "stop"]
    assert set(stops[:2]) == {"a", "b"} and stops[2] == "side"
    assert all(c.stop_grace == 7 for c in h.runtime.containers.values())
    assert h.runtime.pods_stopped == 1
    killing = [e.message for e in h.events.events() if e.reason == "Killing"]
    assert sorted(killing) == [
        "Stopping container a",
        "Stopping container b",
        "Stopping container side",
    ]
    assert h.store.get(h.static.key) is None


PROBED = """
apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  restartPolicy: %s
  containers:
  - name: app
    command: [x]
    livenessProbe:
      exec: {command: [check, live]}
      periodSeconds: 1
      failureThreshold: 2
    readinessProbe:
      exec: {command: [check, ready]}
      periodSeconds: 1
"""


async def test_liveness_failure_at_threshold_kills_and_restarts_the_container(run):
    h = await run(PROBED % "Always")
    await h.until(lambda: h.container("app").ready)
    h.runtime.exec_exit["app"] = 1
    await h.until(lambda: h.runtime.starts("app") == 2, timeout=5)
    killing = [e.message for e in h.events.events() if e.reason == "Killing"]
    assert killing == ["Container app failed liveness probe, will be restarted"]
    unhealthy = [e for e in h.events.events() if e.reason == "Unhealthy"]
    assert {e.message for e in unhealthy} >= {"Liveness probe failed: exit 1"}
    assert h.container("app").last_state.terminated.exit_code == 143


async def test_liveness_kill_under_never_does_not_promise_a_restart(run):
    h = await run(PROBED % "Never")
    await h.until(lambda: h.runtime.running("app"))
    h.runtime.exec_exit["app"] = 1
    await h.until(lambda: h.status().phase == "Failed", timeout=5)
    killing = [e.message for e in h.events.events() if e.reason == "Killing"]
    assert killing == ["Container app failed liveness probe"]
    assert h.runtime.starts("app") == 1


STARTUP = """
apiVersion: v1
kind: Pod
metadata: {name: slow}
spec:
  initContainers:
  - name: side
    command: [s]
    restartPolicy: Always
    startupProbe:
      exec: {command: [started]}
      periodSeconds: 1
      failureThreshold: 30
  containers:
  - {name: main, command: [m]}
"""


async def test_next_container_waits_for_the_sidecars_startup_probe(run):
    h = Harness(STARTUP)
    h.runtime.exec_exit["side"] = 1
    task = asyncio.create_task(h.worker.run())
    try:
        await h.until(lambda: h.runtime.running("side"))
        await asyncio.sleep(1.5)
        assert h.runtime.starts("main") == 0
        assert h.container("side").started is False
        h.runtime.exec_exit["side"] = 0
        await h.until(lambda: h.runtime.running("main"), timeout=3)
        assert h.container("side").started is True
    finally:
        h.worker.request_stop()
        await task


async def test_an_oom_kill_is_recorded_as_an_event_and_restarted_by_policy(run):
    h = await run(
        """
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  containers:
  - name: app
    command: [x]
    resources: {limits: {memory: 32Mi}}
"""
    )
    await h.until(lambda: h.runtime.running("app"))
    h.runtime.exit("app", 137, reason=ExitReason.OOM_KILLED)
    await h.until(lambda: h.runtime.starts("app") == 2)
    last = h.container("app").last_state.terminated
    assert (last.reason, last.exit_code) == ("OOMKilled", 137)
    oom = [e for e in h.events.events() if e.reason == "OOMKilled"]
    assert [e.message for e in oom] == [
        "Container app was killed by the kernel for exceeding its memory limit of 32Mi"
    ]
    assert oom[0].type == "Warning"


async def test_probe_level_grace_period_applies_to_a_liveness_kill(run):
    h = await run(
        """
apiVersion: v1
kind: Pod
metadata: {name: graceful}
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - name: app
    command: [x]
    livenessProbe:
      exec: {command: [check]}
      periodSeconds: 1
      failureThreshold: 1
      terminationGracePeriodSeconds: 3
"""
    )
    await h.until(lambda: h.runtime.running("app"))
    first = h.runtime.running("app")
    h.runtime.exec_exit["app"] = 1
    await h.until(lambda: h.runtime.starts("app") == 2, timeout=5)
    assert first.stop_grace == 3


async def test_a_failing_prestop_hook_is_a_warning_and_the_stop_goes_on():
    h = Harness(
        """
apiVersion: v1
kind: Pod
metadata: {name: hooked}
spec:
  terminationGracePeriodSeconds: 10
  containers:
  - name: app
    command: [x]
    lifecycle:
      preStop:
        exec: {command: [drain]}
"""
    )
    task = asyncio.create_task(h.worker.run())
    await h.until(lambda: h.runtime.running("app"))
    h.runtime.exec_exit["app"] = 2
    h.worker.request_stop()
    await asyncio.wait_for(task, 5)
    assert ("app", ("drain",)) in h.runtime.execs
    failed = [e for e in h.events.events() if e.reason == "FailedPreStopHook"]
    assert len(failed) == 1 and failed[0].type == "Warning"
    assert failed[0].message.startswith('Exec lifecycle hook ([drain]) for Container "app"')
    assert [op for op, n in h.runtime.calls if n == "app"][-2:] == ["stop", "remove"]
    # preStop's time came off the grace period, within kubelet's 2 s floor.
    stopped = next(iter(h.runtime.containers.values()))
    assert 2 <= stopped.stop_grace <= 10
