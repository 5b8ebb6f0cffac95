"""Desired pods vs running workers: stop what is gone or changed, then start what is new.

The manifest source publishes whole snapshots (level-triggered, latest wins); ``reconcile_once``
diffs one against the workers and acts at once, without awaiting anything, so a slow pod never
delays another. Workers are keyed by PodKey and identified by UID: a changed manifest is a new
UID, so the old worker is asked to stop and the new one is started with the old one as its
predecessor (it waits for it; the two never run side by side). Nothing is mutated in place,
except the file a pod is declared by: a manifest renamed without a change keeps its UID (the
UID does not include the path) and its pod, which only learns the new file name.

A manifest that turns invalid does not take its running pod down: the pod keeps running on its
last good spec and the error is reported as a FailedValidation event on it, until the file is
fixed (a new pod) or removed (the pod stops). kubelet drops such a pod on its next resync; we
deliberately don't, because a typo in an edit should not be an outage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from minikubelet.api.errors import ManifestError
from minikubelet.api.identity import DesiredSet, StaticPod
from minikubelet.api.model import ObjectReference, PodKey
from minikubelet.pods.worker import PodWorker
from minikubelet.status.events import EventRecorder

log = logging.getLogger(__name__)

WorkerFactory = Callable[[StaticPod, "asyncio.Task[None] | None"], PodWorker]


@dataclass(slots=True)
class _Running:
    worker: PodWorker
    task: asyncio.Task[None]


@dataclass(slots=True)
class Reconciler:
    make_worker: WorkerFactory
    events: EventRecorder
    node_name: str
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _current: dict[PodKey, _Running] = field(default_factory=dict)
    _stopping: dict[PodKey, asyncio.Task[None]] = field(default_factory=dict)  # latest per key
    _reported: dict[str, str] = field(default_factory=dict)  # path -> error text last reported
    failure: BaseException | None = None  # a worker that died of a bug
    failed: asyncio.Event = field(default_factory=asyncio.Event)  # set with failure

    def reconcile_once(self, desired: DesiredSet) -> None:
        self._report_errors(desired)
        kept_by_error = {
            key
            for key, running in self._current.items()
            if key not in desired.pods and running.worker.static.source in desired.errors
        }
        # Stop what is gone or changed.
        for key, running in list(self._current.items()):
            wanted = desired.pods.get(key)
            if key in kept_by_error:
                continue
            if wanted is None or wanted.uid != running.worker.uid:
                log.info("pod %s: stopping (%s)", key, "changed" if wanted else "removed")
                running.worker.request_stop()
                self._stopping[key] = running.task
                del self._current[key]
            elif wanted.source != running.worker.static.source:
                # The same bytes under another file name (renamed, or swapped in under it):
                # the same pod, so it carries on, from now on named after that file.
                log.info("pod %s: now declared by %s (unchanged)", key, wanted.source)
                running.worker.relocate(wanted)
        # Then start what is new, each after its predecessor of the same name has stopped.
        for key, static in desired.pods.items():
            if key in self._current:
                continue
            predecessor = self._stopping.get(key)
            worker = self.make_worker(static, predecessor)
            task = asyncio.get_running_loop().create_task(worker.run(), name=f"pod {key}")
            self._tasks.add(task)
            task.add_done_callback(self._task_done)
            self._current[key] = _Running(worker, task)
            log.info("pod %s: starting (uid %s, from %s)", key, static.uid, static.source)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        for key, stopping in list(self._stopping.items()):
            if stopping is task:
                del self._stopping[key]
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # A pod worker only fails on a bug. Say so loudly; the daemon's supervisor stops.
            log.error("pod worker %s failed", task.get_name(), exc_info=exc)
            self.failure = exc
            self.failed.set()

    def _report_errors(self, desired: DesiredSet) -> None:
        for path, error in desired.errors.items():
            text = "\n".join(error.lines())
            if self._reported.get(path) == text:
                continue
            self._reported[path] = text
            self._record_manifest_error(path, error)
        for path in list(self._reported):
            if path not in desired.errors:
                del self._reported[path]

    def _record_manifest_error(self, path: str, error: ManifestError) -> None:
        running = next((r for r in self._current.values() if r.worker.static.source == path), None)
        if running is not None:
            static = running.worker.static
            ref = ObjectReference(
                kind="Pod", namespace=static.namespace, name=static.name, uid=static.uid
            )
            suffix = "; the pod keeps running its last valid spec"
        else:
            stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            ref = ObjectReference(kind="Pod", namespace="default", name=f"{stem}-{self.node_name}")
            suffix = ""
        details = "; ".join(str(e) for e in error.errors)
        self.events.record(
            ref,
            type="Warning",
            reason="FailedValidation",
            message=f"Error validating pod from {path}: {details}{suffix}",
        )
        for line in error.lines():
            log.error("Could not process manifest file: %s", line)

    def running_pods(self) -> list[StaticPod]:
        return [r.worker.static for r in self._current.values()]

    # --- queries for the API --------------------------------------------------------------------

    def worker(self, key: PodKey) -> PodWorker | None:
        running = self._current.get(key)
        return running.worker if running is not None else None

    def logs(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        previous: bool,
        tail_lines: int | None,
        follow: bool,
    ) -> AsyncIterator[bytes]:
        worker = self.worker(PodKey(f"{namespace}/{pod}"))
        if worker is None:
            raise LookupError(f'pods "{pod}" not found')
        return worker.logs(container, previous=previous, tail_lines=tail_lines, follow=follow)

    # --- shutdown ---------------------------------------------------------------------------------

    async def stop_all(self, *, timeout: float) -> None:
        """Stop every pod gracefully, in parallel; cancel what has not finished by ``timeout``."""
        for running in self._current.values():
            running.worker.request_stop(keep_status=True)
        self._current.clear()
        tasks = set(self._tasks)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            log.warning("%s did not stop in %.0fs; cancelling", task.get_name(), timeout)
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=10)
