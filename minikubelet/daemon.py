"""The daemon: one root TaskGroup for the manifest source, the pods and the HTTP API.

Start-up order: state dir, status store and event log (reloaded from the last run), runtimes,
the reconciler, the HTTP API, and last the manifest source, whose first snapshot starts the pods.
Shutdown (SIGTERM or SIGINT) runs the other way: stop watching manifests, stop every pod
gracefully and in parallel (each within its terminationGracePeriodSeconds), close the API, flush
status and events.

What may stop the daemon, and what may not (docs/robustness.md): a pod's failures, expected or
not, stay with that pod (the reconciler and the pod worker contain them). Trouble writing the
state files is reported (a log line, a node Warning event, ``/healthz`` failing with the
reason) and retried; it never stops the daemon. Only the daemon's own machinery ending (the
manifest source, the API's accept loop, the flushers or the pods' supervision failing on a
bug) stops it, and then through the same ordered shutdown, every pod stopped first, before it
exits with the error. At start the soft limit on open files is raised toward the hard one, and
the API keeps its connections to a quarter of it, so that clients cannot take the descriptors
the daemon needs for its pods and its state.

Limits: at start the daemon asks ``cgroups.detect()`` once whether cgroup v2 can enforce them
here. If so it sets up its subtree and hands the driver to the process runtime; if not, pods
still run, and the daemon says so once: a warning in the log with detect()'s reason, a Warning
event on the Node, and a ``[+]cgroups warning: ...`` line in ``/healthz?verbose`` (healthz stays
ok: the node works, without limits). Config (``cgroups.*``): ``enabled`` (auto: use them when
possible; true: refuse to start without them; false: never, not even to track processes),
``name`` (the subtree, default
kubepods), ``parent`` (an absolute cgroup path to put it in instead of the daemon's own
cgroup), ``pidsLimit`` (pids.max of every pod and container).

Trust: a manifest can run anything as the daemon's user, so the manifest source refuses files
that anyone else could have written (source/trust.py). When the directory itself (or one on its
way from /) fails, every file in it is refused and the daemon says so the same way as for
cgroups: a log warning, a Node Warning event (``UntrustedManifests``) and a
``[+]manifests warning: ...`` line in ``/healthz?verbose``, updated on every full resync.
``manifests.trustNonRootFiles: true`` turns the checks off, with a warning at start.

A manifests directory that does not exist or cannot be read is "unavailable", not "empty": the
pods read from it keep running, and the daemon says so the same way (a ``ManifestsUnavailable``
Node Warning event, a ``[+]manifests warning: ...`` line) until it is back.
``manifests.missingIsEmpty: true`` makes it count as empty, as kubelet does. When the manifests
path leads through a symlink (git-sync's), a Normal ``ManifestsResolved`` Node event names the
directory it leads to, at start and after every swap: what this node runs.

Runtimes: each one checks what it needs from the host (``runtime/engine.py``) and the daemon
reports it the same way: a ``RuntimeNotReady`` Node Warning event, once per problem, naming the
package to install, and a ``runtime-<name>`` line in ``/healthz?verbose`` that follows the
engine's state (a podman that comes back healthy clears its warning).

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
import resource
import signal
import sys
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psutil

from minikubelet.api.identity import DesiredSet, StaticPod
from minikubelet.api.model import EventType, ObjectReference, PodKey
from minikubelet.cgroups import CgroupDriver, CgroupError, detect
from minikubelet.cgroups.driver import DEFAULT_NAME
from minikubelet.config import EXTRA_KEYS, DaemonConfig
from minikubelet.pods.admission import Admission
from minikubelet.pods.reconciler import Reconciler
from minikubelet.pods.worker import PodWorker, WorkerSettings
from minikubelet.probes.handlers import HTTPProber
from minikubelet.runtime.base import Runtime
from minikubelet.runtime.engine import EngineReport
from minikubelet.runtime.podman import (
    ContainerEventRef,
    ContainerEventSink,
    PodmanRuntime,
)
from minikubelet.runtime.process import ProcessRuntime
from minikubelet.runtime.unavailable import UnavailableRuntime
from minikubelet.server import security
from minikubelet.server.app import ApiSettings, HealthCheck, make_app, serve
from minikubelet.server.auth import ADMIN
from minikubelet.server.node import NodeInfo
from minikubelet.server.tls import is_loopback
from minikubelet.source.manifests import ManifestSource
from minikubelet.status.events import EventRecorder
from minikubelet.status.store import StatusStore

log = logging.getLogger(__name__)

SHUTDOWN_SLACK = 10.0  # seconds beyond the longest grace period before pods are cancelled
NOFILE_TARGET = 65536  # the soft open-files limit asked for (containers inherit it, so no more)
API_FD_SHARE = 4  # the API may hold at most 1/API_FD_SHARE of the open-files limit


def raise_open_files_limit(target: int = NOFILE_TARGET) -> int:
    """Raise the soft RLIMIT_NOFILE toward the hard limit (at most ``target``), as systemd
    and Go do for themselves; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = target if hard == resource.RLIM_INFINITY else min(hard, target)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-files limit from %d to %d: %s", soft, wanted, exc)
            return soft
        return wanted
    return soft if soft != resource.RLIM_INFINITY else target


