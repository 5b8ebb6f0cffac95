"""Probe workers: one per (pod, container, probe kind), and the per-pod manager that owns them.

``ProbeWorker`` is kubelet's ``prober/worker.go``: every periodSeconds it decides whether to
probe (a container instance exists, is running, is past initialDelaySeconds, and the startup
gate allows this kind), makes one attempt through its ``ProbeHandler`` (an errored attempt is
retried up to 3 times, then discarded), counts identical results in a row and writes the cached
result only when the run reaches failureThreshold or successThreshold. After a liveness or
startup failure it holds until a new container instance appears. The decision is
``probe_once()`` (kubelet's doProbe), a plain awaitable that tests call directly; ``run()`` is
only the loop around it: ticks on ``clock()`` (loop.time by default) without drift, with an
interruptible sleep for ``stop()`` and ``trigger()``.

``ProbeManager`` is ``prober_manager.go`` for one pod: it builds the workers from the spec,
runs them as named tasks in one TaskGroup, is told by the pod worker which container instance
is current, and answers ``is_started`` / ``is_ready`` / ``failed_probe`` from the results
cache. Probes never act on a container: they write results and events, and the pod worker
decides what to restart (it listens on ``results``: ``results.add_listener``).

Failures stay in the probe: a handler that raises (whatever it raises) is an errored attempt,
like any other UNKNOWN outcome, and is logged with its traceback as a bug; an exception in a
worker's own bookkeeping is logged and the worker carries on at its next tick. Neither ends the
manager, the pod worker or the daemon.

Events use kubelet's exact texts (prober.go): Warning ``Unhealthy`` ``Liveness probe failed:
<output>``, Warning ``Unhealthy`` ``Readiness probe errored and resulted in unknown state:
<error>``, Warning ``ProbeWarning`` ``Startup probe warning: <output>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType

from minikubelet.api.errors import MinikubeletError, RuntimeFailure
from minikubelet.api.model import Container, EventType, Probe
from minikubelet.probes.handlers import (
    ExecFn,
    ExecHandler,
    ExecOutput,
    HTTPGetHandler,
    HTTPProber,
    ProbeHandler,
    ProbeOutcome,
    ProbeResult,
    TCPSocketHandler,
    static_env,
)
from minikubelet.probes.results import ProbeKind, ProbeUpdate, ResultsCache

log = logging.getLogger(__name__)

MAX_PROBE_RETRIES = 3
"""Attempts per tick while the handler errors (kubelet's maxProbeRetries)."""

BUG_RETRY = 10.0
"""Seconds a worker waits after its own tick failed (a bug) before it tries again."""

INITIAL_RESULTS = {
    ProbeKind.READINESS: ProbeResult.FAILURE,  # not ready until proven
    ProbeKind.LIVENESS: ProbeResult.SUCCESS,  # alive until proven dead
    ProbeKind.STARTUP: ProbeResult.UNKNOWN,  # neither: the container is simply not started yet
}

EventCallback = Callable[[EventType, str, str], None]
"""(type, reason, message) for one container's events."""

ContainerEventCallback = Callable[[str, EventType, str, str], None]
"""(container name, type, reason, message): the pod worker records it with the container's
fieldPath."""

Sleeper = Callable[[float, asyncio.Event], Awaitable[None]]
"""Sleep up to the delay, returning early when the event is set."""

ExecInContainer = Callable[[str, Sequence[str], float], Awaitable[ExecOutput]]
"""(container id, command, timeout) -> output; raises TimeoutError on timeout. The pod worker
passes ``lambda cid, cmd, t: runtime.exec_in_container(ContainerID(cid), cmd, timeout=t)``."""

HandlerFactory = Callable[[Container, ProbeKind, Probe], ProbeHandler]


async def interruptible_sleep(delay: float, wakeup: asyncio.Event) -> None:
    """Sleep for delay seconds of loop time, or until wakeup is set."""
    if delay <= 0:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(delay):
            await wakeup.wait()


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ContainerInstance:
    container_id: str  # the runtime's ID for this instance
    started_at: float  # clock() time at which it started running (initialDelaySeconds counts)
    running: bool  # False once it has exited
    final: bool = False  # exited, and no instance will follow: the worker may end


class ProbeWorker:
    """Periodic probing of one container (all its instances) for one probe kind."""

    def __init__(
        self,
        *,
        kind: ProbeKind,
        probe: Probe,
        handler: ProbeHandler,
        results: ResultsCache,
        container_name: str,
        on_event: EventCallback,
        is_started: Callable[[], bool],
        pod: str = "",
        daemon_started_at: float | None = None,
        clock: Callable[[], float] = _loop_time,
        sleeper: Sleeper = interruptible_sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.kind = kind
        self.probe = probe
        self._handler = handler
        self._results = results
        self.container_name = container_name
        self._on_event = on_event
        self._is_started = is_started
        self._daemon_started_at = daemon_started_at
        self._clock = clock
        self._sleeper = sleeper
        self._rng = rng
        self.log = logging.LoggerAdapter(
            log, {"pod": pod, "container": container_name, "probe": kind.value}
        )

        self._instance: ContainerInstance | None = None  # latest instance the pod worker named
        self._container_id: str | None = None  # the instance the cache holds our result for
        self._last: ProbeResult | None = None  # last counted result (SUCCESS or FAILURE)
        self._run = 0  # how many times in a row _last came back
        self._on_hold = False  # liveness/startup failed: wait for a new instance
        self._stopping = False  # stop() was called: run() ends at its next wakeup
        self._triggered = False  # trigger() was called: probe now, restart the period
        self._jitter_done = False  # the first-probe jitter was decided
        self._wakeup = asyncio.Event()

    # --- what the manager (pod worker) tells us --------------------------------------------

    def container_started(
        self, container_id: str, *, started_at: float, initial: ProbeResult | None = None
    ) -> None:
        """A new instance is running (started_at in clock() time). Takes effect at once.
        ``initial``: the result to start from instead of the kind's initial one (an instance
        adopted after a daemon restart keeps the result it had)."""
        current = self._instance
        if current is not None and current.container_id == container_id and current.running:
            return  # told twice about the same instance
        # (none or exited) -> running
        self._instance = ContainerInstance(container_id, started_at, running=True)
        self._switch_to(self._instance, initial)

    def container_stopped(self, *, final: bool = False) -> None:
        """The current instance exited; final means no instance will follow."""
        if self._instance is not None:
            # running -> exited (final: and nothing will follow)
            self._instance = replace(self._instance, running=False, final=final)

    def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()

    def trigger(self) -> None:
        """Probe now instead of at the next tick (kubelet's manualTriggerCh)."""
        self._triggered = True
        self._wakeup.set()

    @property
    def on_hold(self) -> bool:
        return self._on_hold

    # --- the decision ------------------------------------------------------------------------

    def _switch_to(self, inst: ContainerInstance, initial: ProbeResult | None = None) -> None:
        if inst.container_id == self._container_id:
            return
        if self._container_id is not None:
            self._results.remove(self._container_id, self.kind)
        self._container_id = inst.container_id
        # Counting starts over for a new instance (kubelet carries the old run over; a new
        # instance inheriting its predecessor's successes would skip successThreshold).
        self._last, self._run = None, 0
        self._on_hold = False  # a new container: resume probing
        self._set(initial or INITIAL_RESULTS[self.kind])

    def _set(self, result: ProbeResult) -> None:
        assert self._container_id is not None
        self._results.set(
            container_name=self.container_name,
            container_id=self._container_id,
            kind=self.kind,
            result=result,
        )

    async def probe_once(self) -> bool:
        """One tick (kubelet doProbe). Returns whether the worker should keep going."""
        if self._stopping:
            return False
        inst = self._instance
        if inst is None:
            return True  # no instance yet: wait for more information
        self._switch_to(inst)
        if self._on_hold:
            return True
        if not inst.running:
            self._set(ProbeResult.FAILURE)
            return not inst.final
        if self._clock() - inst.started_at < self.probe.initial_delay_seconds:
            return True
        if self._is_started():
            if self.kind is ProbeKind.STARTUP:
                return True  # started: the startup probe idles (it resumes for a new instance)
        elif self.kind is not ProbeKind.STARTUP:
            return True  # until started, only the startup probe runs

        outcome = await self._attempt()
        if self._stopping:
            return False
        if self._instance is not inst:
            return True  # the instance changed or exited while we probed: not its result
        if outcome.result is ProbeResult.UNKNOWN:
            self.log.info("probe errored: %s", outcome.output)
            self._event(
                "Unhealthy",
                f"{self.kind.value} probe errored and resulted in unknown state: {outcome.output}",
            )
            return True  # discarded: neither counted nor cached
        if outcome.result is ProbeResult.WARNING:
            self._event("ProbeWarning", f"{self.kind.value} probe warning: {outcome.output}")
            result = ProbeResult.SUCCESS
        elif outcome.result is ProbeResult.FAILURE:
            self.log.info("probe failed: %s", outcome.output)
            self._event("Unhealthy", f"{self.kind.value} probe failed: {outcome.output}")
            result = ProbeResult.FAILURE
        else:
            result = ProbeResult.SUCCESS

        if result is self._last:
            self._run += 1
        else:
            self._last, self._run = result, 1
        threshold = (
            self.probe.failure_threshold
            if result is ProbeResult.FAILURE
            else self.probe.success_threshold
        )
        if self._run < threshold:
            return True  # below threshold: the cached result stays
        self._set(result)
        if result is ProbeResult.FAILURE and self.kind in (ProbeKind.LIVENESS, ProbeKind.STARTUP):
            # probing -> on hold: the container will be restarted, and probing it further
            # only races its stop. A new instance resumes probing (_switch_to).
            self._on_hold = True
            self._run = 0
        return True

    async def _attempt(self) -> ProbeOutcome:
        outcome = await self._probe()
        for _ in range(MAX_PROBE_RETRIES - 1):
            if outcome.result is not ProbeResult.UNKNOWN:
                break
            outcome = await self._probe()
        return outcome

    async def _probe(self) -> ProbeOutcome:
        """One handler call; an exception from it is an errored attempt (UNKNOWN)."""
        try:
            return await self._handler.probe()
        except Exception as exc:
            if isinstance(exc, MinikubeletError):
                self.log.info("probe errored: %s", exc)
                return ProbeOutcome(ProbeResult.UNKNOWN, str(exc))
            self.log.error("probe handler raised (a bug)", exc_info=exc)
            return ProbeOutcome(ProbeResult.UNKNOWN, f"internal error: {type(exc).__name__}: {exc}")

    def _event(self, reason: str, message: str) -> None:
        self._on_event("Warning", reason, message)

    # --- the loop ----------------------------------------------------------------------------

    def _jitter(self) -> float:
        """kubelet's worker.go: within one period of the daemon's start, the first probe waits
        a random part of a period, so that a daemon bringing many pods back does not probe them
        all in the same instant. ``daemon_started_at`` is only given after a restart."""
        inst, started = self._instance, self._daemon_started_at
        if inst is None or started is None:
            return 0.0
        period = self.probe.period_seconds
        if self._clock() - started < period:
            return self._rng() * period
        return 0.0

    async def _sleep_until(self, deadline: float) -> None:
        delay = deadline - self._clock()
        if delay > 0 and not self._wakeup.is_set():
            await self._sleeper(delay, self._wakeup)
        self._wakeup.clear()

    async def run(self) -> None:
        """probe_once() every periodSeconds until it says stop or stop() is called."""
        try:
            tick: float | None = self._clock()
            while tick is not None and not self._stopping:
                try:
                    tick = await self._tick(tick)
                except Exception as exc:
                    # A bug in this worker, not in the container: say so, and try again later.
                    self.log.error(
                        "probe worker failed (a bug); trying again in %gs", BUG_RETRY, exc_info=exc
                    )
                    await self._sleep_until(self._clock() + BUG_RETRY)
                    tick = self._clock()
        finally:
            if self._container_id is not None:
                self._results.remove(self._container_id, self.kind)

    async def _tick(self, tick: float) -> float | None:
        """One period: probe, then sleep until the next tick on the grid, which is returned
        (None: the worker is done)."""
        period = float(self.probe.period_seconds)
        if not self._jitter_done and self._instance is not None:
            self._jitter_done = True
            delay = self._jitter()
            if delay > 0:
                await self._sleep_until(self._clock() + delay)
                tick = self._clock()
                if self._stopping:
                    return None
        if not await self.probe_once():
            return None
        # The next tick on the original grid; ticks missed by a slow probe are dropped.
        now = self._clock()
        tick += period * max(1, int((now - tick) // period) + 1)
        await self._sleep_until(tick)
        if self._triggered:
            self._triggered = False
            tick = self._clock()
        return tick


@dataclass(slots=True)
class _Current:
    container_id: str  # the instance the pod worker last reported
    running: bool  # False after it exited


class ProbeManager:
    """The probe workers of one pod, and the answers the pod worker needs from them.

    How the pod worker drives it:

    - construct after the sandbox exists (the pod IP is known), then either run ``run()`` as a
      task of the pod worker's TaskGroup, or use ``async with manager:``;
    - ``container_started(name, container_id=, started_at=)`` for every new instance (also for
      instances adopted after a daemon restart), ``container_exited(name, container_id=,
      final=)`` when one exits;
    - listen on ``results`` (``add_listener``, called on every change) and then read
      ``failed_probe``/``is_started``/``is_ready``;
    - ``stop_liveness_and_startup()`` when the pod starts terminating, ``aclose()`` (or cancel
      ``run()``) when it is gone.
    """

    def __init__(
        self,
        *,
        pod: str,
        containers: Sequence[Container],
        pod_ip: str,
        exec_in_container: ExecInContainer,
        on_event: ContainerEventCallback,
        http: HTTPProber | None = None,
        daemon_started_at: float | None = None,
        clock: Callable[[], float] = _loop_time,
        wall_clock: Callable[[], datetime] = _utcnow,
        sleeper: Sleeper = interruptible_sleep,
        rng: Callable[[], float] = random.random,
        handler_factory: HandlerFactory | None = None,
    ) -> None:
        self.pod = pod
        self.results = ResultsCache()
        self._pod_ip = pod_ip
        self._exec = exec_in_container
        self._owns_http = http is None
        self._http = http or HTTPProber()
        self._clock = clock
        self._wall_clock = wall_clock
        self._current: dict[str, _Current] = {}
        self._workers: dict[tuple[str, ProbeKind], ProbeWorker] = {}
        self._task: asyncio.Task[None] | None = None
        factory = handler_factory or self._make_handler
        for container in containers:
            for kind, probe in (
                (ProbeKind.STARTUP, container.startup_probe),
                (ProbeKind.READINESS, container.readiness_probe),
                (ProbeKind.LIVENESS, container.liveness_probe),
            ):
                if probe is None:
                    continue
                self._workers[container.name, kind] = ProbeWorker(
                    kind=kind,
                    probe=probe,
                    handler=factory(container, kind, probe),
                    results=self.results,
                    container_name=container.name,
                    on_event=functools.partial(on_event, container.name),
                    is_started=functools.partial(self.is_started, container.name),
                    pod=pod,
                    daemon_started_at=daemon_started_at,
                    clock=clock,
                    sleeper=sleeper,
                    rng=rng,
                )
        self.results.add_listener(self._on_update)

    def _make_handler(self, container: Container, kind: ProbeKind, probe: Probe) -> ProbeHandler:
        timeout = float(probe.timeout_seconds)
        if probe.exec is not None:
            return ExecHandler(
                probe.exec.command or [],
                env=static_env(container),
                exec_fn=self._exec_fn(container.name),
                timeout=timeout,
            )
        if probe.http_get is not None:
            return HTTPGetHandler(
                probe.http_get,
                container=container,
                pod_ip=self._pod_ip,
                timeout=timeout,
                client=self._http,
            )
        if probe.tcp_socket is not None:
            return TCPSocketHandler(
                probe.tcp_socket, container=container, pod_ip=self._pod_ip, timeout=timeout
            )
        if probe.grpc is not None:
            # grpcio costs ~18 MB of RSS: load it only for pods that have a grpc probe.
            from minikubelet.probes.grpc_probe import GRPCHandler

            return GRPCHandler(probe.grpc, pod_ip=self._pod_ip, timeout=timeout)
        raise ValueError(f"{kind.value} probe of {container.name} has no handler")

    def _exec_fn(self, name: str) -> ExecFn:
        async def exec_in_current(command: Sequence[str], timeout: float) -> ExecOutput:
            current = self._current.get(name)
            if current is None or not current.running:
                raise RuntimeFailure(f"container {name} is not running")
            return await self._exec(current.container_id, command, timeout)

        return exec_in_current

    def _on_update(self, update: ProbeUpdate) -> None:
        # Kubelet's status sync triggers the readiness probe while a container is not ready;
        # the moment that matters is a startup probe passing.
        if update.kind is ProbeKind.STARTUP and update.result is ProbeResult.SUCCESS:
            worker = self._workers.get((update.container_name, ProbeKind.READINESS))
            if worker is not None:
                worker.trigger()

    # --- container instances -----------------------------------------------------------------

    def container_started(
        self,
        name: str,
        *,
        container_id: str,
        started_at: datetime,
        started: bool = False,
        ready: bool = False,
    ) -> None:
        """A new instance of container name is running since started_at (wall clock).

        ``started``/``ready``: what an instance adopted after a daemon restart was before it
        (the persisted status): its startup and readiness results start from success instead
        of the initial ones, so that a ready container does not turn not-ready for a period
        just because the daemon restarted. The probes confirm or overturn it on their first
        ticks, with their usual thresholds."""
        self._current[name] = _Current(container_id, running=True)
        age = max(0.0, (self._wall_clock() - started_at).total_seconds())
        since = self._clock() - age
        seeded = {
            ProbeKind.STARTUP: ProbeResult.SUCCESS if started else None,
            ProbeKind.READINESS: ProbeResult.SUCCESS if ready and started else None,
        }
        for kind in ProbeKind:
            worker = self._workers.get((name, kind))
            if worker is not None:
                worker.container_started(container_id, started_at=since, initial=seeded.get(kind))
        readiness = self._workers.get((name, ProbeKind.READINESS))
        if readiness is not None and not ready:
            readiness.trigger()

    def container_exited(self, name: str, *, container_id: str, final: bool = False) -> None:
        """That instance exited; final: none will follow (restartPolicy, or the pod is done)."""
        current = self._current.get(name)
        if current is None or current.container_id != container_id:
            return  # an older instance; the current one is unaffected
        current.running = False
        for kind in ProbeKind:
            worker = self._workers.get((name, kind))
            if worker is not None:
                worker.container_stopped(final=final)

    # --- answers -----------------------------------------------------------------------------

    def is_started(self, name: str) -> bool:
        """Running, and its startup probe succeeded (or it has none)."""
        current = self._current.get(name)
        if current is None or not current.running:
            return False
        result = self.results.get(current.container_id, ProbeKind.STARTUP)
        if result is not None:
            return result is ProbeResult.SUCCESS
        return (name, ProbeKind.STARTUP) not in self._workers

    def is_ready(self, name: str) -> bool:
        """Started, and its readiness probe succeeded (or it has none)."""
        if not self.is_started(name):
            return False
        current = self._current[name]
        result = self.results.get(current.container_id, ProbeKind.READINESS)
        if result is not None:
            return result is ProbeResult.SUCCESS
        return (name, ProbeKind.READINESS) not in self._workers

    def failed_probe(self, name: str) -> ProbeKind | None:
        """LIVENESS or STARTUP if the running instance failed that probe: kill and restart it
        (kubelet computePodActions: ``Container <c> failed liveness probe``)."""
        current = self._current.get(name)
        if current is None or not current.running:
            return None
        for kind in (ProbeKind.LIVENESS, ProbeKind.STARTUP):
            if self.results.get(current.container_id, kind) is ProbeResult.FAILURE:
                return kind
        return None

    def worker(self, name: str, kind: ProbeKind) -> ProbeWorker | None:
        return self._workers.get((name, kind))

    # --- lifecycle ---------------------------------------------------------------------------

    def stop_liveness_and_startup(self) -> None:
        """The pod is terminating: no more restarts for failed probes; readiness carries on."""
        for (_, kind), worker in list(self._workers.items()):
            if kind is not ProbeKind.READINESS:
                worker.stop()

    def stop(self) -> None:
        for worker in list(self._workers.values()):
            worker.stop()

    async def _run_worker(self, key: tuple[str, ProbeKind], worker: ProbeWorker) -> None:
        try:
            await worker.run()
        finally:
            # Like kubelet's removeWorker: a finished worker no longer gates started/ready.
            if self._workers.get(key) is worker:
                del self._workers[key]

    async def run(self) -> None:
        """Run every worker as a named task until all end (stop()) or this is cancelled."""
        try:
            async with asyncio.TaskGroup() as tg:
                for key, worker in list(self._workers.items()):
                    name, kind = key
                    tg.create_task(
                        self._run_worker(key, worker),
                        name=f"probe {self.pod}/{name}/{kind.name.lower()}",
                    )
        finally:
            if self._owns_http:
                await self._http.aclose()

    async def __aenter__(self) -> ProbeManager:
        self._task = asyncio.create_task(self.run(), name=f"probes {self.pod}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop and wait for every worker (cancelling probes in flight). A worker's bug is
        re-raised here; a cancellation of the caller propagates."""
        self.stop()
        task, self._task = self._task, None
        if task is None:
            if self._owns_http:
                await self._http.aclose()
            return
        task.cancel()
        await asyncio.wait({task})
        bug = None if task.cancelled() else task.exception()
        if bug is not None:
            raise bug

    def __repr__(self) -> str:
        return f"<ProbeManager {self.pod} workers={len(self._workers)}>"
