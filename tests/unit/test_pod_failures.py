"""Failures stay in the pod: exceptions nobody foresaw, raised by the runtime (the FakeRuntime's
``faults``) at each step of a pod's life, become that pod's status, a Warning event with
kubelet's reason, a log line with the traceback, and a retry with backoff. The worker never
dies of them, and the pod's containers are always supervised or stopped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest

from minikubelet.api.model import Event, Probe
from minikubelet.pods.worker import PodWorker
from minikubelet.probes.results import ProbeKind, ResultsCache
from minikubelet.probes.worker import BUG_RETRY, ProbeWorker
from minikubelet.status.events import EventRecorder
from tests.unit.test_pod_worker import SETTINGS, Harness
from tests.unit.test_probe_worker import OK, ScriptedHandler

Start = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def pod() -> AsyncIterator[Start]:
    """``await pod(manifest, faults={...})``: a worker running on a FakeRuntime that has those
    faults from the start. Every worker must stop within 5 s at the end."""
    started: list[tuple[Harness, asyncio.Task[None]]] = []

    async def start(manifest: str, *, faults: dict[str, BaseException] | None = None) -> Harness:
        h = Harness(manifest)
        h.runtime.faults.update(faults or {})
        started.append((h, asyncio.create_task(h.worker.run(), name="pod under test")))
        await h.until(lambda: h.store.get(h.static.key) is not None)
        return h

    yield start
    for h, task in started:
        h.worker.request_stop()
        await asyncio.wait_for(task, 5)


def warnings(h: Harness, reason: str) -> list[Event]:
    return [e for e in h.events.events() if e.type == "Warning" and e.reason == reason]


def bug_logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    """A log line saying "a bug", with the traceback of an exception mentioning ``text``."""
    return any(
        "a bug" in r.getMessage() and r.exc_info is not None and text in str(r.exc_info[1])
        for r in caplog.records
        if r.levelno >= logging.ERROR
    )


POD = """
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - {name: app, command: [serve]}
"""


async def test_an_unexpected_error_starting_a_container_is_create_container_error_with_backoff(
    pod: Start, caplog: pytest.LogCaptureFixture
) -> None:
    h = await pod(POD, faults={"start_container:app": TypeError("argument of type 'int'")})
    await h.until(lambda: h.container("app").state.waiting.reason == "CreateContainerError")  # type: ignore[union-attr]
    waiting = h.container("app").state.waiting
    assert waiting is not None
    assert "TypeError: argument of type 'int'" in (waiting.message or "")
    failed = warnings(h, "Failed")
    assert failed and "internal error: TypeError" in failed[0].message
    assert bug_logged(caplog, "argument of type 'int'")
    # Retried, with backoff (0.2 s, then 0.4 s...): a few attempts, not a hot loop.
    await h.until(lambda: h.runtime.starts("app") >= 3)
    assert h.runtime.starts("app") < 10
    assert h.reasons().count("BackOff") >= 1
    del h.runtime.faults["start_container:app"]
    await h.until(lambda: h.runtime.running("app") is not None)
    await h.until(lambda: h.status().phase == "Running")


async def test_an_unexpected_error_creating_the_sandbox_is_failed_create_pod_sandbox_and_retried(
    pod: Start, caplog: pytest.LogCaptureFixture
) -> None:
    h = await pod(POD, faults={"start_pod": OSError(5, "Input/output error")})
    await h.until(lambda: warnings(h, "FailedCreatePodSandBox"))
    assert "Input/output error" in warnings(h, "FailedCreatePodSandBox")[0].message
    assert h.runtime.starts("app") == 0
    del h.runtime.faults["start_pod"]
    await h.until(lambda: h.runtime.running("app") is not None, timeout=5)


async def test_an_exec_probe_whose_exec_raises_is_an_errored_probe_and_probing_goes_on(
    pod: Start, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = """
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: app
    command: [serve]
    livenessProbe: {exec: {command: [check]}, periodSeconds: 1, failureThreshold: 1}
"""
    h = await pod(manifest, faults={"exec_in_container:app": ValueError("embedded null byte")})

    def errored() -> list[Event]:
        return [
            e
            for e in warnings(h, "Unhealthy")
            if e.message.startswith("Liveness probe errored and resulted in unknown state")
        ]

    await h.until(lambda: errored() and errored()[0].count >= 2, timeout=5)
    assert "internal error: ValueError: embedded null byte" in errored()[0].message
    assert bug_logged(caplog, "embedded null byte")
    # An errored probe is not a failed one: the container is neither killed nor restarted.
    assert h.runtime.starts("app") == 1 and ("stop", "app") not in h.runtime.calls
    assert h.container("app").state.running is not None


async def test_a_wait_that_raises_stops_the_container_and_it_is_restarted_under_watch(
    pod: Start, caplog: pytest.LogCaptureFixture
) -> None:
    h = await pod(POD, faults={"wait_container:app": RuntimeError("event stream lost")})
    # The instance nobody can watch is stopped rather than left running unwatched...
    await h.until(lambda: ("stop", "app") in h.runtime.calls)
    assert bug_logged(caplog, "event stream lost")
    await h.until(lambda: h.container("app").last_state.terminated is not None)
    terminated = h.container("app").last_state.terminated
    assert terminated is not None
    assert "waiting for it failed" in (terminated.message or "")
    # ...and restarted (restartPolicy Always); once waits work, the new instance stays up.
    del h.runtime.faults["wait_container:app"]
    await h.until(lambda: h.runtime.starts("app") >= 2 and h.runtime.running("app") is not None)
    starts = h.runtime.starts("app")
    await asyncio.sleep(0.3)
    assert h.runtime.starts("app") == starts and h.runtime.running("app") is not None


async def test_an_unexpected_error_in_a_post_start_hook_is_failed_post_start_hook(
    pod: Start, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = """
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: app
    command: [serve]
    lifecycle: {postStart: {exec: {command: [warm-up]}}}
