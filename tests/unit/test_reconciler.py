"""The reconciler's supervision of pod workers: a worker that cannot be made, or whose run()
fails, is that pod's problem (a FailedSync event, a new worker after a backoff); the other pods
and the reconciler carry on. Real PodWorkers on the FakeRuntime."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from minikubelet.api.identity import DesiredSet, StaticPod
from minikubelet.pods.reconciler import Reconciler
from minikubelet.pods.worker import PodWorker
from minikubelet.status.events import EventRecorder
from minikubelet.status.store import StatusStore
from tests.fakes import FakeRuntime
from tests.unit.test_pod_worker import SETTINGS, static_pod


class Node:
    def __init__(self) -> None:
        self.runtime = FakeRuntime()
        self.store = StatusStore(None)
        self.events = EventRecorder(node_name="node1")
        self.made: Counter[str] = Counter()  # pod key -> workers made
        self.reconciler = Reconciler(
            make_worker=self.make_worker,
            events=self.events,
            node_name="node1",
            restart_backoff_initial=0.1,
            restart_backoff_max=0.4,
        )

    def make_worker(self, static: StaticPod, predecessor: asyncio.Task[None] | None) -> PodWorker:
        self.made[static.key] += 1
        return PodWorker(
            static,
            runtime=self.runtime,
            store=self.store,
            events=self.events,
            settings=SETTINGS,
            predecessor=predecessor,
        )

    def want(self, *pods: StaticPod) -> None:
        self.reconciler.reconcile_once(DesiredSet(pods={p.key: p for p in pods}))

    def failed_sync(self, pod: StaticPod) -> list[str]:
        return [
            e.message
            for e in self.events.for_object(uid=pod.uid)
            if e.type == "Warning" and e.reason == "FailedSync"
        ]

    async def until(self, predicate: Callable[[], Any], timeout: float = 3.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.005)


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    n = Node()
    yield n
    await asyncio.wait_for(n.reconciler.stop_all(timeout=5), 10)


GOOD = """
apiVersion: v1
kind: Pod
metadata: {name: good}
spec:
  containers:
  - {name: app, command: [serve]}
"""

# Both get past the model; the worker chokes on them. (Validation rejects them in the daemon.)
BAD_CPU = """
apiVersion: v1
kind: Pod
metadata: {name: badcpu}
spec:
  containers:
  - name: app
    command: [serve]
    resources: {requests: {cpu: "1 core"}, limits: {cpu: "1 core"}}
"""
PROBE_WITHOUT_ACTION = """
apiVersion: v1
kind: Pod
metadata: {name: probeless}
spec:
  containers:
  - name: app
    command: [serve]
    livenessProbe: {periodSeconds: 1}
"""


async def test_a_pod_whose_worker_cannot_be_made_is_retried_and_the_others_run(
    node: Node,
) -> None:
    good = static_pod(GOOD, uid="uid-good")
    bad = static_pod(BAD_CPU, uid="uid-badcpu")
    node.want(good, bad)
    await node.until(lambda: node.runtime.running("app") is not None)
    await node.until(lambda: node.made[bad.key] >= 3)  # retried, after 0.1 s, 0.2 s
    assert node.made[bad.key] < 10  # with backoff, not in a loop
    messages = node.failed_sync(bad)
    assert messages and "creating the pod worker failed: internal error: ValueError" in messages[0]
    assert not node.reconciler.failed.is_set()
    assert node.runtime.starts("app") == 1  # the good pod was not disturbed
    # Once the manifest is gone, its supervision ends at once (no waiting out the backoff).
    node.want(good)
    made = node.made[bad.key]
    await asyncio.sleep(0.5)
    assert node.made[bad.key] == made


async def test_a_worker_that_fails_is_replaced_after_a_backoff_and_its_pod_stays_visible(
    node: Node,
) -> None:
    pod = static_pod(PROBE_WITHOUT_ACTION, uid="uid-probeless")
    node.want(pod)
    await node.until(lambda: node.made[pod.key] >= 2)
    messages = node.failed_sync(pod)
    assert messages and "running the pod worker failed: internal error: ValueError" in messages[0]
    assert "retrying in" in messages[0]
    # The pod keeps its entry while its worker is being replaced: users see what happens.
    assert node.store.get(pod.key) is not None
    assert not node.reconciler.failed.is_set()
    node.want()  # the manifest is removed
    await node.until(lambda: node.store.get(pod.key) is None)


async def test_stopping_every_pod_during_a_worker_backoff_keeps_the_pod_status(
    node: Node,
) -> None:
    pod = static_pod(PROBE_WITHOUT_ACTION, uid="uid-probeless")
    node.want(pod)
    await node.until(lambda: node.failed_sync(pod))
    async with asyncio.timeout(2):
        await node.reconciler.stop_all(timeout=5)
    assert node.store.get(pod.key) is not None  # kept for the next daemon, like any pod's
