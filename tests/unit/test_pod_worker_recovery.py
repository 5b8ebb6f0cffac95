"""The pod worker after a daemon restart: what it does with the containers the runtime recovered
(``Runtime.recover_pod``) and the status, back-off and readiness the previous daemon persisted.
Driven through the FakeRuntime, whose ``recovered`` holds what an engine would find."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from minikubelet.api.identity import StaticPod
from minikubelet.api.model import (
    ContainerState,
    ContainerStateRunning,
    ContainerStatus,
    ObjectMeta,
    Pod,
    PodStatus,
    pod_key,
)
from minikubelet.pods.worker import BACKOFF_ANNOTATION, PodWorker, WorkerSettings
from minikubelet.runtime.base import (
    UNKNOWN_MESSAGE,
    ContainerExit,
    ContainerID,
    ExitReason,
    RecoveredContainer,
)
from minikubelet.status.events import EventRecorder
from minikubelet.status.store import StatusStore
from tests.fakes import FakeRuntime

SETTINGS = WorkerSettings(
    node_name="node1", host_ip="10.0.0.1", backoff_initial=0.2, backoff_max=0.8
)
UID = "uid-1"
T0 = datetime.now(UTC) - timedelta(minutes=5)

POD = """
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  restartPolicy: %s
  containers:
  - {name: app, command: [a]}
"""

PROBED = """
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: app
    command: [a]
    readinessProbe:
      exec: {command: [check]}
      periodSeconds: 100
      failureThreshold: 3
"""

TWO = """
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - {name: app, command: [a]}
  - {name: helper, command: [b]}
