"""Desired pods vs running workers: stop what is gone or changed, then start what is new.

The manifest source publishes whole snapshots (level-triggered, latest wins); ``reconcile_once``
diffs one against the workers and acts at once, without awaiting anything, so a slow pod never
delays another. Workers are keyed by PodKey and identified by UID: a changed manifest is a new
UID, so the old worker is asked to stop and the new one is started with the old one as its
predecessor (it waits for it; the two never run side by side). Nothing is mutated in place,
except the file a pod is declared by: a manifest renamed without a change keeps its UID (the
UID does not include the path) and its pod, which only learns the new file name.

Each pod runs under a supervising task (named ``pod <key>``) that owns its worker. A worker that
cannot be made, or whose ``run()`` ends in an exception (a bug: each step of the worker contains
its own failures, and the worker stops the pod's containers before anything escapes), is that
pod's problem alone: the error is logged with its traceback, recorded as a FailedSync Warning
event, and a new worker starts after a backoff (crashLoopBackOff's delays), unless the pod was
asked to stop meanwhile. Other pods and the daemon carry on. Only a failure of this supervision
itself is reported through ``failed``, for the daemon to stop in order.

A manifest that turns invalid does not take its running pod down: the pod keeps running on its
last good spec and the error is reported as a FailedValidation event on it, until the file is
fixed (a new pod) or removed (the pod stops). kubelet drops such a pod on its next resync; we
deliberately don't, because a typo in an edit should not be an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from minikubelet.api.errors import ManifestError
from minikubelet.api.identity import DesiredSet, StaticPod
from minikubelet.api.model import ObjectReference, PodKey
from minikubelet.pods.backoff import Backoff, format_go_duration
from minikubelet.pods.worker import PodWorker
from minikubelet.status.events import EventRecorder

log = logging.getLogger(__name__)

WorkerFactory = Callable[[StaticPod, "asyncio.Task[None] | None"], PodWorker]


@dataclass(slots=True, eq=False)
class _Running:
    """One desired pod and its supervision."""

    static: StaticPod
    worker: PodWorker | None = None  # the current worker; None while none could be made
    task: asyncio.Task[None] | None = None  # the supervising task
    stop_requested: bool = False  # the pod is gone or changed (or the daemon stops)
    keep_status: bool = False  # leave the final status in the store (the daemon stops)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)  # ends a restart backoff early

    def request_stop(self, *, keep_status: bool = False) -> None:
        self.stop_requested = True
        self.keep_status = self.keep_status or keep_status
        if self.worker is not None:
            self.worker.request_stop(keep_status=keep_status)
        self.wakeup.set()

    def relocate(self, static: StaticPod) -> None:
        """The same pod, now declared by another file: the current worker and any later one
        carry on under that name."""
        self.static = static
        if self.worker is not None:
            self.worker.relocate(static)


@dataclass(slots=True)
class Reconciler:
    make_worker: WorkerFactory
    events: EventRecorder
    node_name: str
    restart_backoff_initial: float = 10.0  # first delay before a failed worker is replaced
    restart_backoff_max: float = 300.0  # its cap
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _current: dict[PodKey, _Running] = field(default_factory=dict)
    _stopping: dict[PodKey, asyncio.Task[None]] = field(default_factory=dict)  # latest per key
    _reported: dict[str, str] = field(default_factory=dict)  # path -> error text last reported
    _backoff: Backoff | None = None  # worker restarts, per pod UID (made on first use)
    failure: BaseException | None = None  # the supervision itself failed (a bug)
    failed: asyncio.Event = field(default_factory=asyncio.Event)  # set with failure

    def reconcile_once(self, desired: DesiredSet) -> None:
        self._report_errors(desired)
        kept_by_error = {
            key
            for key, running in self._current.items()
            if key not in desired.pods and running.static.source in desired.errors
        }
        # Stop what is gone or changed.
        for key, running in list(self._current.items()):
            wanted = desired.pods.get(key)
            if key in kept_by_error:
                continue
            if wanted is None or wanted.uid != running.static.uid:
                log.info("pod %s: stopping (%s)", key, "changed" if wanted else "removed")
                running.request_stop()
                assert running.task is not None
                self._stopping[key] = running.task
                del self._current[key]
            elif wanted.source != running.static.source:
                # The same bytes under another file name (renamed, or swapped in under it):
                # the same pod, so it carries on, from now on named after that file.
                log.info("pod %s: now declared by %s (unchanged)", key, wanted.source)
                running.relocate(wanted)
        # Then start what is new, each after its predecessor of the same name has stopped.
        for key, static in desired.pods.items():
            if key in self._current:
                continue
            predecessor = self._stopping.get(key)
            running = _Running(static)
            task = asyncio.get_running_loop().create_task(
                self._supervise(running, predecessor), name=f"pod {key}"
            )
            running.task = task
            self._tasks.add(task)
            task.add_done_callback(self._task_done)
            self._current[key] = running
            log.info("pod %s: starting (uid %s, from %s)", key, static.uid, static.source)

    # --- supervision ------------------------------------------------------------------------------

    async def _supervise(self, running: _Running, predecessor: asyncio.Task[None] | None) -> None:
        """Make and run the pod's worker; replace it after a backoff while it fails and the
        pod is still wanted. Ends when the pod has stopped."""
        key = f"{running.static.uid}/worker"
        try:
            await self._run_worker(running, predecessor, key)
        finally:
            if self._backoff is not None:
                self._backoff.forget(key)

    async def _run_worker(
        self, running: _Running, predecessor: asyncio.Task[None] | None, key: str
    ) -> None:
        while True:
            worker = running.worker = None
            try:
                worker = running.worker = self.make_worker(running.static, predecessor)
                if running.stop_requested:
                    worker.request_stop(keep_status=running.keep_status)
                await worker.run()
                return  # stopped as asked
            except Exception as exc:
                # The worker has stopped its containers (its finally) and left its entry in
                # the store, so the pod stays visible with the event until it runs again.
                what = "creating the pod worker" if worker is None else "running the pod worker"
                backoff = self._restart_backoff()
                backoff.next(key, asyncio.get_running_loop().time())
                self._worker_failed(running, what, exc, retry_in=backoff.get(key))
            if not running.stop_requested:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(backoff.get(key)):
                        await running.wakeup.wait()
            if running.stop_requested:
                if worker is not None:
                    worker.request_stop(keep_status=running.keep_status)
                    worker.drop_status()
                return

    def _restart_backoff(self) -> Backoff:
        if self._backoff is None:
            self._backoff = Backoff(
                initial=self.restart_backoff_initial,
                maximum=self.restart_backoff_max,
                clock=asyncio.get_running_loop().time,
            )
        return self._backoff

    def _worker_failed(
        self, running: _Running, what: str, exc: Exception, *, retry_in: float
    ) -> None:
        """A bug hit one pod: say it with the traceback, and as an event on the pod."""
        static = running.static
        log.error("pod %s: %s failed (a bug in minikubelet)", static.key, what, exc_info=exc)
        errors = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
        error = "; ".join(f"{type(e).__name__}: {e}" for e in errors)
        retry = (
            "the pod is stopping"
            if running.stop_requested
            else f"retrying in {format_go_duration(retry_in)}"
        )
        self.events.record(
            ObjectReference(
                kind="Pod",
                namespace=static.namespace,
                name=static.name,
                uid=static.uid,
                api_version="v1",
            ),
            type="Warning",
            reason="FailedSync",
            message=f"error syncing pod, {retry}: {what} failed: internal error: {error}",
        )

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        for key, stopping in list(self._stopping.items()):
            if stopping is task:
                del self._stopping[key]
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # The supervision itself failed: the pod may be unsupervised. The daemon stops,
            # in order, rather than carry on blind.
            log.critical("%s: supervision failed (a bug)", task.get_name(), exc_info=exc)
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
        running = next((r for r in self._current.values() if r.static.source == path), None)
        if running is not None:
            static = running.static
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
        return [r.static for r in self._current.values()]

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
            running.request_stop(keep_status=True)
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