def api_connection_limit(configured: int, nofile: int) -> int:
    """api.maxConnections, kept to a share of the open-files limit (at least 8)."""
    return max(8, min(configured, nofile // API_FD_SHARE))


def node_capacity(cfg: DaemonConfig) -> dict[str, Decimal]:
    """What the node has before anything is reserved (the Node's status.capacity)."""
    return {
        "cpu": Decimal(os.cpu_count() or 1),
        "memory": Decimal(psutil.virtual_memory().total),
        "ephemeral-storage": Decimal(psutil.disk_usage(str(cfg.state_dir)).total),
    }


def node_allocatable(cfg: DaemonConfig) -> dict[str, Decimal]:
    """kubelet's allocatable: capacity minus systemReserved, kubeReserved and evictionHard.
    Admission fits pods into it; resourceFieldRef falls back to it when there is no limit."""
    capacity = node_capacity(cfg)
    cpu = capacity["cpu"] - cfg.system_reserved_cpu - cfg.kube_reserved_cpu
    memory = (
        capacity["memory"]
        - cfg.system_reserved_memory
        - cfg.kube_reserved_memory
        - cfg.eviction_hard_memory
    )
    return {
        "cpu": max(cpu, Decimal(0)),
        "memory": max(memory, Decimal(0)),
        "ephemeral-storage": capacity["ephemeral-storage"],
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
UNTRUSTED_MANIFESTS = "UntrustedManifests"  # node event reason: the manifests dir is refused
MANIFESTS_UNAVAILABLE = "ManifestsUnavailable"  # node event reason: the dir cannot be read
MANIFESTS_RESOLVED = "ManifestsResolved"  # node event reason: a symlinked dir leads elsewhere
RUNTIME_NOT_READY = "RuntimeNotReady"  # node event reason: a runtime lacks something here


def node_warning(events: EventRecorder, node_name: str, *, reason: str, message: str) -> None:
    events.record(
        ObjectReference(kind="Node", name=node_name, uid=node_name, namespace=None),
        type="Warning",
        reason=reason,
        message=message,
    )


@dataclass(frozen=True, slots=True)
class CgroupSettings:
    enabled: bool | None  # None = auto: enforce limits where cgroup v2 allows it
    name: str  # the subtree's name (kubelet: kubepods)
    parent: str | None  # absolute cgroup path for the subtree; None = the daemon's own cgroup
    pids_limit: int | None  # pids.max for every pod and container; None = no limit


def cgroup_settings(extra: Mapping[str, Any]) -> CgroupSettings:
    """The ``cgroups.*`` keys of the config file; SystemExit naming the key when one is wrong."""
    for key in extra:
        if key not in EXTRA_KEYS:
            known = ", ".join(sorted(EXTRA_KEYS))
            raise SystemExit(f"config: {key}: unknown setting (known: {known})")
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
        node_warning(events, node_name, reason=CGROUPS_UNAVAILABLE, message=reason)
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
    # The API's token and TLS first: a node that cannot serve its API safely starts nothing.
    try:
        api_security = security.prepare(
            cfg.state_dir,
            listen_host=cfg.listen_host,
            node_name=cfg.node_name,
            tls=cfg.api_tls,
            tls_sans=cfg.api_tls_sans,
        )
    except security.SecurityError as exc:
        raise SystemExit(f"API: {exc}") from exc
    nofile = raise_open_files_limit()
    events = EventRecorder(
        node_name=cfg.node_name,
        state_file=cfg.state_dir / "events.json",
        limit=cfg.event_limit,
        flush_interval=cfg.status_flush_interval,
    )
    events.load()
    store = StatusStore(
        cfg.state_dir / "status.json",
        flush_interval=cfg.status_flush_interval,
        report=events.node_event,
    )
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
    trust_off = ""
    if cfg.trust_non_root_files:
        trust_off = "manifests.trustNonRootFiles is true: manifests are read whoever owns them"
        log.warning(
            "%s; anyone who can write into %s or a directory above it can run anything as uid %d",
            trust_off,
            cfg.manifests,
            os.geteuid(),
        )
    manifests_health: HealthCheck = ("manifests", True, trust_off)

    # What each runtime finds missing on this host: once as a Node event, and a health line.
    def runtime_warning(runtime: str, problem: str) -> None:
        message = f"{runtime} runtime: {problem}"
        node_warning(events, cfg.node_name, reason=RUNTIME_NOT_READY, message=message)

    engines = {name: EngineReport(name, warn=runtime_warning) for name in ("process", "podman")}

    async with contextlib.AsyncExitStack() as stack:
        process = await stack.enter_async_context(
            ProcessRuntime(
                root=cfg.state_dir / "process",
                log_max_bytes=cfg.container_log_max_size,
                log_max_files=cfg.container_log_max_files,
                cgroups=cgroups,
                node_memory=psutil.virtual_memory().total,
                engine_report=engines["process"],
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
                engine_report=engines["podman"],
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

        reconciler = Reconciler(
            make_worker=make_worker,
            events=events,
            node_name=cfg.node_name,
            restart_backoff_initial=cfg.backoff_initial,
            restart_backoff_max=cfg.backoff_max,
        )

        app = make_app(
            store=store,
            events=events,
            logs=reconciler.logs,
            health=lambda: [
                ("ping", True, ""),
                cgroups_health,
                manifests_health,
                store.file.health(),
                events.file.health(),
                *(engine.health() for engine in engines.values()),
            ],
            tokens={api_security.token: ADMIN},
            node_info=NodeInfo(
                name=cfg.node_name,
                host_ip=host_ip,
                capacity=node_capacity(cfg),
                allocatable=allocatable,
                runtimes=(cfg.runtime, *(r for r in runtimes.available() if r != cfg.runtime)),
            ),
            settings=ApiSettings(
                writes=cfg.api_writes,
                max_follows_per_client=cfg.api_max_follows_per_client,
                max_watches_per_client=cfg.api_max_watches_per_client,
            ),
        )
        site = await serve(
            app,
            cfg.listen_host,
            cfg.listen_port,
            max_connections=api_connection_limit(cfg.api_max_connections, nofile),
            idle_timeout=cfg.api_idle_timeout,
            tls=api_security.tls,
            # Loopback also answers plain HTTP on the same port (curl, scripts); kubectl and
            # anything beyond loopback use TLS.
            plain_too=is_loopback(cfg.listen_host),
        )
        stack.push_async_callback(site.cleanup)
        api_url = security.server_url(
            listen_host=cfg.listen_host,
            port=site.port,
            secure=api_security.tls is not None,
            node_ip=host_ip,
        )
        security.write_kubeconfig(
            cfg.state_dir, api_security, server=api_url, node_name=cfg.node_name
        )

        source = ManifestSource(
            cfg.manifests,
            node_name=cfg.node_name,
            resync_period=cfg.file_check_frequency,
            settle_delay=cfg.file_settle_delay,
            trust_non_root_files=cfg.trust_non_root_files,
            missing_is_empty=cfg.missing_is_empty,
        )
        said: dict[str, str] = {}  # Node event reason -> the message last recorded

        def warn_once(reason: str, message: str) -> str:
            """A Node Warning event for ``message`` (empty: none), once per change, like cgroups."""
            if message and said.get(reason) != message:
                events.record(
                    ObjectReference(
                        kind="Node", name=cfg.node_name, uid=cfg.node_name, namespace=None
                    ),
                    type="Warning",
                    reason=reason,
                    message=message,
                )
            said[reason] = message
            return message

        first: asyncio.Future[DesiredSet] = loop.create_future()

        async def clean_up() -> None:
            """Once the wanted pods are known: stop what earlier daemons left of the others. A
            failure here is reported and leaves those pods as they are; it stops nothing."""
            keep = {static.uid for static in (await first).pods.values()}
            for runtime in available.values():
                try:
                    await runtime.clean_up_pods(keep)
                except Exception as exc:
                    log.error(
                        "%s runtime: cannot clean up what earlier daemons left: %s",
                        runtime.name,
                        exc,
                        exc_info=exc,
                    )

        def publish(desired: DesiredSet) -> None:
            nonlocal manifests_health
            if stop.is_set():
                return
            untrusted = unavailable = ""
            if desired.directory_error is not None:
                problems = "; ".join(str(e) for e in desired.directory_error.errors)
                untrusted = f"every manifest in {cfg.manifests} is refused: {problems}"
            if desired.unavailable is not None:
                unavailable = desired.unavailable + (
                    "; it counts as empty (manifests.missingIsEmpty)"
                    if cfg.missing_is_empty
                    else "; the pods read from it keep running until it is back"
                )
            details = [
                trust_off,
                warn_once(UNTRUSTED_MANIFESTS, untrusted),
                warn_once(MANIFESTS_UNAVAILABLE, unavailable),
            ]
            manifests_health = ("manifests", True, "; ".join(d for d in details if d))
            resolved = desired.resolved
            if resolved not in (None, said.get(MANIFESTS_RESOLVED), str(cfg.manifests.absolute())):
                # What this node runs, for a fleet: behind git-sync's link, the commit's checkout.
                said[MANIFESTS_RESOLVED] = resolved
                events.record(
                    ObjectReference(
                        kind="Node", name=cfg.node_name, uid=cfg.node_name, namespace=None
                    ),
                    type="Normal",
                    reason=MANIFESTS_RESOLVED,
                    message=f"manifests are read from {resolved} (through {cfg.manifests})",
                )
            reconciler.reconcile_once(desired)
            if not first.done() and desired.unavailable is None and desired.directory_error is None:
                # A snapshot that says which pods are wanted (not a directory that cannot be
                # read or trusted: what runs from it keeps running).
                first.set_result(desired)
            for key, entry in list(restored.items()):
                # Left by the previous daemon and not wanted any more (file gone or changed).
                if key not in desired.pods or desired.pods[key].uid != entry.uid:
                    store.remove(key, uid=entry.uid)
                    del restored[key]

        async def supervision() -> None:
            await reconciler.failed.wait()
            assert reconciler.failure is not None
            raise reconciler.failure

        fatal: list[BaseException] = []  # what ended the daemon's machinery, if anything

        async def machinery(name: str, work: Awaitable[None]) -> None:
            """Run one part of the daemon; its end, or its failure, stops the daemon in order.
            Caught here, not left to the TaskGroup: a failing child would cancel the group's
            body and skip the ordered shutdown below, leaving the pods' containers running."""
            try:
                await work
            except Exception as exc:
                log.critical("%s failed: stopping every pod, then the daemon", name, exc_info=exc)
                fatal.append(exc)
            else:
                log.warning("%s ended: stopping every pod, then the daemon", name)
            stop.set()

        async with asyncio.TaskGroup() as tg:
            parts = {
                "status flusher": store.run_flusher(),
                "events flusher": events.run_flusher(),
                "manifest source": source.run(publish),
                "API server": site.wait(),
                "pod supervision": supervision(),
            }
            tasks = {
                name: tg.create_task(machinery(name, w), name=name) for name, w in parts.items()
            }
            # Not machinery: it ends when done, and a failure of it stops nothing.
            tasks["clean-up"] = tg.create_task(clean_up(), name="clean-up of earlier pods")
            cleaning.append(tasks["clean-up"])
            log.info("minikubelet ready: API on %s (kubeconfig in %s)", site.url, cfg.state_dir)
            await stop.wait()

            # Ordered shutdown: no new pods, stop the pods (the flushers still writing their
            # status), then the rest; cancelling the flushers writes their last state.
            pods = reconciler.running_pods()
            log.info("minikubelet stopping: stopping %d pods", len(pods))
            tasks["manifest source"].cancel()
            grace = max((p.pod.spec.termination_grace_period_seconds for p in pods), default=0)
            await reconciler.stop_all(timeout=grace + SHUTDOWN_SLACK)
            for task in tasks.values():
                task.cancel()
    if fatal:
        raise fatal[0]
    log.info("minikubelet stopped (pid %d)", os.getpid())
