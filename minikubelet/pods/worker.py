"""One supervised task per pod: start it, keep it to its restartPolicy, stop it gracefully.

The worker is kubelet's pod worker and SyncPod in one level-triggered loop:

    sync()     look at every container's record and decide: start an init container, start or
               restart a regular one (ShouldContainerBeRestarted + CrashLoopBackOff), finish
               the pod when nothing will run again; do it through the Runtime.
    publish()  render the records into a v1 PodStatus (status.phase) for the store.
    wait()     sleep until something changes: a container exits, a backoff expires, a probe
               result flips, or a stop is requested.

Decisions read only the records, so a test can drive the worker with a FakeRuntime and watch
what it starts. Each running container instance has one waiter task (owned by the worker's
TaskGroup) that turns ``Runtime.wait_container`` into a message on the worker's queue; nothing
else touches the records concurrently.

Failures stay in the pod, the unexpected ones too. A runtime error becomes a Waiting reason, a
Warning event and a backoff; so does an exception nobody foresaw at the same step, which is also
logged with its traceback as a bug: creating the sandbox (FailedCreatePodSandBox), building a
container's config (CreateContainerConfigError), starting it (CreateContainerError), hooks
(FailedPostStartHook, FailedPreStopHook). A wait on a container that fails that way stops the
container rather than lose sight of it. A sync pass that fails anywhere else is a FailedSync
event and a retry with backoff, with the containers still supervised. If something still
escapes ``run()``, its ``finally`` has stopped the pod's containers first, and the reconciler
starts a new worker after a backoff (docs/robustness.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pydantic import JsonValue

from minikubelet.api.env import expand_command, resolve_env
from minikubelet.api.errors import (
    ContainerConfigError,
    ImagePullError,
    RuntimeFailure,
    StartFailure,
)
from minikubelet.api.identity import StaticPod
from minikubelet.api.model import (
    ContainerStatus,
    EventType,
    ObjectReference,
    PodCondition,
    PodIP,
    PodStatus,
    PodView,
    dump,
    format_time,
    now,
)
from minikubelet.api.resources import qos_class
from minikubelet.pods.admission import Admission, unschedulable_message
from minikubelet.pods.backoff import Backoff, format_go_duration
from minikubelet.pods.hooks import ExecFn, run_hook
from minikubelet.pods.records import (
    ContainerRecord,
    adopt_record,
    container_status,
    restore_record,
    should_restart,
    vanished,
)
from minikubelet.probes.handlers import HTTPProber
from minikubelet.probes.results import ProbeKind, ProbeUpdate
from minikubelet.probes.worker import ProbeManager
from minikubelet.runtime.base import (
    ContainerConfig,
    ContainerExit,
    ContainerID,
    ContainerKind,
    ExecResult,
    ExitReason,
    PodSandboxConfig,
    RecoveredContainer,
    Runtime,
)
from minikubelet.status.events import EventRecorder
from minikubelet.status.phase import get_conditions, get_phase
from minikubelet.status.store import PodEntry, StatusStore

log = logging.getLogger(__name__)

CGROUP_ANNOTATION = "minikubelet.io/cgroup"  # the pod's cgroup directory, for operators
BACKOFF_ANNOTATION = "minikubelet.io/backoff"
"""Each container's CrashLoopBackOff state, persisted with the pod's status so that a daemon
restart carries it on: JSON ``{container: {"delay": s, "lastUpdate": t, "attemptAt": t}}``."""

# Waiting reasons a container keeps while it backs off, instead of CrashLoopBackOff: it never
# ran, and the reason says why (kubelet shows these until the next attempt).
_KEPT_IN_BACKOFF = ("CreateContainerConfigError", "CreateContainerError", "ErrImageNeverPull")


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    node_name: str
    host_ip: str
    backoff_initial: float = 10.0
    backoff_max: float = 300.0
    backoff_reset: float = 600.0
    minimum_grace_period: float = 2.0
    allocatable: Mapping[str, Decimal] = field(default_factory=dict)  # resourceFieldRef fallback
    restarted_at: float | None = None  # loop time this daemon started, if it is a restart


@dataclass(frozen=True, slots=True)
class _Exited:
    name: str
    container_id: ContainerID
    exit: ContainerExit


@dataclass(frozen=True, slots=True)
class _ProbeChanged:
    update: ProbeUpdate


@dataclass(frozen=True, slots=True)
class _Stop:
    pass


@dataclass(frozen=True, slots=True)
class _RoomFreed:
    pass


_Message = _Exited | _ProbeChanged | _Stop | _RoomFreed


def _lost(message: str) -> ContainerExit:
    """The exit recorded for an instance whose real exit is unknown (137, like kubelet's)."""
    stamp = now()
    return ContainerExit(
        exit_code=137,
        signal=None,
        reason=ExitReason.ERROR,
        message=message,
        started_at=stamp,
        finished_at=stamp,
    )


@dataclass(slots=True)
class _Progress:
    """What one sync pass decided beyond starting containers."""

    wake_in: list[float] = field(default_factory=list)  # seconds until a backoff expires


class PodWorker:
    def __init__(
        self,
        static: StaticPod,
        *,
        runtime: Runtime,
        store: StatusStore,
        events: EventRecorder,
        settings: WorkerSettings,
        predecessor: asyncio.Task[None] | None = None,
        admission: Admission | None = None,
        http: HTTPProber | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """``http``: the daemon's one HTTP client for probes and hooks (a worker without one
        makes and closes its own)."""
        self.static = static
        self.runtime = runtime
        self._store = store
        self._events = events
        self._settings = settings
        self._predecessor = predecessor
        self._admission = admission
        self._unschedulable: str | None = None  # the FailedScheduling message while Pending
        self._clock = clock or asyncio.get_running_loop().time
        self._queue: asyncio.Queue[_Message] = asyncio.Queue()
        self._stop_requested = False
        self._keep_status = False  # leave the final status in the store when stopped
        self._backoff = Backoff(
            initial=settings.backoff_initial,
            maximum=settings.backoff_max,
            reset=settings.backoff_reset,
            clock=self._clock,
        )
        spec = static.pod.spec
        self._init = [
            ContainerRecord(
                spec=c,
                kind=ContainerKind.SIDECAR if c.is_sidecar else ContainerKind.INIT,
                field_path=f"spec.initContainers{{{c.name}}}",
                waiting_reason="PodInitializing",
            )
            for c in spec.init_containers or []
        ]
        self._regular = [
            ContainerRecord(
                spec=c,
                kind=ContainerKind.REGULAR,
                field_path=f"spec.containers{{{c.name}}}",
                waiting_reason="PodInitializing" if spec.init_containers else "ContainerCreating",
            )
            for c in spec.containers
        ]
        self._records = {r.name: r for r in [*self._init, *self._regular]}
        self.sandbox = PodSandboxConfig(
            uid=static.uid, name=static.name, namespace=static.namespace, spec=spec
        )
        self._pod_ip: str | None = None
        self._cgroup_path: str | None = None  # the pod's cgroup, shown as an annotation
        self._initialized = False  # every init container has done its part (latched)
        self._finished = False  # restartPolicy says nothing will run again
        self._terminating = False
        self._start_time = now()
        self._conditions: list[PodCondition] = []
        self._qos = qos_class(spec).value
        self._tg: asyncio.TaskGroup | None = None
        # From the status a previous daemon left: the containers that were running then, with
        # their instance, started and ready flags; and when each one last failed (wall time).
        self._was_running: dict[str, tuple[str | None, bool, bool]] = {}
        self._attempted: dict[str, datetime] = {}
        # Restored from a previous daemon and not yet through _adopt: the status that daemon
        # left is what the API shows until then (no ContainerCreating flash in between).
        self._restoring = False
        self._owns_http = http is None
        self._http = http or HTTPProber()  # httpGet probes and hooks
        self._probes: ProbeManager | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self.log = logging.LoggerAdapter(log, {"pod": static.key})

    # --- control ------------------------------------------------------------------------------

    @property
    def uid(self) -> str:
        return self.static.uid

    def request_stop(self, *, keep_status: bool = False) -> None:
        """Ask for a graceful stop. The pod's entry leaves the API once it has stopped, unless
        ``keep_status`` (the daemon is shutting down, the pod itself is not being deleted): then
        its final status stays, is persisted, and seeds the next daemon's worker."""
        self._keep_status = self._keep_status or keep_status
        if not self._stop_requested:
            self._stop_requested = True
            self._queue.put_nowait(_Stop())

    def relocate(self, static: StaticPod) -> None:
        """The same pod (the same UID: the same bytes) is now declared by another file. Carry
        on, naming that file from now on (``source``, the ``config.*`` annotations)."""
        if static.uid != self.uid:
            raise ValueError(f"{static.key}: relocate to uid {static.uid}, this pod is {self.uid}")
        self.static = static
        if self._tg is not None and not self._terminating:
            self._store.put(static.key, self._entry())

    def restore(
        self, previous: PodStatus, *, annotations: Mapping[str, JsonValue] | None = None
    ) -> None:
        """Carry on from the status a previous daemon left for this same pod (same UID).

        Each container's restartCount carries on and its last exit shows as lastState; the
        CrashLoopBackOff state comes back from ``annotations`` (``BACKOFF_ANNOTATION``). A pod
        that had finished (Succeeded or Failed) stays finished: a daemon restart does not
        re-run a completed job. The containers themselves are found again by ``run``
        (``Runtime.recover_pod``): those still running are adopted; if none is left (the
        previous daemon stopped them), the pod starts afresh, init containers included.
        """
        finished = previous.phase in ("Succeeded", "Failed")
        for status in [
            *(previous.init_container_statuses or []),
            *(previous.container_statuses or []),
        ]:
            rec = self._records.get(status.name)
            if rec is None:
                continue
            restore_record(rec, status, finished=finished)
            if status.state.running is not None:
                self._was_running[rec.name] = (
                    status.container_id,
                    bool(status.started),
                    bool(status.ready),
                )
        if finished:
            self._initialized = self._finished = True
        if previous.start_time is not None:
            self._start_time = previous.start_time
        self._restore_backoff(annotations or {})
        self._restoring = True

    def _restore_backoff(self, annotations: Mapping[str, JsonValue]) -> None:
        try:
            saved = json.loads(str(annotations.get(BACKOFF_ANNOTATION) or "{}"))
            if not isinstance(saved, dict):
                return
            for name, entry in saved.items():
                if name not in self._records or not isinstance(entry, dict):
                    continue
                if entry.get("lastUpdate") is not None and entry.get("delay") is not None:
                    self._backoff.restore(
                        f"{self.uid}/{name}",
                        backoff=float(entry["delay"]),
                        last_update=self._loop_time(datetime.fromisoformat(entry["lastUpdate"])),
                    )
                if entry.get("attemptAt") is not None:
                    self._attempted[name] = datetime.fromisoformat(entry["attemptAt"])
        except (ValueError, TypeError, KeyError) as exc:
            self.log.warning("ignoring the saved back-off state: %s", exc)

    def _loop_time(self, stamp: datetime) -> float:
        """A wall-clock time on the worker's clock (the loop's)."""
        return self._clock() - (datetime.now(UTC) - stamp).total_seconds()

    def _wall_time(self, loop_time: float) -> datetime:
        return datetime.now(UTC) - timedelta(seconds=self._clock() - loop_time)

    def _backoff_annotation(self) -> str | None:
        saved: dict[str, dict[str, float | str | None]] = {}
        for rec in self._records.values():
            entry = self._backoff.entry(f"{self.uid}/{rec.name}")
            if entry is None and rec.attempt_at is None:
                continue
            saved[rec.name] = {
                "delay": entry[0] if entry else None,
                "lastUpdate": self._wall_time(entry[1]).isoformat() if entry else None,
                "attemptAt": (
                    self._wall_time(rec.attempt_at).isoformat()
                    if rec.attempt_at is not None
                    else None
                ),
            }
        return json.dumps(saved, sort_keys=True, separators=(",", ":")) if saved else None

    async def run(self) -> None:
        """Run the pod until a stop is requested. Should an exception escape (a bug outside
        the steps that contain their own), the containers are stopped before it does, and the
        pod's entry stays in the store for the caller to restart the pod or ``drop_status()``."""
        if self._predecessor is not None:
            # The same pod name from an older manifest: let it stop before this one starts,
            # so that the two never hold the same ports or files at once.
            await asyncio.wait([self._predecessor])
        if not self._restoring or self._store.get(self.static.key) is None:
            self._store.put(self.static.key, self._entry())
        self._record_warnings()
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                try:
                    if await self._admit() and await self._start_sandbox():
                        self._start_probes(tg)
                        await self._adopt()
                        await self._sync_loop()
                finally:
                    # Running -> Terminating. Runs on stop, on a bug and on cancellation alike.
                    await self._terminate()
        finally:
            if self._admission is not None:
                self._admission.release(self.uid)
        self.drop_status()

    def drop_status(self) -> None:
        """Take the pod's entry out of the store, unless it is to stay (``keep_status``)."""
        if not self._keep_status:
            self._store.remove(self.static.key, uid=self.uid)

    async def _sync_loop(self) -> None:
        """sync, publish, wait, until a stop is requested. A pass that fails unexpectedly is a
        FailedSync event and a retry after a backoff; the waiters keep watching the containers
        meanwhile."""
        while not self._stop_requested:
            try:
                progress = await self._sync()
                self._publish()
                wake_in = min(progress.wake_in, default=None)
            except Exception as exc:
                wake_in = self._sync_failed(exc)
            await self._wait(wake_in)

    def _sync_failed(self, exc: Exception) -> float:
        self._backoff.next("sync", self._clock())
        delay = self._backoff.get("sync")
        error = self._bug("syncing the pod", exc)
        self.event(
            "Warning",
            "FailedSync",
            f"error syncing pod, retrying in {format_go_duration(delay)}: {error}",
        )
        try:
            self._publish()
        except Exception as publish_error:
            self._bug("publishing the pod's status", publish_error)
        return delay

    def _bug(self, what: str, exc: BaseException) -> str:
        """Log an exception nobody foresaw, with its traceback; return its text for events."""
        self.log.error(
            "%s: %s failed: %s (a bug in minikubelet)",
            self.static.key,
            what,
            exc,
            exc_info=exc,
        )
        return f"internal error: {type(exc).__name__}: {exc}"

    # --- events -------------------------------------------------------------------------------

    def _ref(self, field_path: str | None = None) -> ObjectReference:
        return ObjectReference(
            kind="Pod",
            namespace=self.static.namespace,
            name=self.static.name,
            uid=self.uid,
            api_version="v1",
            field_path=field_path,
        )

    def event(
        self, type_: EventType, reason: str, message: str, *, field_path: str | None = None
    ) -> None:
        self._events.record(self._ref(field_path), type=type_, reason=reason, message=message)

    def _record_warnings(self) -> None:
        for warning in self.static.warnings:
            self.event("Warning", "UnsupportedField", warning)

    # --- admission ----------------------------------------------------------------------------

    async def _admit(self) -> bool:
        """Wait until the node has room for the pod's requests; False if a stop came first."""
        if self._admission is None:
            return True
        spec = self.static.pod.spec
        while not self._stop_requested:
            missing = self._admission.try_admit(
                self.uid, spec, wake=lambda: self._queue.put_nowait(_RoomFreed())
            )
            if not missing:
                if self._unschedulable is not None:
                    self.log.info("admitted: the node has room now")
                self._unschedulable = None
                return True
            message = unschedulable_message(missing)
            if message != self._unschedulable:
                self._unschedulable = message
                self._events.record(
                    self._ref(),
                    type="Warning",
                    reason="FailedScheduling",
                    message=message,
                    component="default-scheduler",
                )
            self._publish()
            await self._wait(None)
        return False

    # --- sandbox ------------------------------------------------------------------------------

    async def _start_sandbox(self) -> bool:
        """Create the pod's sandbox, retrying with backoff; False if a stop came first."""
        while not self._stop_requested:
            try:
                sandbox = await self.runtime.start_pod(self.sandbox)
            except Exception as exc:
                error = (
                    str(exc)
                    if isinstance(exc, RuntimeFailure)
                    else self._bug("creating the pod sandbox", exc)
                )
                self.event(
                    "Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {error}"
                )
                self._backoff.next("sandbox", self._clock())
                self._publish()
                await self._wait(self._backoff.get("sandbox"))
                continue
            self._pod_ip = sandbox.pod_ip
            if sandbox.cgroup_path is not None:
                # Metadata is only rewritten by put(): publish the annotation now (a restored
                # pod does so once its containers are adopted).
                self._cgroup_path = sandbox.cgroup_path
                if not self._restoring:
                    self._store.put(self.static.key, self._entry())
            return True
        return False

    # --- restart recovery ---------------------------------------------------------------------

    async def _adopt(self) -> None:
        """Take over what the runtime recovered of this pod from an earlier daemon: running
        instances are adopted (watched, probed from where they were; never started again),
        ended ones become the container's last exit, restarted per policy and back-off."""
        try:
            found = await self.runtime.recover_pod(self.sandbox)
        except RuntimeFailure as exc:
            self.log.warning("cannot recover the containers of an earlier daemon: %s", exc)
            found = []
        by_name: dict[str, list[RecoveredContainer]] = {}
        for rc in found:
            by_name.setdefault(rc.name, []).append(rc)
        stamp = now()
        for name in self._was_running:
            gone = self._records[name]
            if name not in by_name and gone.exit is None and found:
                # It was running, and nothing of it is left: kubelet's ContainerStatusUnknown.
                gone.last_exit = vanished(gone.started_at, stamp)
        for name, instances in by_name.items():
            instances.sort(key=lambda rc: rc.restart_count)
            latest = instances[-1]
            rec = self._records.get(name)
            if rec is None:
                # Not in this spec (cannot happen for the same UID): do not leave it running.
                await self._stop_foreign(latest)
                continue
            adopt_record(rec, latest, instances[-2] if len(instances) > 1 else None)
            if latest.exit is None:
                self._watch_adopted(rec, latest)
            else:
                rec.attempt_at = self._loop_time(latest.exit.finished_at)
                with contextlib.suppress(RuntimeFailure):
                    await self.runtime.remove_container(latest.container_id)
            attempted = self._attempted.get(name)
            if attempted is not None and (rec.attempt_at is None or rec.running is False):
                # A failed attempt after its last exit (a config error, say) counts too.
                when = self._loop_time(attempted)
                rec.attempt_at = max(rec.attempt_at or when, when)
            if rec.kind is ContainerKind.REGULAR:
                self._initialized = True  # init containers never run again once one has
        if found:
            adopted = sum(1 for rc in found if rc.exit is None)
            self.log.info(
                "recovered from an earlier daemon: %d containers adopted, %d had ended",
                adopted,
                len(by_name) - adopted,
            )
        if self._finished:
            await self._kill_all(reason_message=None)  # nothing of a finished pod runs again
        if self._restoring or found:
            self._restoring = False
            self._store.put(self.static.key, self._entry())

    def _watch_adopted(self, rec: ContainerRecord, rc: RecoveredContainer) -> None:
        assert self._tg is not None
        self._tg.create_task(
            self._watch(rec.name, rc.container_id),
            name=f"wait {self.static.key}/{rec.name}#{rec.restart_count}",
        )
        previous_id, started, ready = self._was_running.get(rec.name, (None, False, False))
        same = previous_id == rc.container_id
        if self._probes is not None:
            self._probes.container_started(
                rec.name,
                container_id=rc.container_id,
                started_at=rc.started_at,
                started=same and started,
                ready=same and ready,
            )
            rec.started = self._probes.is_started(rec.name)
            rec.ready = self._probes.is_ready(rec.name)
        else:
            rec.started = rec.ready = True

    async def _stop_foreign(self, rc: RecoveredContainer) -> None:
        if rc.exit is None:
            with contextlib.suppress(RuntimeFailure):
                await self.runtime.stop_container(
                    rc.container_id,
                    grace_seconds=float(self.static.pod.spec.termination_grace_period_seconds),
                )
        with contextlib.suppress(RuntimeFailure):
            await self.runtime.remove_container(rc.container_id)

    # --- probes -------------------------------------------------------------------------------

    def _start_probes(self, tg: asyncio.TaskGroup) -> None:
        spec = self.static.pod.spec
        probes = ProbeManager(
            pod=self.static.key,
            containers=spec.all_containers(),
            pod_ip=self._pod_ip or "127.0.0.1",
            exec_in_container=self._exec,
            on_event=self._probe_event,
            http=self._http,
            daemon_started_at=self._settings.restarted_at,
        )
        # Result changes wake the worker through its own queue.
        probes.results.add_listener(lambda u: self._queue.put_nowait(_ProbeChanged(u)))
        self._probes = probes
        self._probe_task = tg.create_task(probes.run(), name=f"probes {self.static.key}")

    async def _exec(self, container_id: str, command: Sequence[str], timeout: float) -> ExecResult:
        return await self.runtime.exec_in_container(
            ContainerID(container_id), command, timeout=timeout
        )

    def _probe_event(self, container: str, type_: EventType, reason: str, message: str) -> None:
        self.event(type_, reason, message, field_path=self._records[container].field_path)

    def _probe_changed(self, update: ProbeUpdate) -> None:
        rec = self._records.get(update.container_name)
        probes = self._probes
        if rec is None or probes is None or not rec.running:
            return
        if rec.container_id != update.container_id:
            return
        rec.started = probes.is_started(rec.name)
        rec.ready = probes.is_ready(rec.name)
        failed = probes.failed_probe(rec.name)
        if failed is None or rec.killing or self._terminating:
            return
        # kubelet computePodActions: a failed liveness or startup probe kills the container;
        # it is then restarted (or not) by the usual rules, backoff included.
        restart = rec.kind is ContainerKind.SIDECAR or (
            self.static.pod.spec.restart_policy != "Never"
        )
        message = f"Container {rec.name} failed {failed.value.lower()} probe"
        if rec.kind is ContainerKind.SIDECAR:
            # computeInitContainerActions words it differently, and without the suffix.
            message = f"Init container {rec.name} failed {failed.value.lower()} probe"
        elif restart:
            message += ", will be restarted"
        probe = rec.spec.liveness_probe if failed is ProbeKind.LIVENESS else rec.spec.startup_probe
        grace = float(self.static.pod.spec.termination_grace_period_seconds)
        if probe is not None and probe.termination_grace_period_seconds is not None:
            grace = float(probe.termination_grace_period_seconds)
        assert self._tg is not None
        rec.killing = True
        self._tg.create_task(
            self._kill(rec, grace=grace, message=message, drain=False),
            name=f"kill {self.static.key}/{rec.name}",
        )

    # --- the sync pass ------------------------------------------------------------------------

    async def _sync(self) -> _Progress:
        progress = _Progress()
        if self._finished or self._terminating:
            return progress
        if not self._initialized:
            self._initialized = await self._sync_init(progress)
            if not self._initialized:
                return progress
            # Show the finished init containers now: a postStart hook may hold this pass
            # (kubelet shows PodInitializing meanwhile, not the last init container running).
            self._publish()
        await self._sync_regular(progress)
        return progress

    async def _sync_init(self, progress: _Progress) -> bool:
        """Init containers strictly in order; True once every one has done its part."""
        policy = self.static.pod.spec.restart_policy
        for rec in self._init:
            if rec.kind is ContainerKind.SIDECAR:
                # A sidecar's part is to be running (and started): then the next one may go.
                if not rec.running:
                    await self._start_with_backoff(rec, progress)
                if not (rec.running and rec.started):
                    return False
                continue
            if rec.running:
                return False
            if rec.succeeded:
                continue
            if rec.exit is not None and policy == "Never":
                # A failed init container under Never fails the pod (kubelet kills it).
                await self._finish()
                return False
            await self._start_with_backoff(rec, progress)
            return False
        return True

    async def _sync_regular(self, progress: _Progress) -> None:
        policy = self.static.pod.spec.restart_policy
        will_run = False
        for rec in self._regular:
            if rec.running:
                will_run = True
            elif rec.instances == 0 or rec.exit is None:
                # Never ran, or every attempt so far failed before a process existed.
                will_run = True
                await self._start_with_backoff(rec, progress)
            elif should_restart(policy, rec.exit.exit_code):
                will_run = True
                await self._start_with_backoff(rec, progress)
        if not will_run:
            await self._finish()
            return
        for rec in self._init:
            if rec.kind is ContainerKind.SIDECAR and not rec.running:
                await self._start_with_backoff(rec, progress)

    async def _finish(self) -> None:
        """Nothing will run again (a completed or failed pod): stop the sidecars, in reverse."""
        self._finished = True
        await self._kill_all(reason_message=None)
        if self._admission is not None:
            self._admission.release(self.uid)  # a finished pod no longer holds its requests

    async def _start_with_backoff(self, rec: ContainerRecord, progress: _Progress) -> None:
        key = f"{self.uid}/{rec.name}"
        if rec.attempt_at is not None:
            remaining = self._backoff.remaining(key, rec.attempt_at)
            if remaining > 0:
                delay = format_go_duration(self._backoff.get(key))
                pod = self._format_pod()
                if rec.waiting_reason in ("ErrImagePull", "ImagePullBackOff"):
                    image_message = f'Back-off pulling image "{rec.spec.image}"'
                    rec.waiting_reason, rec.waiting_message = "ImagePullBackOff", image_message
                    if not rec.backoff_reported:
                        rec.backoff_reported = True
                        self.event("Normal", "BackOff", image_message, field_path=rec.field_path)
                    progress.wake_in.append(remaining)
                    return
                if rec.waiting_reason not in _KEPT_IN_BACKOFF:
                    rec.waiting_reason = "CrashLoopBackOff"
                    rec.waiting_message = (
                        f"back-off {delay} restarting failed container={rec.name} pod={pod}"
                    )
                if not rec.backoff_reported:
                    rec.backoff_reported = True
                    self.event(
                        "Warning",
                        "BackOff",
                        f"Back-off restarting failed container {rec.name} in pod {pod}",
                        field_path=rec.field_path,
                    )
                progress.wake_in.append(remaining)
                return
            self._backoff.next(key, rec.attempt_at)
            self._store.put(self.static.key, self._entry())  # persists the back-off
        await self._start(rec)
        if not rec.running:
            progress.wake_in.append(0.0)  # the attempt failed: decide again (backoff applies)

    async def _start(self, rec: ContainerRecord) -> None:
        spec = self.static.pod.spec
        try:
            config = self._container_config(rec)
        except ContainerConfigError as exc:
            self._failed_attempt(rec, "CreateContainerConfigError", str(exc))
            return
        except Exception as exc:
            error = self._bug(f"building the config of container {rec.name}", exc)
            self._failed_attempt(rec, "CreateContainerConfigError", error)
            return
        try:
            started = await self.runtime.start_container(self.sandbox, config)
        except ContainerConfigError as exc:
            self._failed_attempt(rec, "CreateContainerConfigError", str(exc))
            return
        except ImagePullError as exc:
            # kubelet: Warning Failed with the pull's own message, then "Error: ErrImagePull".
            self.event("Warning", "Failed", str(exc), field_path=rec.field_path)
            self._failed_attempt(rec, exc.reason, str(exc), event_message=exc.reason)
            return
        except StartFailure as exc:
            # The instance existed but its process never ran: StartError, exit code 128.
            stamp = now()
            rec.instances += 1
            rec.last_exit = rec.exit or rec.last_exit
            rec.exit = ContainerExit(
                exit_code=128,
                signal=None,
                reason=ExitReason.START_ERROR,
                message=str(exc),
                started_at=stamp,
                finished_at=stamp,
            )
            self._failed_attempt(rec, None, str(exc))
            return
        except RuntimeFailure as exc:
            self._failed_attempt(rec, "RunContainerError", str(exc))
            return
        except Exception as exc:
            # Not known to have started: a bug in the runtime, or input it could not take.
            error = self._bug(f"starting container {rec.name}", exc)
            self._failed_attempt(rec, "CreateContainerError", error)
            return
        # Waiting -> Running
        if rec.exit is not None:
            rec.last_exit = rec.exit
        rec.exit = None
        rec.instances += 1
        rec.container_id = started.container_id
        rec.running = True
        rec.started_at = started.started_at
        rec.waiting_reason = rec.waiting_message = None
        rec.backoff_reported = False
        rec.killing = False
        # Watched before anything else can go wrong: an instance nobody waits for is one whose
        # exit would go unnoticed.
        assert self._tg is not None
        self._tg.create_task(
            self._watch(rec.name, started.container_id),
            name=f"wait {self.static.key}/{rec.name}#{rec.restart_count}",
        )
        self.event("Normal", "Created", f"Created container: {rec.name}", field_path=rec.field_path)
        if self._probes is not None:
            self._probes.container_started(
                rec.name, container_id=started.container_id, started_at=started.started_at
            )
            rec.started = self._probes.is_started(rec.name)
            rec.ready = self._probes.is_ready(rec.name)
        else:
            rec.started = rec.ready = True
        lifecycle = rec.spec.lifecycle
        if lifecycle is not None and lifecycle.post_start is not None:
            # kubelet runs postStart before it calls the container started; a failure kills it.
            hook_error = await run_hook(
                lifecycle.post_start,
                container=rec.spec,
                pod=self._format_pod(),
                pod_ip=self._pod_ip or "127.0.0.1",
                exec_fn=self._exec_fn(started.container_id),
                http=self._http,
                timeout=float(spec.termination_grace_period_seconds) or 30.0,
            )
            if hook_error is not None:
                self.event("Warning", "FailedPostStartHook", hook_error, field_path=rec.field_path)
                await self._kill(
                    rec,
                    grace=float(spec.termination_grace_period_seconds),
                    message="FailedPostStartHook",
                    drain=False,
                    pre_stop=False,
                )
                return
        self.event("Normal", "Started", f"Started container {rec.name}", field_path=rec.field_path)

    def _container_config(self, rec: ContainerRecord) -> ContainerConfig:
        """What the runtime gets: the spec with env resolved and $(VAR) expanded."""
        env = resolve_env(
            pod_metadata=self.static.metadata,
            spec=self.static.pod.spec,
            container=rec.spec,
            node_name=self._settings.node_name,
            host_ip=self._settings.host_ip,
            pod_ip=self._pod_ip or "",
            allocatable=self._settings.allocatable,
        )
        command, args = expand_command(rec.spec.command, rec.spec.args, env=env)
        return ContainerConfig(
            container=rec.spec,
            kind=rec.kind,
            command=command,
            args=args,
            env=tuple(env),
            restart_count=rec.instances,
        )

    def _exec_fn(self, container_id: ContainerID) -> ExecFn:
        async def exec_fn(command: Sequence[str], timeout: float) -> ExecResult:
            return await self.runtime.exec_in_container(container_id, command, timeout=timeout)

        return exec_fn

    def _format_pod(self) -> str:
        """kubelet's format.Pod: name_namespace(uid)."""
        return f"{self.static.name}_{self.static.namespace}({self.uid})"

    def _failed_attempt(
        self,
        rec: ContainerRecord,
        reason: str | None,
        message: str,
        *,
        event_message: str | None = None,
    ) -> None:
        rec.attempt_at = self._clock()
        rec.backoff_reported = False
        rec.waiting_reason = reason
        rec.waiting_message = message if reason else None
        self.event(
            "Warning", "Failed", f"Error: {event_message or message}", field_path=rec.field_path
        )
        self.log.warning("container %s: %s", rec.name, message)

    async def _watch(self, name: str, container_id: ContainerID) -> None:
        try:
            exit = await self.runtime.wait_container(container_id)
        except RuntimeFailure as exc:
            # The engine lost the container: kubelet reports it as ContainerStatusUnknown.
            exit = _lost(f"The container could not be located when the pod was terminated: {exc}")
        except Exception as exc:
            # Whether it still runs is unknown, and nothing would see it end: stop it, so that
            # it is restarted under supervision rather than left running unwatched.
            error = self._bug(f"waiting for container {name}", exc)
            try:
                await self.runtime.stop_container(
                    container_id, grace_seconds=self._settings.minimum_grace_period
                )
            except Exception as stop_error:
                self._bug(f"stopping container {name} after its wait failed", stop_error)
            exit = _lost(f"The container was stopped because waiting for it failed: {error}")
        self._queue.put_nowait(_Exited(name, container_id, exit))

    # --- messages -----------------------------------------------------------------------------

    async def _wait(self, timeout: float | None) -> None:
        try:
            async with asyncio.timeout(timeout):
                message = await self._queue.get()
        except TimeoutError:
            return
        await self._handle_safely(message)
        while not self._queue.empty():
            await self._handle_safely(self._queue.get_nowait())

    async def _handle_safely(self, message: _Message) -> None:
        try:
            await self._handle(message)
        except Exception as exc:
            self._bug(f"handling {message}", exc)

    async def _handle(self, message: _Message) -> None:
        if isinstance(message, _Stop | _RoomFreed):
            return
        if isinstance(message, _ProbeChanged):
            self._probe_changed(message.update)
            return
        rec = self._records[message.name]
        if rec.container_id != message.container_id:
            return
        # Running -> Terminated
        rec.running = rec.ready = rec.started = False
        rec.exit = message.exit
        rec.attempt_at = self._clock()
        rec.backoff_reported = False
        rec.waiting_reason = rec.waiting_message = None
        rec.killing = False
        if message.exit.reason is ExitReason.OOM_KILLED:
            # kubelet puts a container's OOM only in its status (its SystemOOM event is for the
            # node); minikubelet also says it as an event, where people look first.
            limit = (rec.spec.resources.limits or {}).get("memory") if rec.spec.resources else None
            self.event(
                "Warning",
                "OOMKilled",
                f"Container {rec.name} was killed by the kernel for exceeding its memory limit"
                + (f" of {limit}" if limit is not None else ""),
                field_path=rec.field_path,
            )
        if self._probes is not None:
            self._probes.container_exited(
                rec.name, container_id=message.container_id, final=not self._will_restart(rec)
            )
        self.log.info(
            "container %s exited with %d (%s)",
            rec.name,
            message.exit.exit_code,
            message.exit.reason.value,
        )
        try:
            await self.runtime.remove_container(message.container_id)
        except RuntimeFailure as exc:
            self.log.debug("%s: removing container %s: %s", self.static.key, rec.name, exc)
        except Exception as exc:
            self._bug(f"removing container {rec.name}", exc)

    # --- termination --------------------------------------------------------------------------

    async def _kill(
        self,
        rec: ContainerRecord,
        *,
        grace: float,
        message: str | None,
        drain: bool = True,
        pre_stop: bool = True,
    ) -> None:
        """kubelet killContainer: the Killing event, preStop within the grace period, then
        SIGTERM with what is left of it (at least minimumGracePeriod), then SIGKILL."""
        container_id = rec.container_id
        if not rec.running or container_id is None:
            return
        rec.killing = True
        self.event(
            "Normal",
            "Killing",
            message or f"Stopping container {rec.name}",
            field_path=rec.field_path,
        )
        lifecycle = rec.spec.lifecycle
        if pre_stop and lifecycle is not None and lifecycle.pre_stop is not None:
            began = self._clock()
            try:
                async with asyncio.timeout(grace):
                    error = await run_hook(
                        lifecycle.pre_stop,
                        container=rec.spec,
                        pod=self._format_pod(),
                        pod_ip=self._pod_ip or "127.0.0.1",
                        exec_fn=self._exec_fn(container_id),
                        http=self._http,
                        timeout=grace,
                    )
            except TimeoutError:
                error = None
                self.log.info("container %s: preStop hook used the whole grace period", rec.name)
            if error is not None:
                self.event("Warning", "FailedPreStopHook", error, field_path=rec.field_path)
            grace = max(grace - (self._clock() - began), self._settings.minimum_grace_period)
        try:
            await self.runtime.stop_container(container_id, grace_seconds=grace)
        except RuntimeFailure as exc:
            self.log.warning("stopping container %s: %s", rec.name, exc)
            return
        except Exception as exc:
            # The pod's stop_pod, at the latest, kills what is left.
            self._bug(f"stopping container {rec.name}", exc)
            return
        if drain:
            # The waiter delivers the exit; take it now so that status is right at once.
            await self._drain_exits(rec)

    async def _drain_exits(self, rec: ContainerRecord) -> None:
        loop_deadline = self._clock() + 5.0
        while rec.running and self._clock() < loop_deadline:
            try:
                async with asyncio.timeout(max(0.0, loop_deadline - self._clock())):
                    message = await self._queue.get()
            except TimeoutError:
                break
            await self._handle_safely(message)

    async def _kill_all(self, *, reason_message: str | None) -> None:
        """Regular (and plain init) containers in parallel, then sidecars in reverse order."""
        grace = float(self.static.pod.spec.termination_grace_period_seconds)
        first = [r for r in [*self._init, *self._regular] if r.kind is not ContainerKind.SIDECAR]
        await asyncio.gather(
            *(self._kill(r, grace=grace, message=reason_message) for r in first if r.running)
        )
        for rec in reversed([r for r in self._init if r.kind is ContainerKind.SIDECAR]):
            await self._kill(rec, grace=grace, message=reason_message)
        self._publish()

    async def _terminate(self) -> None:
        self._terminating = True
        try:
            if self._probes is not None:
                self._probes.stop_liveness_and_startup()
            self._publish()
            await self._kill_all(reason_message=None)
        except Exception as exc:
            self._bug("stopping the pod's containers", exc)  # stop_pod below kills the rest
        finally:
            if self._probe_task is not None:
                self._probe_task.cancel()
            if self._owns_http:
                await self._http.aclose()
            try:
                await self.runtime.stop_pod(self.sandbox)
            except RuntimeFailure as exc:
                self.log.warning("%s: stopping the pod sandbox: %s", self.static.key, exc)
            except Exception as exc:
                self._bug("stopping the pod sandbox", exc)
            self.log.info("pod stopped")

    # --- status -------------------------------------------------------------------------------

    def _container_status(self, rec: ContainerRecord) -> ContainerStatus:
        return container_status(rec, restarting=rec.exit is not None and self._will_restart(rec))

    def _will_restart(self, rec: ContainerRecord) -> bool:
        """Whether an exited container is waiting to run again (shown as Waiting)."""
        if self._finished or self._terminating or rec.exit is None:
            return False
        if rec.kind is ContainerKind.SIDECAR:
            return True
        if rec.kind is ContainerKind.INIT:
            return rec.exit.exit_code != 0 and self.static.pod.spec.restart_policy != "Never"
        return should_restart(self.static.pod.spec.restart_policy, rec.exit.exit_code)

    def status(self) -> PodStatus:
        spec = self.static.pod.spec
        if self._unschedulable is not None:
            # Not admitted: what an unschedulable pod shows on a cluster.
            stamp = now()
            old = next((c for c in self._conditions if c.type == "PodScheduled"), None)
            self._conditions = [
                PodCondition(
                    type="PodScheduled",
                    status="False",
                    reason="Unschedulable",
                    message=self._unschedulable,
                    last_transition_time=old.last_transition_time
                    if old is not None and old.status == "False"
                    else stamp,
                )
            ]
            return PodStatus(phase="Pending", conditions=self._conditions, qos_class=self._qos)
        init_statuses = [self._container_status(r) for r in self._init]
        statuses = [self._container_status(r) for r in self._regular]
        phase = get_phase(spec, init_statuses, statuses)
        stamp = now()
        self._conditions = get_conditions(
            spec=spec,
            phase=phase,
            init_statuses=init_statuses,
            statuses=statuses,
            sandbox_ready=self._pod_ip is not None and not self._terminating,
            previous=self._conditions,
            now=stamp,
        )
        host_ip = self._settings.host_ip
        return PodStatus(
            phase=phase,
            conditions=self._conditions,
            host_ip=host_ip,
            host_ips=[PodIP(ip=host_ip)],
            pod_ip=self._pod_ip,
            pod_ips=[PodIP(ip=self._pod_ip)] if self._pod_ip else None,
            start_time=self._start_time,
            init_container_statuses=init_statuses if self._init else None,
            container_statuses=statuses,
            qos_class=self._qos,
        )

    def _entry(self) -> PodEntry:
        metadata = dump(self.static.metadata)
        extra: dict[str, JsonValue] = {}
        if self._cgroup_path is not None:
            extra[CGROUP_ANNOTATION] = self._cgroup_path
        if (backoff := self._backoff_annotation()) is not None:
            extra[BACKOFF_ANNOTATION] = backoff
        if extra:
            annotations = dict(metadata.get("annotations") or {})
            annotations.update(extra)
            metadata["annotations"] = annotations
        if self._terminating:
            metadata["deletionTimestamp"] = format_time(now())
            metadata["deletionGracePeriodSeconds"] = (
                self.static.pod.spec.termination_grace_period_seconds
            )
        return PodEntry(
            view=PodView(metadata=metadata, spec=dump(self.static.pod.spec), status=self.status()),
            runtime=self.runtime.name,
            source=self.static.source,
        )

    def _publish(self) -> None:
        if self._terminating:
            entry = self._store.get(self.static.key)
            if entry is not None and "deletionTimestamp" not in entry.view.metadata:
                self._store.put(self.static.key, self._entry())
                return
        self._store.set_status(self.static.key, self.status())

    # --- logs ---------------------------------------------------------------------------------

    def logs(
        self, container: str, *, previous: bool, tail_lines: int | None, follow: bool
    ) -> AsyncIterator[bytes]:
        rec = self._records.get(container)
        if rec is None or rec.instances == 0:
            raise LookupError(
                f'container "{container}" in pod "{self.static.name}" is waiting to start'
                if rec is not None
                else f"container {container} is not valid for pod {self.static.name}"
            )
        if previous and rec.instances < 2:
            raise LookupError(
                f'previous terminated container "{container}" in pod "{self.static.name}" not found'
            )
        return self.runtime.logs(
            self.sandbox,
            container,
            restart_count=rec.instances - 1,
            previous=previous,
            tail_lines=tail_lines,
            follow=follow,
        )

    def container_names(self) -> list[str]:
        return list(self._records)