"""
    h = await pod(manifest, faults={"exec_in_container:app": TypeError("bad operand")})
    await h.until(lambda: warnings(h, "FailedPostStartHook"))
    assert "internal error: TypeError: bad operand" in warnings(h, "FailedPostStartHook")[0].message
    assert bug_logged(caplog, "bad operand")
    # kubelet kills a container whose postStart failed; it is then restarted.
    await h.until(lambda: ("stop", "app") in h.runtime.calls)
    await h.until(lambda: h.runtime.starts("app") >= 2)


async def test_a_failure_removing_an_exited_container_does_not_stop_its_restarts(
    pod: Start, caplog: pytest.LogCaptureFixture
) -> None:
    h = await pod(POD, faults={"remove_container:app": KeyError("no such container")})
    await h.until(lambda: h.runtime.running("app") is not None)
    h.runtime.exit("app", 1)
    await h.until(lambda: h.runtime.starts("app") >= 2 and h.runtime.running("app") is not None)
    assert bug_logged(caplog, "no such container")


async def test_a_pod_stops_even_when_stopping_its_containers_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness(POD)
    task = asyncio.create_task(h.worker.run(), name="pod under test")
    await h.until(lambda: h.runtime.running("app") is not None)
    container = h.runtime.running("app")
    h.runtime.faults["stop_container:app"] = OSError(24, "Too many open files")
    h.worker.request_stop()
    await asyncio.wait_for(task, 5)  # run() ends normally: nothing escaped
    assert bug_logged(caplog, "Too many open files")
    # The sandbox's stop is the last resort: nothing of the pod is left running.
    assert h.runtime.pods_stopped == 1
    assert container is not None and container.exited.done()
    assert h.store.get(h.static.key) is None


async def test_a_pod_whose_sandbox_stop_raises_still_ends_its_worker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness(POD)
    task = asyncio.create_task(h.worker.run(), name="pod under test")
    await h.until(lambda: h.runtime.running("app") is not None)
    h.runtime.faults["stop_pod"] = ValueError("I/O operation on closed file")
    h.worker.request_stop()
    await asyncio.wait_for(task, 5)
    assert bug_logged(caplog, "closed file")
    assert h.runtime.running("app") is None


async def test_a_sync_pass_that_fails_is_failed_sync_and_the_containers_stay_watched(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The event log's clock fails once, right after the container started: a stand-in for a
    # bug anywhere in a sync pass after the runtime did its part.
    failures = [ValueError("clock went backwards")]

    def clock() -> datetime:
        if failures:
            raise failures.pop()
        return datetime.now(UTC)

    h = Harness(POD)
    h.events = EventRecorder(node_name="node1", clock=clock)
    h.worker = PodWorker(
        h.static, runtime=h.runtime, store=h.store, events=h.events, settings=SETTINGS
    )
    task = asyncio.create_task(h.worker.run(), name="pod under test")
    try:
        await h.until(lambda: warnings(h, "FailedSync"))
        assert (
            "internal error: ValueError: clock went backwards"
            in warnings(h, "FailedSync")[0].message
        )
        assert bug_logged(caplog, "clock went backwards")
        # The container started in that pass is watched: its exit is seen, and it restarts.
        h.runtime.exit("app", 1)
        await h.until(lambda: h.runtime.starts("app") == 2 and h.runtime.running("app"))
    finally:
        h.worker.request_stop()
        await asyncio.wait_for(task, 5)


async def test_a_probe_worker_whose_own_tick_fails_logs_it_and_carries_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A period too large for a float (validation bounds it in the daemon; the worker must not
    # depend on that): every tick fails in the worker itself, not in the probe.
    probe = Probe.model_validate({"exec": {"command": ["true"]}})
    probe = probe.model_copy(update={"period_seconds": 10**400})  # past the model's int32 too
    sleeps: list[float] = []

    async def sleeper(delay: float, wakeup: asyncio.Event) -> None:
        sleeps.append(delay)
        if len(sleeps) == 3:
            worker.stop()

    worker = ProbeWorker(
        kind=ProbeKind.LIVENESS,
        probe=probe,
        handler=ScriptedHandler([OK]),
        results=ResultsCache(),
        container_name="app",
        on_event=lambda *event: None,
        is_started=lambda: True,
        pod="default/web-node1",
        sleeper=sleeper,
    )
    worker.container_started("c1", started_at=asyncio.get_running_loop().time())
    await asyncio.wait_for(worker.run(), 5)  # neither raised nor spun
    assert len(sleeps) == 3 and all(BUG_RETRY - 0.1 < s <= BUG_RETRY for s in sleeps)
    assert bug_logged(caplog, "too large to convert to float")
