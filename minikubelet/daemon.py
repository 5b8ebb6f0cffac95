"""The daemon: one root TaskGroup for the manifest source, the pods and the HTTP API.

Start-up order: state dir, status store and event log (reloaded from the last run), runtimes,
the reconciler, the HTTP API, and last the manifest source, whose first snapshot starts the pods.
Shutdown (SIGTERM or SIGINT) runs the other way: stop watching manifests, stop every pod
gracefully and in parallel (each within its terminationGracePeriodSeconds), close the API, flush
status and events. A worker that fails is a bug: it stops the daemon with an error rather than
leave a pod silently unsupervised.

Restart recovery is not built yet: stopping the daemon stops its pods, so that nothing is left
running unsupervised. Containers already run in their own sessions, and each instance is
recorded in the state dir, so that a later daemon can adopt them instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from decimal import Decimal

import psutil

from minikubelet.api.identity import DesiredSet, StaticPod
from minikubelet.api.model import EventType, ObjectReference
from minikubelet.config import DaemonConfig
from minikubelet.pods.admission import Admission
from minikubelet.pods.reconciler import Reconciler
from minikubelet.pods.worker import PodWorker, WorkerSettings
from minikubelet.runtime.base import ContainerConfig, ContainerKind, PodSandboxConfig, Runtime
from minikubelet.runtime.podman import ImageEventSink, PodmanRuntime
from minikubelet.runtime.process import ProcessRuntime
from minikubelet.server.app import make_app, serve
from minikubelet.source.manifests import ManifestSource
from minikubelet.status.events import EventRecorder
from minikubelet.status.store import StatusStore

log = logging.getLogger(__name__)

SHUTDOWN_SLACK = 10.0  # seconds beyond the longest grace period before pods are cancelled


def node_allocatable(cfg: DaemonConfig) -> dict[str, Decimal]:
    """kubelet's allocatable: capacity minus systemReserved, kubeReserved and evictionHard.
    Admission fits pods into it; resourceFieldRef falls back to it when there is no limit."""
    cpu = Decimal(os.cpu_count() or 1) - cfg.system_reserved_cpu - cfg.kube_reserved_cpu
    memory = (
        Decimal(psutil.virtual_memory().total)
        - cfg.system_reserved_memory
        - cfg.kube_reserved_memory
        - cfg.eviction_hard_memory
    )
    return {
        "cpu": max(cpu, Decimal(0)),
        "memory": max(memory, Decimal(0)),
        "ephemeral-storage": Decimal(psutil.disk_usage(str(cfg.state_dir)).total),
    }


def node_ip() -> str:
    """The node's primary address: the first global IPv4 address of an interface that is up."""
    stats = psutil.net_if_stats()
    for name, addrs in psutil.net_if_addrs().items():
        if name in stats and not stats[name].isup:
            continue
        for addr in addrs:
            if addr.family.name != "AF_INET":
                continue
            ip = ipaddress.ip_address(addr.address)
            if not ip.is_loopback and not ip.is_link_local:
                return str(ip)
    return "127.0.0.1"


def _image_event_sink(events: EventRecorder) -> ImageEventSink:
    """Pulling/Pulled/Failed events from a runtime that has images, on the container."""

    def record(
        pod: PodSandboxConfig,
        config: ContainerConfig,
        type_: EventType,
        reason: str,
        message: str,
    ) -> None:
        group = "containers" if config.kind is ContainerKind.REGULAR else "initContainers"
        events.record(
            ObjectReference(
                kind="Pod",
                namespace=pod.namespace,
                name=pod.name,
                uid=pod.uid,
                field_path=f"spec.{group}{{{config.container.name}}}",
            ),
            type=type_,
            reason=reason,
            message=message,
        )

    return record


class _Runtimes:
    """The runtimes this daemon can run pods on, by runtimeClassName."""

    def __init__(self, runtimes: dict[str, Runtime], default: str) -> None:
        self._runtimes = runtimes
        self.default = default

    def for_pod(self, static: StaticPod) -> Runtime:
        name = static.pod.spec.runtime_class_name or self.default
        return self._runtimes[name]

    def available(self) -> list[str]:
        return sorted(self._runtimes)


def _use_pidfd_child_watcher() -> None:
    """On 3.11 asyncio waits for each child in a thread of its own; pidfds need none.
    (3.12 picks pidfds by itself and deprecates the watcher API.)"""
    if sys.version_info >= (3, 12):
        return
    try:
        watcher = asyncio.PidfdChildWatcher()
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return  # an old kernel: keep the threaded watcher
    asyncio.set_child_watcher(watcher)
    watcher.attach_loop(asyncio.get_running_loop())