"""


def cid(name: str, n: int) -> ContainerID:
    return ContainerID(f"fake://{UID}/{name}/{n}")


def running(name: str, n: int) -> RecoveredContainer:
    return RecoveredContainer(name, cid(name, n), n, T0, exit=None)


def ended(name: str, n: int, code: int, *, ago: float = 1.0) -> RecoveredContainer:
    finished = datetime.now(UTC) - timedelta(seconds=ago)
    reason = ExitReason.COMPLETED if code == 0 else ExitReason.ERROR
    return RecoveredContainer(
        name, cid(name, n), n, T0, exit=ContainerExit(code, None, reason, None, T0, finished)
    )


def was_running(name: str, n: int, *, ready: bool = True) -> ContainerStatus:
    return ContainerStatus(
        name=name,
        state=ContainerState(running=ContainerStateRunning(started_at=T0)),
        last_state=ContainerState(),
        ready=ready,
        restart_count=n,
        image="",
        image_id="",
        container_id=cid(name, n),
        started=True,
    )


class Harness:
    def __init__(self, manifest: str) -> None:
        pod = Pod.model_validate(yaml.safe_load(manifest))
        name = f"{pod.metadata.name}-node1"
        meta = ObjectMeta.model_validate({"name": name, "namespace": "default", "uid": UID})
        self.static = StaticPod(
            key=pod_key("default", name), uid=UID, metadata=meta, pod=pod, source="t.yaml"
        )
        self.runtime = FakeRuntime()
        self.store = StatusStore(None)
        self.events = EventRecorder(node_name="node1")
        self.worker = PodWorker(
            self.static,
            runtime=self.runtime,
            store=self.store,
            events=self.events,
            settings=SETTINGS,
        )

    def container(self, name: str) -> ContainerStatus:
        entry = self.store.get(self.static.key)
        assert entry is not None
        return next(s for s in entry.view.status.container_statuses or [] if s.name == name)

    def phase(self) -> str | None:
        entry = self.store.get(self.static.key)
        return entry.view.status.phase if entry is not None else None

    async def until(self, predicate: Callable[[], Any], timeout: float = 3.0) -> None:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    if predicate():
                        return
                except (KeyError, StopIteration, AssertionError, AttributeError):
                    pass
                await asyncio.sleep(0.005)


@pytest.fixture
async def run() -> AsyncIterator[Callable[..., Any]]:
    tasks: list[tuple[Harness, asyncio.Task[None]]] = []

    async def start(
        manifest: str,
        *,
        recovered: list[RecoveredContainer],
        previous: list[ContainerStatus] | None = None,
        annotations: dict[str, Any] | None = None,
        phase: str = "Running",
        exec_exit: int = 0,
    ) -> Harness:
        h = Harness(manifest)
        h.runtime.recovered[UID] = recovered
        h.runtime.exec_exit["app"] = exec_exit
        h.worker.restore(
            PodStatus(phase=phase, container_statuses=previous or []), annotations=annotations
        )
        tasks.append((h, asyncio.create_task(h.worker.run(), name="pod under test")))
        await h.until(lambda: UID not in h.runtime.recovered and h.store.get(h.static.key))
        return h

    yield start
    for h, task in tasks:
        h.worker.request_stop()
        await asyncio.wait_for(task, 5)


async def test_a_running_container_is_adopted_and_its_count_carries_on(run):
    h = await run(POD % "Always", recovered=[running("app", 2)], previous=[was_running("app", 2)])
    await h.until(lambda: h.container("app").state.running is not None)
    assert h.runtime.starts("app") == 0  # adopted, not started
    status = h.container("app")
    assert (status.restart_count, status.container_id, status.ready) == (2, cid("app", 2), True)
    # Its exit is the worker's to handle, as for a container it started.
    h.runtime.exit("app", 1)
    await h.until(lambda: h.runtime.starts("app") == 1)
    assert h.runtime.containers[cid("app", 3)].config.restart_count == 3
    await h.until(lambda: h.container("app").restart_count == 3)
    assert h.container("app").last_state.terminated.exit_code == 1


async def test_the_runtime_count_wins_over_a_status_persisted_before_the_last_restart(run):
    # status.json lags: it says instance 1 ran; the runtime knows instance 2 runs now.
    h = await run(
        POD % "Always",
        recovered=[ended("app", 1, 1), running("app", 2)],
        previous=[was_running("app", 1)],
    )
    await h.until(lambda: h.container("app").restart_count == 2)
    assert h.container("app").last_state.terminated.exit_code == 1
    assert h.runtime.starts("app") == 0


async def test_a_container_that_succeeded_while_no_daemon_ran_is_not_rerun_on_failure(run):
    h = await run(
        POD % "OnFailure", recovered=[ended("app", 0, 0)], previous=[was_running("app", 0)]
    )
    await h.until(lambda: h.phase() == "Succeeded")
    assert h.runtime.starts("app") == 0
    assert h.container("app").state.terminated.exit_code == 0


async def test_a_container_that_failed_while_no_daemon_ran_is_restarted_with_its_code(run):
    h = await run(
        POD % "OnFailure", recovered=[ended("app", 0, 3)], previous=[was_running("app", 0)]
    )
    await h.until(lambda: h.runtime.starts("app") == 1)
    await h.until(lambda: h.container("app").restart_count == 1)
    assert h.container("app").last_state.terminated.exit_code == 3


async def test_a_container_of_which_nothing_is_left_is_status_unknown_and_restarted(run):
    h = await run(
        TWO,
        recovered=[running("app", 0)],
        previous=[was_running("app", 0), was_running("helper", 4)],
    )
    await h.until(lambda: h.runtime.starts("helper") == 1)
    await h.until(lambda: h.container("helper").restart_count == 5)
    last = h.container("helper").last_state.terminated
    assert (last.reason, last.exit_code, last.message) == (
        ExitReason.UNKNOWN.value,
        137,
        UNKNOWN_MESSAGE,
    )
    assert h.runtime.starts("app") == 0


async def test_readiness_carries_over_instead_of_flapping(run):
    # The probe fails from now on, but one failure is below failureThreshold.
    h = await run(
        PROBED, recovered=[running("app", 0)], previous=[was_running("app", 0)], exec_exit=1
    )
    await h.until(lambda: h.container("app").state.running is not None)
    assert h.container("app").ready is True
    await h.until(lambda: h.runtime.execs)  # probed once, and failed
    await asyncio.sleep(0.1)
    assert h.container("app").ready is True


async def test_a_container_not_ready_before_stays_not_ready_until_probed(run):
    h = await run(
        PROBED,
        recovered=[running("app", 0)],
        previous=[was_running("app", 0, ready=False)],
        exec_exit=1,
    )
    await h.until(lambda: h.container("app").state.running is not None)
    await asyncio.sleep(0.1)
    assert h.container("app").ready is False


async def test_back_off_carries_on_from_the_persisted_state(run):
    saved = {
        "app": {
            "delay": 0.8,
            "lastUpdate": datetime.now(UTC).isoformat(),
            "attemptAt": datetime.now(UTC).isoformat(),
        }
    }
    h = await run(
        POD % "Always",
        recovered=[ended("app", 3, 1, ago=0)],
        previous=[was_running("app", 3)],
        annotations={BACKOFF_ANNOTATION: json.dumps(saved)},
    )
    await h.until(lambda: h.container("app").state.waiting is not None)
    assert h.container("app").state.waiting.reason == "CrashLoopBackOff"
    await asyncio.sleep(0.4)
    assert h.runtime.starts("app") == 0  # held back by the restored 0.8 s, not restarted at once
    await h.until(lambda: h.runtime.starts("app") == 1, timeout=2)
    # And the state is persisted again, for the next daemon.
    entry = h.store.get(h.static.key)
    assert entry is not None
    annotation = json.loads(str(entry.view.metadata["annotations"][BACKOFF_ANNOTATION]))
    assert annotation["app"]["delay"] == 0.8


async def test_without_a_persisted_back_off_the_first_restart_is_immediate(run):
    h = await run(
        POD % "Always", recovered=[ended("app", 0, 1, ago=0)], previous=[was_running("app", 0)]
    )
    await h.until(lambda: h.runtime.starts("app") == 1, timeout=0.5)
