"""The daemon: one root TaskGroup for the manifest source, the pods and the HTTP API.

Start-up order: state dir, status store and event log (reloaded from the last run), runtimes,
the reconciler, the HTTP API, and last the manifest source, whose first snapshot starts the pods.
Shutdown (SIGTERM or SIGINT) runs the other way: stop watching manifests, stop every pod
gracefully and in parallel (each within its terminationGracePeriodSeconds), close the API, flush
status and events. A worker that fails is a bug: it stops the daemon with an error rather than
leave a pod silently unsupervised.

Limits: at start the daemon asks ``cgroups.detect()`` once whether cgroup v2 can enforce them
here. If so it sets up its subtree and hands the driver to the process runtime; if not, pods
still run, and the daemon says so once: a warning in the log with detect()'s reason, a Warning
event on the Node, and a ``[+]cgroups warning: ...`` line in ``/healthz?verbose`` (healthz stays
ok: the node works, without limits). Config (``cgroups.*``): ``enabled`` (auto: use them when
possible; true: refuse to start without them; false: never, not even to track processes),
``name`` (the subtree, default
kubepods), ``parent`` (an absolute cgroup path to put it in instead of the daemon's own
cgroup), ``pidsLimit`` (pids.max of every pod and container).

Restart recovery (docs/recovery.md): a daemon that dies (SIGKILL, a crash) leaves its pods
running. The next one reads the status and events the last one persisted; its runtimes find
the containers still running when they are entered; each pod worker adopts its own
(``Runtime.recover_pod``) and carries on from the persisted status; once the first snapshot of
the manifests says which pods are wanted, what is left of the others (removed or changed while
no daemon ran) is stopped and removed (``Runtime.clean_up_pods``). A clean stop (SIGTERM) still
stops every pod first.

Without limits, the process runtime still gets cgroups where a cgroup v2 hierarchy is writable
(on a cgroup v1 "hybrid" host, the controller-less one at /sys/fs/cgroup/unified): only to
track every process of a container, so that a process that left its process group dies with
its pod. Limits stay unenforced, and the daemon says so as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psutil

from minikubelet.api.identity import DesiredSet, StaticPod
from minikubelet.api.model import EventType, ObjectReference, PodKey
from minikubelet.cgroups import CgroupDriver, CgroupError, detect
from minikubelet.cgroups.driver import DEFAULT_NAME
from minikubelet.config import DaemonConfig
from minikubelet.pods.admission import Admission
from minikubelet.pods.reconciler import Reconciler
from minikubelet.pods.worker import PodWorker, WorkerSettings
from minikubelet.probes.handlers import HTTPProber
from minikubelet.runtime.base import Runtime
from minikubelet.runtime.podman import (
    ContainerEventRef,
    ContainerEventSink,
    PodmanRuntime,
)
from minikubelet.runtime.process import ProcessRuntime
from minikubelet.runtime.unavailable import UnavailableRuntime
from minikubelet.server.app import HealthCheck, make_app, serve
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


def _container_event_sink(events: EventRecorder) -> ContainerEventSink:
    """Events a runtime reports about a container on its own: image pulls, and what podman's
    event stream says was done to the container outside minikubelet."""

    def record(ref: ContainerEventRef, type_: EventType, reason: str, message: str) -> None:
        events.record(
            ObjectReference(
                kind="Pod",
                namespace=ref.namespace,
                name=ref.pod_name,
                uid=ref.pod_uid,
                field_path=ref.field_path,
            ),
            type=type_,
            reason=reason,
            message=message,
        )

    return record


CGROUPS_UNAVAILABLE = "CgroupsUnavailable"  # node event reason: limits are not enforced


@dataclass(frozen=True, slots=True)
class CgroupSettings:
    enabled: bool | None  # None = auto: enforce limits where cgroup v2 allows it
    name: str  # the subtree's name (kubelet: kubepods)
    parent: str | None  # absolute cgroup path for the subtree; None = the daemon's own cgroup
    pids_limit: int | None  # pids.max for every pod and container; None = no limit


def cgroup_settings(extra: Mapping[str, Any]) -> CgroupSettings:
    """The ``cgroups.*`` keys of the config file; SystemExit naming the key when one is wrong."""
    known = {"cgroups.enabled", "cgroups.name", "cgroups.parent", "cgroups.pidsLimit"}
    for key in extra:
        if key.startswith("cgroups.") and key not in known:
            raise SystemExit(f"config: {key}: unknown setting (known: {', '.join(sorted(known))})")
    raw_enabled = extra.get("cgroups.enabled", "auto")
    if raw_enabled == "auto":
        enabled: bool | None = None
    elif isinstance(raw_enabled, bool):
        enabled = raw_enabled
    else:
        raise SystemExit(
            f"config: cgroups.enabled: Invalid value: {raw_enabled!r}: must be auto, true or false"
        )
    name = extra.get("cgroups.name", DEFAULT_NAME)
    if not isinstance(name, str) or not name or "/" in name:
        raise SystemExit(f"config: cgroups.name: Invalid value: {name!r}: must be a cgroup name")
    parent = extra.get("cgroups.parent")
    if parent is not None and (not isinstance(parent, str) or not parent.startswith("/")):
        raise SystemExit(
            f"config: cgroups.parent: Invalid value: {parent!r}: must be an absolute cgroup path"
        )
    pids = extra.get("cgroups.pidsLimit")
    if pids is not None and (not isinstance(pids, int) or isinstance(pids, bool) or pids < 1):
        raise SystemExit(
            f"config: cgroups.pidsLimit: Invalid value: {pids!r}: must be a positive integer"
        )
    return CgroupSettings(enabled=enabled, name=name, parent=parent, pids_limit=pids)


def start_cgroups(
    settings: CgroupSettings, *, events: EventRecorder, node_name: str
) -> tuple[CgroupDriver | None, HealthCheck]:
    """The driver to enforce limits with (set up), or None after saying why, once: a log
    warning, a node Warning event, and the health line returned for /healthz?verbose."""

    def not_enforced(reason: str) -> tuple[None, HealthCheck]:
        log.warning("pods run WITHOUT resource limits: %s", reason)
        events.record(
            ObjectReference(kind="Node", name=node_name, uid=node_name, namespace=None),
            type="Warning",
            reason=CGROUPS_UNAVAILABLE,
            message=reason,
        )
        return None, ("cgroups", True, reason)

    if settings.enabled is False:
        return not_enforced(
            "cgroups.enabled is false in the config: CPU and memory limits are not enforced"
        )
    support = detect(parent=settings.parent)
    if not support.available:
        if settings.enabled:
            raise SystemExit(f"cgroups.enabled is true, but {support.reason}")
        return not_enforced(support.reason)
    try:
        driver = CgroupDriver(support, name=settings.name, pids_limit=settings.pids_limit)
        driver.setup()
    except CgroupError as exc:
        reason = (
            f"setting up the cgroup subtree failed ({exc}): CPU and memory limits are not enforced"
        )
        if settings.enabled:
            raise SystemExit(f"cgroups.enabled is true, but {reason}") from exc
        return not_enforced(reason)
    log.info("%s; pods in %s", support.reason, driver.top.path)
    return driver, ("cgroups", True, "")


def tracking_cgroups(settings: CgroupSettings) -> CgroupDriver | None:
    """Where limits are not enforced: a driver that only tracks each container's processes in
    a cgroup v2 hierarchy without controllers, or None where there is none we may write to."""
    if settings.enabled is False:
        return None
    support = detect(parent=settings.parent)
    if support.available or support.tracking_root is None:
        return None
    try:
        driver = CgroupDriver(support, name=settings.name, limits=False)
        driver.setup()
    except CgroupError as exc:
        log.info("containers' processes are not tracked in cgroups: %s", exc)
        return None
    log.info("containers' processes are tracked (no limits) in the cgroups under %s", driver.top)
    return driver


class _Runtimes:
    """The runtimes this daemon can run pods on, by runtimeClassName."""

    def __init__(self, runtimes: dict[str, Runtime], default: str) -> None:
        self._runtimes = runtimes
        self.default = default

    def for_pod(self, static: StaticPod) -> Runtime:
        name = static.pod.spec.runtime_class_name or self.default
        runtime = self._runtimes.get(name)
        if runtime is None:
            reason = f"this daemon runs {', '.join(self.available())}"
            if name == "containerd":
                reason = "the containerd runtime is not built yet; " + reason
            return UnavailableRuntime(name, reason=reason)
        return runtime

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
    # What the previous daemon left: shown until the manifests are read, then each pod that is
    # still wanted (same UID) carries on from it and the rest are dropped.
    restored = {
        PodKey(f"{e.view.metadata.get('namespace', 'default')}/{e.view.metadata.get('name')}"): e
        for e in store.load()
    }
    for key, entry in restored.items():
        store.put(key, entry)
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
        # A previous daemon left state: this is a restart, and probes get kubelet's jitter.
        restarted_at=asyncio.get_running_loop().time() if restored else None,
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    cgroups_config = cgroup_settings(cfg.extra)
    cgroups, cgroups_health = start_cgroups(cgroups_config, events=events, node_name=cfg.node_name)
    if cgroups is None:
        cgroups = tracking_cgroups(cgroups_config)

    async with contextlib.AsyncExitStack() as stack:
        process = await stack.enter_async_context(
            ProcessRuntime(
                root=cfg.state_dir / "process",
                log_max_bytes=cfg.container_log_max_size,
                log_max_files=cfg.container_log_max_files,
                cgroups=cgroups,
                node_memory=psutil.virtual_memory().total,
            )
        )
        available: dict[str, Runtime] = {"process": process}
        http = HTTPProber()  # one client for every pod's httpGet probes and hooks
        stack.push_async_callback(http.aclose)
        # Always there: entering never contacts podman, so the daemon starts even while the
        # socket is down (or not created yet), and podman pods wait with a reason until it
        # answers. Registering it only when the socket existed at start made a podman pod
        # crash the daemon (KeyError in _Runtimes.for_pod) when podman came up after it.
        available["podman"] = await stack.enter_async_context(
            PodmanRuntime(
                socket=cfg.podman_socket,
                container_events=_container_event_sink(events),
            )
        )
        runtimes = _Runtimes(available, default=cfg.runtime)
        if cfg.runtime not in runtimes.available():
            raise SystemExit(
                f"--runtime {cfg.runtime}: not available here (available: "
                f"{', '.join(runtimes.available())})"
            )

        cleaning: list[asyncio.Task[None]] = []  # the clean-up of earlier pods, once started

        def make_worker(static: StaticPod, predecessor: asyncio.Task[None] | None) -> PodWorker:
            previous = restored.pop(static.key, None)
            if predecessor is None and previous is not None and previous.uid != static.uid:
                # Changed while no daemon ran: the old pod's containers may still run; they
                # are stopped by the clean-up, which the new pod waits for (ports, files).
                predecessor = cleaning[0] if cleaning else None
            worker = PodWorker(
                static,
                runtime=runtimes.for_pod(static),
                store=store,
                events=events,
                settings=settings,
                predecessor=predecessor,
                admission=admission,
                http=http,
            )
            if previous is not None and previous.uid == static.uid:
                annotations = previous.view.metadata.get("annotations")
                worker.restore(
                    previous.view.status,
                    annotations=annotations if isinstance(annotations, dict) else None,
                )
            return worker

        reconciler = Reconciler(make_worker=make_worker, events=events, node_name=cfg.node_name)

        app = make_app(
            store=store,
            events=events,
            logs=reconciler.logs,
            health=lambda: [("ping", True, ""), cgroups_health],
        )
        site = await serve(app, cfg.listen_host, cfg.listen_port)
        stack.push_async_callback(site.cleanup)

        source = ManifestSource(
            cfg.manifests,
            node_name=cfg.node_name,
            resync_period=cfg.file_check_frequency,
            settle_delay=cfg.file_settle_delay,
        )

        first: asyncio.Future[DesiredSet] = loop.create_future()

        async def clean_up() -> None:
            """Once the wanted pods are known: stop what earlier daemons left of the others."""
            keep = {static.uid for static in (await first).pods.values()}
            for runtime in available.values():
                await runtime.clean_up_pods(keep)

        def publish(desired: DesiredSet) -> None:
            if stop.is_set():
                return
            reconciler.reconcile_once(desired)
            if not first.done():
                first.set_result(desired)
            for key, entry in list(restored.items()):
                # Left by the previous daemon and not wanted any more (file gone or changed).
                if key not in desired.pods or desired.pods[key].uid != entry.uid:
                    store.remove(key, uid=entry.uid)
                    del restored[key]

        async with asyncio.TaskGroup() as tg:
            flushers = [
                tg.create_task(store.run_flusher(), name="status flusher"),
                tg.create_task(events.run_flusher(), name="events flusher"),
            ]
            watcher = tg.create_task(source.run(publish), name="manifest source")
            cleaner = tg.create_task(clean_up(), name="clean-up of earlier pods")
            cleaning.append(cleaner)
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
            for task in [*flushers, failed, stopped, cleaner]:
                task.cancel()
    if reconciler.failure is not None:
        raise reconciler.failure
    log.info("minikubelet stopped (pid %d)", os.getpid())