async def run(cfg: DaemonConfig) -> None:
    _use_pidfd_child_watcher()
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    host_ip = node_ip()
    log.info(
        "minikubelet starting: node %s (%s), manifests %s, state %s, runtime %s",
        cfg.node_name,
        host_ip,
        cfg.manifests,
        cfg.state_dir,
        cfg.runtime,
    )
    store = StatusStore(cfg.state_dir / "status.json", flush_interval=cfg.status_flush_interval)
    events = EventRecorder(
        node_name=cfg.node_name,
        state_file=cfg.state_dir / "events.json",
        limit=cfg.event_limit,
        flush_interval=cfg.status_flush_interval,
    )
    events.load()
    allocatable = node_allocatable(cfg)
    admission = Admission(allocatable)
    log.info(
        "node allocatable: cpu %s, memory %d MiB",
        allocatable["cpu"],
        allocatable["memory"] // 2**20,
    )
    settings = WorkerSettings(
        node_name=cfg.node_name,
        host_ip=host_ip,
        backoff_initial=cfg.backoff_initial,
        backoff_max=cfg.backoff_max,
        backoff_reset=cfg.backoff_reset,
        minimum_grace_period=cfg.minimum_grace_period,
        allocatable=allocatable,
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    async with contextlib.AsyncExitStack() as stack:
        process = await stack.enter_async_context(
            ProcessRuntime(
                root=cfg.state_dir / "process",
                log_max_bytes=cfg.container_log_max_size,
                log_max_files=cfg.container_log_max_files,
            )
        )
        available: dict[str, Runtime] = {"process": process}
        if cfg.runtime == "podman" or cfg.podman_socket.exists():
            # Entering never contacts podman: the daemon starts even while the socket is down,
            # and podman pods wait with a reason until it answers.
            available["podman"] = await stack.enter_async_context(
                PodmanRuntime(socket=cfg.podman_socket, image_events=_image_event_sink(events))
            )
        runtimes = _Runtimes(available, default=cfg.runtime)
        if cfg.runtime not in runtimes.available():
            raise SystemExit(
                f"--runtime {cfg.runtime}: not available here (available: "
                f"{', '.join(runtimes.available())})"
            )

        def make_worker(static: StaticPod, predecessor: asyncio.Task[None] | None) -> PodWorker:
            return PodWorker(
                static,
                runtime=runtimes.for_pod(static),
                store=store,
                events=events,
                settings=settings,
                predecessor=predecessor,
                admission=admission,
            )

        reconciler = Reconciler(make_worker=make_worker, events=events, node_name=cfg.node_name)

        def logs(
            namespace: str,
            pod: str,
            container: str,
            *,
            previous: bool,
            tail_lines: int | None,
            follow: bool,
        ) -> AsyncIterator[bytes]:
            return reconciler.logs(
                namespace, pod, container, previous=previous, tail_lines=tail_lines, follow=follow
            )

        app = make_app(store=store, events=events, logs=logs, health=lambda: [("ping", True, "")])
        site = await serve(app, cfg.listen_host, cfg.listen_port)
        stack.push_async_callback(site.cleanup)

        source = ManifestSource(
            cfg.manifests,
            node_name=cfg.node_name,
            resync_period=cfg.file_check_frequency,
            settle_delay=cfg.file_settle_delay,
        )

        def publish(desired: DesiredSet) -> None:
            if not stop.is_set():
                reconciler.reconcile_once(desired)

        async with asyncio.TaskGroup() as tg:
            flushers = [
                tg.create_task(store.run_flusher(), name="status flusher"),
                tg.create_task(events.run_flusher(), name="events flusher"),
            ]
            watcher = tg.create_task(source.run(publish), name="manifest source")
            failed = tg.create_task(reconciler.failed.wait(), name="worker failure watch")
            stopped = tg.create_task(stop.wait(), name="signal watch")
            log.info("minikubelet ready: API on http://%s:%d", cfg.listen_host, site.port)
            await asyncio.wait([watcher, failed, stopped], return_when=asyncio.FIRST_COMPLETED)

            # Ordered shutdown: no new pods, stop the pods, then the rest.
            pods = reconciler.running_pods()
            log.info("minikubelet stopping: stopping %d pods", len(pods))
            watcher.cancel()
            stop.set()
            grace = max((p.pod.spec.termination_grace_period_seconds for p in pods), default=0)
            await reconciler.stop_all(timeout=grace + SHUTDOWN_SLACK)
            for task in [*flushers, failed, stopped]:
                task.cancel()
    if reconciler.failure is not None:
        raise reconciler.failure
    log.info("minikubelet stopped (pid %d)", os.getpid())
