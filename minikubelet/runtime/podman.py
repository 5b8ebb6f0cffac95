"""The podman runtime: a Kubernetes pod as a podman pod of OCI containers, over libpod's REST API.

This module owns the mapping from the Runtime seam (``runtime/base.py``) to podman objects; the
HTTP transport is ``podman_api`` and the OOM evidence is ``podman_oom``. No podman CLI and no
podman-py on the hot path: every call is one HTTP request on the service's unix socket.

Mapping (issue 5):

- pod -> a podman pod ``<pod name>_<namespace>_<uid[:8]>`` with an infra container that holds
  the network namespace: the pod's containers reach each other on localhost. Network "bridge"
  (default; podman's default network, netavark or CNI) gives the pod an IP that probes reach
  from the host; "host" shares the host's network (pod IP 127.0.0.1). ``ports[].hostPort`` of
  every container is published on the pod. The hostname is the pod's name.
- container instance -> a podman container ``k8s_<container>_<pod>_<ns>_<uid[:8]>_<n>``, n the
  restart count, labelled ``io.kubernetes.pod.{uid,name,namespace}`` and
  ``io.kubernetes.container.{name,restartCount}`` so that state is recoverable from podman.
  ``command`` -> entrypoint, ``args`` -> cmd (podman drops the image's cmd when an entrypoint
  is given, which is Kubernetes' rule); env, workingDir, runAsUser/runAsGroup -> user
  ``uid:gid``; limits -> memory limit (swap = the same: no swap) and CFS quota/period; requests
  -> cpu shares (``api/resources.py``: kubelet's formulas; podman turns shares into a v2 weight).
- emptyDir -> a podman volume owned by the pod (created by start_pod, removed by stop_pod); for
  medium Memory, a volume of the local driver with ``type=tmpfs`` (shared by the pod's
  containers, which a per-container tmpfs mount would not be). podman unmounts such a volume
  (losing its content) when no container uses it, so the pod's infra container holds it at
  ``/.minikubelet/volumes/<name>``; podman shows the infra's volumes in every container of the
  pod, so that path is visible there too. hostPath -> a bind mount, with
  kubelet's type checks. subPath works for hostPath and disk emptyDirs.
- imagePullPolicy as Kubernetes (unset: Always for ``:latest`` or no tag, else IfNotPresent),
  with one deviation: a ``localhost/`` image (podman's name for images built or imported
  locally, which no registry serves) is never pulled under Always; it must be present.
- Exit: podman's wait + inspect; ``OOMKilled`` from the kernel (``podman_oom``), because podman
  4.3 says false on cgroup v1 hosts.
- Instances are kept after exit for ``logs --previous``: ``remove_container`` forgets an instance
  but its podman container stays until the next-but-one instance of the same container starts
  (the one before the current one is the "previous") or the pod is stopped.
- ``oci_runtime`` ("auto": runc on cgroup v1 hosts, where crun refuses to run) and, when given,
  ``ulimits`` (``r_limits``) go with every container. The pod's infra container is configured
  by the service's containers.conf only (podman 4.3's pod API has no per-request field for it),
  so on a host where podman's default ulimits (1048576) cannot be set, the service needs
  ``default_ulimits`` in its containers.conf anyway (tests/podman/containers.conf). The limits
  cannot be guessed from here: what counts is the podman service's own hard limit.

Image events (kubelet's image manager, ``pkg/kubelet/images/image_manager.go``), through the
``container_events`` sink, on the container: Normal ``Pulled`` ``Container image "<image>" already
present on machine``; Warning ``ErrImageNeverPull`` ``Container image "<image>" is not present
with pull policy of Never``; Normal ``Pulling`` ``Pulling image "<image>"``; Normal ``Pulled``
``Successfully pulled image "<image>" in <d> (<d> including waiting). Image size: <n> bytes.``.
A failed pull raises ``ImagePullError`` whose text is kubelet's ``Failed to pull image "<image>":
<podman's error>``; the pod worker records that Warning ``Failed`` (and ``Error: ErrImagePull``,
and later ``ImagePullBackOff``/``BackOff``), so the runtime does not record it a second time.

podman's events -> kubelet's reasons. One owned task ("podman events") follows libpod's
``/events?stream=true`` (container events oom, kill, stop, died, remove; podman 4.3 cannot
filter on a label key alone, so events of containers this runtime does not track are dropped
here), reconnecting with backoff (``RECONNECT_DELAYS``) and replaying from the last event seen
(``since``) when podman comes back. For a container instance this runtime tracks:

- ``oom``    -> the instance is OOM-killed: its exit says ``OOMKilled`` even when the cgroup
  read raced the cgroup's removal. podman emits ``oom`` before ``died``, so an exit with code
  137 and no OOM evidence yet waits (at most ``DIED_GRACE``) for the ``died`` event while the
  stream is connected. podman 4.3 on cgroup v1 never emits ``oom`` (measured: conmon misses
  the kill, as it misses ``OOMKilled``); the cgroup watch of ``podman_oom`` covers that host.
  No event of our own: the pod worker records the OOM kill from the exit.
- ``kill`` or ``stop`` that minikubelet did not ask for (``podman kill``, ``POST
  /containers/{id}/kill``) -> Warning ``ContainerStoppedExternally`` ``Container <c> was
  killed outside minikubelet (podman kill)``, once per instance, through ``container_events``.
  kubelet has no reason for this (a CRI runtime's containers are not touched behind its back;
  its ``Killing`` is Normal and means kubelet itself stops the container), hence a reason of
  our own. The exit itself, and the restart per restartPolicy, come from podman's wait as for
  any exit. podman 4.3 emits no event for ``podman stop`` (measured: only ``died``), so an
  external stop looks like an ordinary exit (code 137 or 143).
- ``remove`` while the instance is tracked (``podman rm -f``) -> the same Warning, ``...was
  removed outside minikubelet (podman rm)``, unless its ``kill`` was reported already (one
  event per instance); the wait then fails and the worker reports the vanished container as
  kubelet does (exit 137). Not covered by a test yet.
- ``died`` -> nothing extra: the wait API reports the exit (and ends the grace above).
- Anything else (pause, unpause, exec, the infra container's events...) is not mapped.

The runtime owns one waiter task per running instance (podman's blocking wait, re-issued when
the service comes back after a restart: containers outlive ``podman system service``) and the
events task, nothing else. Leaving ``async with`` cancels them; containers keep running.

When podman is unreachable every call raises ``RuntimeFailure`` naming the socket; the worker
turns it into a waiting reason, an event and a backoff, and the next attempt simply reconnects.

The engine check (``podman_engine``): each time the event stream connects (the daemon's start,
every reconnect) the runtime asks podman for its version and OCI runtime and whether it can make
a pod's infra container, and keeps ``report`` (an ``EngineReport``) up to date: what is missing,
naming the package to install, said once as a Node Warning event by the daemon, and a
``/healthz?verbose`` line. A pod that podman cannot create for such a reason gets the same advice
in its FailedCreatePodSandBox message; once a pod can be created again, the check runs again and
clears the warning when the problem is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Coroutine,
    Mapping,
    MutableMapping,
    Sequence,
)
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from minikubelet.aiotasks import TaskSet
from minikubelet.api.errors import (
    ContainerConfigError,
    ImagePullError,
    RuntimeFailure,
    StartFailure,
)
from minikubelet.api.model import Container, Volume
from minikubelet.api.quantity import parse_quantity, value
from minikubelet.api.resources import container_resources
from minikubelet.runtime import mounts, podman_engine
from minikubelet.runtime.base import (
    ContainerConfig,
    ContainerExit,
    ContainerID,
    ExecResult,
    ExitReason,
    PodSandbox,
    PodSandboxConfig,
    RecoveredContainer,
    StartedContainer,
)
from minikubelet.runtime.engine import EngineReport
from minikubelet.runtime.podman_api import JSON, PodmanClient, PodmanError, demux, path_arg
from minikubelet.runtime.podman_oom import OomWatch

log = logging.getLogger(__name__)

LABEL_POD_UID = "io.kubernetes.pod.uid"
LABEL_POD_NAME = "io.kubernetes.pod.name"
LABEL_POD_NAMESPACE = "io.kubernetes.pod.namespace"
LABEL_CONTAINER_NAME = "io.kubernetes.container.name"
LABEL_RESTART_COUNT = "io.kubernetes.container.restartCount"
LABEL_CONTAINER_KIND = "io.minikubelet.container.kind"

RECONNECT_DELAYS = (0.5, 1.0, 2.0, 5.0)  # between attempts to re-wait while podman is away
DIED_GRACE = 1.0  # seconds an exit 137 waits for podman's "died" event (an "oom" comes first)
EVENTS_FOLLOWED = ("oom", "kill", "stop", "died", "remove")
EXTERNAL_REASON = "ContainerStoppedExternally"
ANCHOR_DIR = "/.minikubelet/volumes"  # where infra (and so every container) holds tmpfs volumes
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
POD_REMOVE_ATTEMPTS = 3
STOP_SLACK = 30.0  # HTTP time allowed beyond the grace period for a stop call
EXEC_EXIT_POLL = 0.02  # seconds between exec inspections until podman has the exit code

PullPolicy = Literal["Always", "IfNotPresent", "Never"]
Network = Literal["bridge", "host"]


@dataclass(frozen=True, slots=True)
class ContainerEventRef:
    """What an event about a container instance is recorded against (from its labels)."""

    namespace: str
    pod_name: str
    pod_uid: str
    field_path: str  # spec.containers{c} or spec.initContainers{c}


def _event_ref(pod: PodSandboxConfig, config: ContainerConfig) -> ContainerEventRef:
    return ContainerEventRef(
        namespace=pod.namespace,
        pod_name=pod.name,
        pod_uid=pod.uid,
        field_path=_field_path(config.kind.value, config.container.name),
    )


ContainerEventSink = Callable[[ContainerEventRef, Literal["Normal", "Warning"], str, str], None]
"""Called with (container, type, reason, message): kubelet's image events, and what podman's
event stream says was done to a container outside minikubelet (see the module docstring)."""


class _ObjectLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every line with the object it is about, as kopf's ObjectLogger does."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        return f"{(self.extra or {}).get('object')}: {msg}", kwargs


@dataclass(slots=True)
class _Instance:
    """One started container instance, from its start until remove_container or stop_pod."""

    container_id: ContainerID  # podman://<podman id>
    podman_id: str  # podman's 64-hex id
    pod_uid: str
    name: str  # the container's name in the spec
    restart_count: int
    started_at: datetime
    log: _ObjectLog
    oom: OomWatch | None  # None for an adopted instance (started by an earlier daemon)
    exit: asyncio.Future[ContainerExit]  # resolved once, by the waiter
    ref: ContainerEventRef
    stopping: bool = False  # minikubelet asked podman to stop it: its kill/stop are ours
    oom_event: bool = False  # podman's event stream said "oom"
    external_reported: bool = False
    died: asyncio.Event = field(default_factory=asyncio.Event)  # podman's "died" event seen


@dataclass(slots=True)
class _Pod:
    """What start_pod made for one pod UID."""

    name: str  # the podman pod's name
    sandbox: PodSandbox
    volumes: dict[str, str]  # pod volume name -> podman volume name (emptyDir only)
    mountpoints: dict[str, Path]  # pod volume name -> the podman volume's host directory
    # container name -> (restart count, podman id) of exited instances kept for their logs
    kept: dict[str, list[tuple[int, str]]] = field(default_factory=dict)


class PodmanRuntime:
    """Runs pods as podman pods. Use as ``async with PodmanRuntime(socket=...) as rt``."""

    def __init__(
        self,
        *,
        socket: Path,
        network: Network = "bridge",
        oci_runtime: str | None = "auto",
        log_max_bytes: int = 10 * 1024 * 1024,
        request_timeout: float = 60.0,
        ulimits: Mapping[str, int] | None = None,
        container_events: ContainerEventSink | None = None,
        engine_report: EngineReport | None = None,
    ) -> None:
        """``oci_runtime``: "auto" picks runc on cgroup v1 hosts and podman's own choice
        elsewhere; None always leaves it to podman. ``ulimits`` ({"nofile": 20000}) sets soft
        and hard limits of every container; None leaves them to containers.conf.
        ``container_events`` receives kubelet's image events and what podman's events say was
        done outside minikubelet (see ContainerEventSink); without it they only go to the
        log. ``engine_report`` receives the engine check's findings (module docstring)."""
        self.socket = socket
        self._api = PodmanClient(socket, timeout=request_timeout)
        self._network = network
        self._oci_runtime = _pick_oci_runtime() if oci_runtime == "auto" else oci_runtime
        self._rlimits: list[JSON] = [
            {"type": name, "soft": limit, "hard": limit} for name, limit in (ulimits or {}).items()
        ]
        self._swap = _swap_limit_supported()
        self._log_max_bytes = log_max_bytes
        self._container_events = container_events
        self._events_connected = False  # the event stream is following podman right now
        self.report = engine_report or EngineReport("podman")
        self.report.waiting(f"podman has not answered on {socket} yet")
        self._checking: asyncio.Task[None] | None = None  # the engine check, while it runs
        self._pods: dict[str, _Pod] = {}  # by pod UID
        self._instances: dict[ContainerID, _Instance] = {}
        self._tasks = TaskSet(log)
        self._entered = False

    @property
    def name(self) -> str:
        return "podman"

    # --- lifecycle of the runtime itself ------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self._api.__aenter__()
        self._entered = True
        self._spawn(self._follow_events(), name="podman events")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        running = [i for i in self._instances.values() if not i.exit.done()]
        if running:
            log.info("podman runtime closing; %d containers keep running", len(running))
        await self._tasks.close()
        for inst in self._instances.values():
            if inst.oom is not None:
                inst.oom.close()
        await self._api.__aexit__(exc_type, exc, tb)
        self._entered = False

    def _spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        return self._tasks.spawn(coro, name=name)

    def _require_entered(self) -> None:
        if not self._entered:
            raise RuntimeError("PodmanRuntime is used outside its `async with` block")

    # --- pods ---------------------------------------------------------------------------------

    async def start_pod(self, pod: PodSandboxConfig) -> PodSandbox:
        self._require_entered()
        state = self._pods.get(pod.uid)
        if state is not None:
            return state.sandbox
        name = pod_name(pod)
        labels = _pod_labels(pod)
        volumes, mountpoints = await self._create_volumes(pod, labels)
        spec: dict[str, JSON] = {
            "name": name,
            "labels": labels,
            "hostname": _hostname(pod.name),
            "infra_name": f"{name}_infra",
        }
        anchors = [
            {"Name": vname, "Dest": f"{ANCHOR_DIR}/{volume}"}
            for volume, vname in volumes.items()
            if volume not in mountpoints  # medium: Memory
        ]
        if anchors:
            # podman unmounts a tmpfs volume when its last user exits, which would empty it
            # between two containers; the infra container holds it for the pod's lifetime.
            spec["volumes"] = anchors
        if self._network == "host":
            spec["netns"] = {"nsmode": "host"}
        else:
            spec["portmappings"] = _port_mappings(pod)
        try:
            await self._api.call("POST", "/pods/create", body=spec, what=f"create pod {name}")
        except PodmanError as exc:
            if not _conflict(exc):
                raise self._explained(exc) from exc
            # Created by an earlier attempt (or an earlier daemon) for this very UID: reuse it.
        try:
            await self._api.call(
                "POST", f"/pods/{path_arg(name)}/start", what=f"start pod {name}", ok=(200, 304)
            )
        except PodmanError as exc:
            raise self._explained(exc) from exc
        if self.report.problem is not None:
            self._check_engine()  # a pod works again: see whether the problem is gone
        sandbox = PodSandbox(pod_ip=await self._pod_ip(name))
        self._pods[pod.uid] = _Pod(
            name=name, sandbox=sandbox, volumes=volumes, mountpoints=mountpoints
        )
        return sandbox

    async def _create_volumes(
        self, pod: PodSandboxConfig, labels: dict[str, str]
    ) -> tuple[dict[str, str], dict[str, Path]]:
        volumes: dict[str, str] = {}
        mountpoints: dict[str, Path] = {}
        for volume in pod.spec.volumes or []:
            if volume.empty_dir is None:
                continue
            vname = f"k8s_{volume.name}_{pod_name(pod)}"
            body: dict[str, JSON] = {"Name": vname, "Label": labels, "Driver": "local"}
            if volume.empty_dir.medium == "Memory":
                options = "mode=1777"
                if volume.empty_dir.size_limit is not None:
                    # podman's local driver takes "size" as an XFS quota: say it in pages.
                    size = value(parse_quantity(volume.empty_dir.size_limit))
                    options += f",nr_blocks={max(1, -(-size // PAGE_SIZE))}"
                body["Options"] = {"type": "tmpfs", "device": "tmpfs", "o": options}
            try:
                made = await self._api.call(
                    "POST", "/volumes/create", body=body, what=f"create volume {vname}"
                )
            except PodmanError as exc:
                if not _conflict(exc):
                    raise
                made = await self._api.call(
                    "GET", f"/volumes/{path_arg(vname)}/json", what=f"inspect volume {vname}"
                )
            volumes[volume.name] = vname
            if volume.empty_dir.medium != "Memory" and isinstance(made, dict):
                mountpoint = Path(str(made.get("Mountpoint", "")))
                mountpoints[volume.name] = mountpoint
                # Anyone in the pod may write, as kubelet's emptyDir (0777).
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(os.chmod, mountpoint, 0o777)
        return volumes, mountpoints

    async def _pod_ip(self, name: str) -> str:
        if self._network == "host":
            return "127.0.0.1"
        infra = await self._api.call(
            "GET", f"/containers/{path_arg(name + '_infra')}/json", what=f"inspect pod {name}"
        )
        settings = infra.get("NetworkSettings") or {} if isinstance(infra, dict) else {}
        for network in (settings.get("Networks") or {}).values():
            if isinstance(network, dict) and network.get("IPAddress"):
                return str(network["IPAddress"])
        return str(settings.get("IPAddress") or "127.0.0.1")

    async def stop_pod(self, pod: PodSandboxConfig) -> None:
        self._require_entered()
        name = pod_name(pod)
        for inst in [i for i in self._instances.values() if i.pod_uid == pod.uid]:
            if not inst.exit.done():
                inst.log.warning("still running when its pod is stopped; killing it")
                with contextlib.suppress(RuntimeFailure):
                    await self.stop_container(inst.container_id, grace_seconds=0)
            self._forget(inst)
        await self._remove_pod(name)
        found = await self._api.call(
            "GET",
            "/volumes/json",
            params={"filters": _label_filter(pod.uid)},
            what=f"list volumes of pod {name}",
        )
        for volume in found or []:
            vname = str(volume.get("Name", ""))
            await self._api.call(
                "DELETE",
                f"/volumes/{path_arg(vname)}",
                params={"force": "true"},
                ok=(204, 404),
                what=f"remove volume {vname}",
            )
        self._pods.pop(pod.uid, None)

    async def _remove_pod(self, name: str) -> None:
        """Remove the pod and its containers; checked, since podman may answer 200 with an
        error in the report (a cgroup v1 removal that timed out) and keep the pod."""
        report: JSON = None
        for attempt in range(POD_REMOVE_ATTEMPTS):
            # The infra container's catatonit ends on SIGTERM at once; t=0 for anything else.
            report = await self._api.call(
                "DELETE",
                f"/pods/{path_arg(name)}",
                params={"force": "true", "t": 0},
                ok=(200, 404),
                what=f"remove pod {name}",
            )
            still = await self._api.call(
                "GET", f"/pods/{path_arg(name)}/exists", ok=(204, 404), what=f"find pod {name}"
            )
            if isinstance(still, dict) and still.get("response") == 404:
                return  # 404 carries a JSON body; 204 (it exists) is empty
            log.warning("pod %s still exists after removal (%s); again", name, report)
            await asyncio.sleep(0.5 * (attempt + 1))
        raise RuntimeFailure(f"pod {name} could not be removed: {report}")

    # --- containers ---------------------------------------------------------------------------

    async def start_container(
        self, pod: PodSandboxConfig, config: ContainerConfig
    ) -> StartedContainer:
        self._require_entered()
        spec = config.container
        state = self._pods.get(pod.uid)
        if state is None:
            raise RuntimeFailure(f"pod {pod.name!r} ({pod.uid}) has no sandbox: start_pod first")
        olog = _ObjectLog(log, {"object": f"{pod.namespace}/{pod.name}/{spec.name}"})
        image = await self._ensure_image(pod, config)
        user = _user(pod, spec, image)
        body = await self._container_spec(pod, state, config, user)
        cname = container_name(pod, spec.name, config.restart_count)

        await self._prune_kept(state, spec.name, keep_from=config.restart_count - 1)
        created = await self._create(body, cname)
        podman_id = str(created["Id"])
        cid = ContainerID(f"podman://{podman_id}")
        oom: OomWatch | None = None
        try:
            if _has_memory_limit(body):
                # init makes the cgroup and the (paused) process, so the OOM watch is armed
                # before the command runs: an immediate OOM kill cannot slip past it. Without
                # a limit of its own the container's memory cgroup never sees an OOM (a
                # system-wide OOM kill is not a memcg event), so a plain start is enough.
                await self._api.call("POST", f"/containers/{podman_id}/init", what=f"init {cname}")
                inspected = await self._api.call(
                    "GET", f"/containers/{podman_id}/json", what=f"inspect {cname}"
                )
                pid = int(inspected.get("State", {}).get("Pid") or 0)
                oom = OomWatch.arm(pid) if pid > 0 else None
            try:
                await self._api.call("POST", f"/containers/{podman_id}/start", what="start")
            except BaseException:
                if oom is not None:
                    oom.close()
                raise
        except PodmanError as exc:
            # Created -> StartError: the process never ran (a missing binary, a bad mount).
            with contextlib.suppress(RuntimeFailure):
                await self._remove(podman_id, cname)
            if exc.status == 0:
                raise  # unreachable: not the container's fault
            raise StartFailure(_start_error(exc)) from exc
        started_at = datetime.now(UTC)
        inst = _Instance(
            container_id=cid,
            podman_id=podman_id,
            pod_uid=pod.uid,
            name=spec.name,
            restart_count=config.restart_count,
            started_at=started_at,
            log=olog,
            oom=oom,
            exit=asyncio.get_running_loop().create_future(),
            ref=_event_ref(pod, config),
        )
        self._instances[cid] = inst
        self._spawn(self._wait(inst), name=f"podman wait {cname}")
        olog.info("started %s (instance %d)", podman_id[:12], config.restart_count)
        return StartedContainer(container_id=cid, started_at=started_at)

    async def _create(self, body: dict[str, JSON], cname: str) -> dict[str, JSON]:
        for attempt in range(2):
            try:
                created = await self._api.call(
                    "POST", "/containers/create", body=body, what=f"create container {cname}"
                )
                return dict(created)
            except PodmanError as exc:
                if _conflict(exc) and attempt == 0:
                    # A leftover of an earlier daemon or attempt with this name: replace it.
                    await self._remove(cname, cname)
                    continue
                if exc.status == 0:
                    raise  # unreachable: retried by the worker
                # podman refused the spec (no command in the image, a bad user or mount...).
                raise ContainerConfigError(str(exc)) from exc
        raise AssertionError("unreachable")

    async def _container_spec(
        self, pod: PodSandboxConfig, state: _Pod, config: ContainerConfig, user: str | None
    ) -> dict[str, JSON]:
        spec = config.container
        res = container_resources(spec)
        cpu: dict[str, int] = {"shares": res.cpu_shares}
        if res.cpu_quota is not None:
            cpu |= {"quota": res.cpu_quota, "period": res.cpu_period}
        limits: dict[str, JSON] = {"cpu": cpu}
        if res.memory_limit is not None:
            memory = {"limit": res.memory_limit}
            if self._swap:
                memory["swap"] = res.memory_limit  # memory + swap = memory: no swap, as kubelet
            limits["memory"] = memory
        volumes, binds = await asyncio.to_thread(_mounts, pod, state, spec)
        body: dict[str, JSON] = {
            "name": container_name(pod, spec.name, config.restart_count),
            "pod": state.name,
            "image": spec.image,
            "labels": {
                **_pod_labels(pod),
                LABEL_CONTAINER_NAME: spec.name,
                LABEL_RESTART_COUNT: str(config.restart_count),
                LABEL_CONTAINER_KIND: config.kind.value,
            },
            "env": dict(config.env),
            "resource_limits": limits,
            "volumes": volumes,
            "mounts": binds,
            "terminal": False,
            "stop_signal": 15,
            "log_configuration": {"driver": "k8s-file", "size": self._log_max_bytes},
        }
        # Kubernetes' rule: command replaces the entrypoint (and with it the image's cmd),
        # args replace the cmd; with args alone the image's entrypoint stays.
        if config.command:
            body["entrypoint"] = list(config.command)
        if config.args:
            body["command"] = list(config.args)
        if spec.working_dir:
            body["work_dir"] = spec.working_dir
            body["create_working_dir"] = True
        if user is not None:
            body["user"] = user
        if self._oci_runtime:
            body["oci_runtime"] = self._oci_runtime
        if self._rlimits:
            body["r_limits"] = self._rlimits
        return body

    async def _prune_kept(self, state: _Pod, name: str, *, keep_from: int) -> None:
        """Remove kept instances of container ``name`` older than restart count keep_from."""
        kept = state.kept.get(name, [])
        for entry in [e for e in kept if e[0] < keep_from]:
            with contextlib.suppress(RuntimeFailure):
                await self._remove(entry[1], f"{name}#{entry[0]}")
            kept.remove(entry)

    async def _remove(self, ref: str, what: str) -> None:
        await self._api.call(
            "DELETE",
            f"/containers/{path_arg(ref)}",
            params={"force": "true", "t": 0},
            ok=(200, 204, 404),
            what=f"remove container {what}",
        )

    async def _wait(self, inst: _Instance) -> None:
        """The instance's only waiter: podman's wait, again after podman comes back."""
        delays = iter(RECONNECT_DELAYS)
        try:
            while True:
                try:
                    await self._api.call(
                        "POST",
                        f"/containers/{inst.podman_id}/wait",
                        params={"condition": ["exited", "stopped"]},
                        timeout=None,
                        what=f"wait for {inst.log.extra and inst.log.extra.get('object')}",
                    )
                    break
                except PodmanError as exc:
                    if exc.status != 0:
                        raise
                    delay = next(delays, RECONNECT_DELAYS[-1])
                    inst.log.warning("%s; waiting again in %gs", exc, delay)
                    await asyncio.sleep(delay)
            result = await self._exit_of(inst)
            inst.log.info("exited: code %d (%s)", result.exit_code, result.reason.value)
            inst.exit.set_result(result)
        except asyncio.CancelledError:
            if not inst.exit.done():
                inst.exit.set_exception(
                    RuntimeFailure("the podman runtime closed before the container exited")
                )
                inst.exit.exception()
            raise
        except RuntimeFailure as exc:
            # Running -> lost: removed behind our back (podman rm -f) or podman forgot it.
            if inst.oom is not None:
                inst.oom.close()
            inst.exit.set_exception(exc)
            inst.exit.exception()

    async def _exit_of(self, inst: _Instance) -> ContainerExit:
        data = await self._api.call(
            "GET", f"/containers/{inst.podman_id}/json", what="inspect exited container"
        )
        state = data.get("State", {}) if isinstance(data, dict) else {}
        code = int(state.get("ExitCode", 0))
        oom = bool(state.get("OOMKilled"))
        if inst.oom is not None:
            oom = inst.oom.finish() or oom
        if code == 137 and not oom and not inst.oom_event and self._events_connected:
            # An OOM kill is a SIGKILL: podman's "oom" event, if any, precedes "died".
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DIED_GRACE):
                    await inst.died.wait()
        oom = oom or inst.oom_event
        error = str(state.get("Error") or "") or None
        reason = (
            ExitReason.OOM_KILLED
            if oom
            else ExitReason.COMPLETED
            if code == 0
            else ExitReason.ERROR
        )
        started_at = _parse_time(state.get("StartedAt")) or inst.started_at
        # podman stamps StartedAt after the process runs: a quick exit may seem to precede it.
        finished_at = max(_parse_time(state.get("FinishedAt")) or datetime.now(UTC), started_at)
        return ContainerExit(
            exit_code=code,
            signal=None,  # podman reports only the code (128+N after signal N)
            reason=reason,
            message=error,
            started_at=started_at,
            finished_at=finished_at,
        )

    async def wait_container(self, container_id: ContainerID) -> ContainerExit:
        inst = self._instances.get(container_id) or await self._adopt(container_id)
        return await asyncio.shield(inst.exit)

    async def _adopt(self, container_id: ContainerID) -> _Instance:
        """An instance this runtime did not start (an earlier daemon did): wait on it too."""
        podman_id = _podman_id(container_id)
        data = await self._api.call(
            "GET", f"/containers/{path_arg(podman_id)}/json", ok=(200,), what="inspect"
        )
        labels = (data.get("Config") or {}).get("Labels") or {}
        inst = _Instance(
            container_id=container_id,
            podman_id=str(data["Id"]),
            pod_uid=str(labels.get(LABEL_POD_UID, "")),
            name=str(labels.get(LABEL_CONTAINER_NAME, data.get("Name", ""))),
            restart_count=int(labels.get(LABEL_RESTART_COUNT, 0)),
            started_at=_parse_time(data.get("State", {}).get("StartedAt")) or datetime.now(UTC),
            log=_ObjectLog(log, {"object": str(data.get("Name", podman_id))}),
            oom=None,
            exit=asyncio.get_running_loop().create_future(),
            ref=ContainerEventRef(
                namespace=str(labels.get(LABEL_POD_NAMESPACE, "")),
                pod_name=str(labels.get(LABEL_POD_NAME, "")),
                pod_uid=str(labels.get(LABEL_POD_UID, "")),
                field_path=_field_path(
                    str(labels.get(LABEL_CONTAINER_KIND, "regular")),
                    str(labels.get(LABEL_CONTAINER_NAME, "")),
                ),
            ),
        )
        self._instances[container_id] = inst
        self._spawn(self._wait(inst), name=f"podman wait {podman_id[:12]}")
        return inst

    async def stop_container(self, container_id: ContainerID, *, grace_seconds: float) -> None:
        inst = self._instances.get(container_id)
        if inst is not None and inst.exit.done():
            return
        if inst is not None:
            inst.stopping = True  # podman's kill/stop events for it are ours
        podman_id = _podman_id(container_id)
        grace = max(0, math.ceil(grace_seconds))
        # Running -> Terminating: SIGTERM, SIGKILL after grace (podman does both).
        await self._api.call(
            "POST",
            f"/containers/{path_arg(podman_id)}/stop",
            params={"timeout": grace},
            ok=(204, 304, 404),
            timeout=grace + STOP_SLACK,
            what=f"stop container {podman_id[:12]}",
        )
        if inst is not None:
            with contextlib.suppress(RuntimeFailure):
                async with asyncio.timeout(STOP_SLACK):
                    await asyncio.shield(inst.exit)

    async def remove_container(self, container_id: ContainerID) -> None:
        inst = self._instances.get(container_id)
        if inst is None:
            return
        if not inst.exit.done():
            raise RuntimeFailure(f"container {container_id} is running: stop it before removing")
        self._forget(inst)
        state = self._pods.get(inst.pod_uid)
        if state is not None:
            # Kept for `logs --previous` until the next-but-one instance starts or stop_pod.
            state.kept.setdefault(inst.name, []).append((inst.restart_count, inst.podman_id))
        else:
            await self._remove(inst.podman_id, inst.name)

    def _forget(self, inst: _Instance) -> None:
        self._instances.pop(inst.container_id, None)
        if inst.oom is not None:
            inst.oom.close()

    # --- images -------------------------------------------------------------------------------

    async def image_present(self, image: str) -> dict[str, JSON] | None:
        """The image's inspect document, or None when it is not in podman's store."""
        data = await self._api.call(
            "GET", f"/images/{path_arg(image)}/json", ok=(200, 404), what=f"inspect image {image}"
        )
        return data if isinstance(data, dict) and "Id" in data else None

    async def pull_image(self, image: str) -> None:
        """Pull from the image's registry; ImagePullError with podman's message on failure."""
        error: str | None = None
        try:
            async for chunk in self._api.stream(
                "POST",
                "/images/pull",
                params={"reference": image, "quiet": "true", "policy": "always"},
                what=f"pull image {image}",
            ):
                for line in chunk.splitlines():
                    if b'"error"' in line:
                        with contextlib.suppress(ValueError):
                            error = str(json.loads(line).get("error")) or error
        except PodmanError as exc:
            if exc.status == 0:
                raise
            error = str(exc)
        if error is not None:
            raise ImagePullError(f'Failed to pull image "{image}": {error}', reason="ErrImagePull")

    async def _ensure_image(
        self, pod: PodSandboxConfig, config: ContainerConfig
    ) -> dict[str, JSON]:
        """kubelet's image manager: the pull policy, with its events. Returns the inspect."""
        image = config.container.image
        if not image:
            raise ContainerConfigError(f"container {config.container.name!r} has no image")
        policy = pull_policy(image, config.container.image_pull_policy)
        present = None if policy == "Always" else await self.image_present(image)
        if present is not None:
            self._event(
                pod,
                config,
                "Normal",
                "Pulled",
                f'Container image "{image}" already present on machine',
            )
            return present
        if policy == "Never":
            message = f'Container image "{image}" is not present with pull policy of Never'
            self._event(pod, config, "Warning", "ErrImageNeverPull", message)
            raise ImagePullError(message, reason="ErrImageNeverPull")
        self._event(pod, config, "Normal", "Pulling", f'Pulling image "{image}"')
        began = asyncio.get_running_loop().time()
        # A failure raises ImagePullError: the worker records kubelet's Warning Failed with it.
        await self.pull_image(image)
        present = await self.image_present(image)
        if present is None:
            raise ImagePullError(
                f'Failed to pull image "{image}": not present after the pull',
                reason="ErrImagePull",
            )
        took = _go_duration(asyncio.get_running_loop().time() - began)
        self._event(
            pod,
            config,
            "Normal",
            "Pulled",
            f'Successfully pulled image "{image}" in {took} ({took} including waiting). '
            f"Image size: {int(present.get('Size') or 0)} bytes.",
        )
        return present

    def _event(
        self,
        pod: PodSandboxConfig,
        config: ContainerConfig,
        type_: Literal["Normal", "Warning"],
        reason: str,
        message: str,
    ) -> None:
        log.debug(
            "%s/%s/%s: %s %s", pod.namespace, pod.name, config.container.name, reason, message
        )
        if self._container_events is not None:
            self._container_events(_event_ref(pod, config), type_, reason, message)

    # --- podman's events -----------------------------------------------------------------------

    async def _follow_events(self) -> None:
        """The "podman events" task: follow podman's event stream for as long as the runtime
        lives, reconnecting with backoff; after an outage, replay from where it was left."""
        delays = iter(RECONNECT_DELAYS)
        since: str | None = None  # podman's "time" (unix seconds) of the last event seen
        filters = json.dumps({"type": ["container"], "event": list(EVENTS_FOLLOWED)})
        while True:
            params: dict[str, str] = {"stream": "true", "filters": filters}
            if since is not None:
                params["since"] = since
            buffer = b""
            try:
                async for chunk in self._api.stream(
                    "GET",
                    "/events",
                    params=params,
                    what="follow podman's events",
                    opened=self._events_opened,
                ):
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        since = self._on_event_line(line) or since
                # podman closed the stream (its service stopped): follow it again.
                raise PodmanError("follow podman's events: the stream ended", status=0)
            except PodmanError as exc:
                self.report.waiting(
                    f"podman does not answer on {self.socket}; podman pods wait until it does"
                    if exc.status == 0
                    else f"following podman's events failed: {exc}"
                )
                if self._events_connected:
                    self._events_connected = False
                    delays = iter(RECONNECT_DELAYS)
                    since = since or str(int(datetime.now(UTC).timestamp()))
                    log.warning("%s; following again with backoff", exc)
                else:
                    log.debug("%s", exc)  # still away (or never there): said once above
                await asyncio.sleep(next(delays, RECONNECT_DELAYS[-1]))

    def _events_opened(self) -> None:
        self._events_connected = True
        log.debug("following podman's events")
        self._check_engine()

    # --- the engine check ---------------------------------------------------------------------

    def _check_engine(self) -> None:
        """Check podman (podman_engine.check) in the background, unless a check runs already."""
        if self._checking is None or self._checking.done():
            self._checking = self._spawn(self._run_check(), name="podman engine check")

    async def _run_check(self) -> None:
        try:
            problem = await podman_engine.check(self._api)
        except PodmanError as exc:
            self.report.waiting(f"the engine check failed: {exc}")
            return
        if problem is None:
            self.report.ready()
        else:
            self.report.missing(problem)

    def _explained(self, exc: PodmanError) -> PodmanError:
        """podman's error creating or starting a pod, with what to do about it when known (and
        then reported like a failed engine check)."""
        hint = podman_engine.explain(exc.detail) if exc.status != 0 else None
        if hint is None:
            return exc
        self.report.missing(podman_engine.infra_problem(exc.detail))
        return PodmanError(f"{exc}; {hint}", status=exc.status, cause=exc.cause, detail=exc.detail)

    def _on_event_line(self, line: bytes) -> str | None:
        """One event of podman's stream -> its meaning for a tracked instance (module doc).
        Returns the event's time (for ``since``), None for a line that is not an event."""
        try:
            event = json.loads(line)
        except ValueError:
            return None
        if not isinstance(event, dict):
            return None
        stamp = event.get("time")
        action = str(event.get("Action") or event.get("status") or "")
        podman_id = str((event.get("Actor") or {}).get("ID") or event.get("id") or "")
        inst = self._instances.get(ContainerID(f"podman://{podman_id}"))
        if inst is not None:
            self._on_event(inst, action)
        return str(stamp) if isinstance(stamp, int) else None

    def _on_event(self, inst: _Instance, action: str) -> None:
        if action == "oom":
            inst.log.info("podman reports an OOM kill")
            inst.oom_event = True
        elif action == "died":
            inst.died.set()
        elif action in ("kill", "stop", "remove") and not inst.stopping:
            if inst.external_reported or (action != "remove" and inst.exit.done()):
                return
            inst.external_reported = True
            done = {"kill": "killed", "stop": "stopped", "remove": "removed"}[action]
            what = f"{done} outside minikubelet (podman {'rm' if action == 'remove' else action})"
            inst.log.warning("%s", what)
            if self._container_events is not None:
                self._container_events(
                    inst.ref, "Warning", EXTERNAL_REASON, f"Container {inst.name} was {what}"
                )

    # --- exec ---------------------------------------------------------------------------------

    async def exec_in_container(
        self,
        container_id: ContainerID,
        command: Sequence[str],
        *,
        timeout: float,
        output_limit: int = 10 * 1024,
    ) -> ExecResult:
        """podman's exec: create + start (attached, frames demuxed) + inspect for the code.

        On timeout the exec's process is killed (podman has no API for it; the service runs on
        this host, so its host pid is signalled) and TimeoutError is raised.
        """
        if not command:
            raise ContainerConfigError("exec: no command given")
        podman_id = _podman_id(container_id)
        created = await self._api.call(
            "POST",
            f"/containers/{path_arg(podman_id)}/exec",
            body={"Cmd": list(command), "AttachStdout": True, "AttachStderr": True},
            ok=(201, 200),
            what=f"exec in {podman_id[:12]}",
        )
        exec_id = str(created["Id"])
        output = bytearray()
        try:
            async with asyncio.timeout(timeout):
                stream = self._api.stream(
                    "POST", f"/exec/{exec_id}/start", body={"Detach": False}, what="exec start"
                )
                async for _, payload in demux(stream):
                    # Keep reading past the limit: a blocked writer would never exit.
                    output.extend(payload[: max(0, output_limit - len(output))])
                code = await self._exec_exit_code(exec_id)
        except TimeoutError:
            with contextlib.suppress(RuntimeFailure, TimeoutError, OSError):
                async with asyncio.timeout(2.0):
                    await self._kill_exec(exec_id)
            raise
        return ExecResult(exit_code=code, output=bytes(output))

    async def _exec_exit_code(self, exec_id: str) -> int:
        while True:
            data = await self._api.call("GET", f"/exec/{exec_id}/json", what="inspect exec")
            if not data.get("Running"):
                return int(data.get("ExitCode", 0))
            await asyncio.sleep(EXEC_EXIT_POLL)

    async def _kill_exec(self, exec_id: str) -> None:
        data = await self._api.call("GET", f"/exec/{exec_id}/json", what="inspect exec")
        pid = int(data.get("Pid") or 0)
        if data.get("Running") and pid > 0:
            os.kill(pid, 9)

    # --- restart recovery ---------------------------------------------------------------------

    async def recover_pod(self, pod: PodSandboxConfig) -> Sequence[RecoveredContainer]:
        """Nothing is adopted from podman yet: its containers are found again by their labels
        when the pod starts, and replaced."""
        return []

    async def clean_up_pods(self, keep: Collection[str]) -> None:
        return None

    # --- logs ---------------------------------------------------------------------------------

    def logs(
        self,
        pod: PodSandboxConfig,
        container_name: str,
        *,
        restart_count: int,
        previous: bool = False,
        tail_lines: int | None = None,
        follow: bool = False,
    ) -> AsyncIterator[bytes]:
        """The instance's output from podman's logs API. LookupError on the first read."""
        n = restart_count - 1 if previous else restart_count
        which = "previous terminated container" if previous else "container"
        if n < 0:
            raise LookupError(f'{which} "{container_name}" in pod "{pod.name}" not found')
        return self._logs(
            container_name=container_name,
            podman_name=container_name_of(pod, container_name, n),
            missing=f'{which} "{container_name}" in pod "{pod.name}" has no log (instance {n})',
            tail_lines=tail_lines,
            follow=follow,
        )

    async def _logs(
        self,
        *,
        container_name: str,
        podman_name: str,
        missing: str,
        tail_lines: int | None,
        follow: bool,
    ) -> AsyncIterator[bytes]:
        params: dict[str, str | int] = {"stdout": "true", "stderr": "true"}
        params["follow"] = "true" if follow else "false"
        if tail_lines is not None:
            params["tail"] = max(0, tail_lines)
        try:
            async for _, payload in demux(
                self._api.stream(
                    "GET",
                    f"/containers/{path_arg(podman_name)}/logs",
                    params=params,
                    what=f"logs of {container_name}",
                )
            ):
                yield payload
        except PodmanError as exc:
            if exc.status == 404:
                raise LookupError(missing) from exc
            raise


# --- names and labels ----------------------------------------------------------------------------


def pod_name(pod: PodSandboxConfig) -> str:
    """The podman pod's name: unique per pod UID, readable in `podman pod ps`."""
    return f"{pod.name}_{pod.namespace}_{pod.uid[:8]}"


def container_name(pod: PodSandboxConfig, name: str, restart_count: int) -> str:
    """The podman container of one instance (dockershim's k8s_<container>_<pod>_... shape)."""
    return f"k8s_{name}_{pod_name(pod)}_{restart_count}"


container_name_of = container_name  # for methods whose parameter is called container_name


def _pod_labels(pod: PodSandboxConfig) -> dict[str, str]:
    return {LABEL_POD_UID: pod.uid, LABEL_POD_NAME: pod.name, LABEL_POD_NAMESPACE: pod.namespace}


def _label_filter(uid: str) -> str:
    return json.dumps({"label": [f"{LABEL_POD_UID}={uid}"]})


def _field_path(kind: str, name: str) -> str:
    group = "containers" if kind == "regular" else "initContainers"
    return f"spec.{group}{{{name}}}"


def _go_duration(seconds: float) -> str:
    """Go's Duration.String() of a duration truncated to milliseconds (kubelet's pull time)."""
    ms = max(0, int(seconds * 1000))
    if ms < 1000:
        return f"{ms}ms"
    minutes, ms = divmod(ms, 60_000)
    secs = f"{ms / 1000:.3f}".rstrip("0").rstrip(".")
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _hostname(name: str) -> str:
    return name[:63].rstrip("-.") or "pod"


def _podman_id(container_id: ContainerID) -> str:
    prefix, sep, rest = container_id.partition("://")
    if sep and prefix != "podman":
        raise RuntimeFailure(f"{container_id} is not a podman container")
    return rest if sep else container_id


def _port_mappings(pod: PodSandboxConfig) -> list[JSON]:
    mappings: list[JSON] = []
    for container in [*(pod.spec.init_containers or []), *pod.spec.containers]:
        for port in container.ports or []:
            if not port.host_port:
                continue
            mapping: dict[str, JSON] = {
                "container_port": port.container_port,
                "host_port": port.host_port,
                "protocol": port.protocol.lower(),
            }
            if port.host_ip:
                mapping["host_ip"] = port.host_ip
            mappings.append(mapping)
    return mappings


# --- images --------------------------------------------------------------------------------------


def pull_policy(image: str, policy: PullPolicy | None) -> PullPolicy:
    """Kubernetes' default (Always for :latest or no tag, else IfNotPresent), except that a
    ``localhost/`` image, which only exists locally, is never pulled under Always."""
    if policy is None:
        last = image.rsplit("/", 1)[-1]
        tag = last.partition(":")[2] if "@" not in last else "digest"
        policy = "Always" if tag in ("", "latest") else "IfNotPresent"
    if policy == "Always" and image.startswith("localhost/"):
        return "IfNotPresent"
    return policy


def _user(pod: PodSandboxConfig, spec: Container, image: dict[str, JSON]) -> str | None:
    """podman's ``user`` from runAsUser/runAsGroup (container over pod), checking
    runAsNonRoot against the effective user as kubelet does."""
    csc, psc = spec.security_context, pod.spec.security_context
    uid = csc.run_as_user if csc and csc.run_as_user is not None else None
    if uid is None and psc is not None:
        uid = psc.run_as_user
    gid = csc.run_as_group if csc and csc.run_as_group is not None else None
    if gid is None and psc is not None:
        gid = psc.run_as_group
    non_root = csc.run_as_non_root if csc and csc.run_as_non_root is not None else None
    if non_root is None and psc is not None:
        non_root = psc.run_as_non_root
    image_user = str((image.get("Config") or {}).get("User") or "")
    if non_root:
        who = f'(pod: "{pod.name}_{pod.namespace}({pod.uid})", container: {spec.name})'
        if uid is None:
            name = image_user.split(":")[0]
            if name and not name.isdigit():
                raise ContainerConfigError(
                    f"container has runAsNonRoot and image has non-numeric user ({name}), "
                    f"cannot verify user is non-root {who}"
                )
            if int(name or 0) == 0:
                raise ContainerConfigError(
                    f"container has runAsNonRoot and image will run as root {who}"
                )
        elif uid == 0:
            raise ContainerConfigError(f"container's runAsUser breaks non-root policy {who}")
    if uid is None and gid is None:
        return None
    if uid is None:
        uid_part = image_user.split(":")[0] or "0"
        return f"{uid_part}:{gid}"
    return f"{uid}:{gid}" if gid is not None else str(uid)


# --- mounts --------------------------------------------------------------------------------------


def _mounts(pod: PodSandboxConfig, state: _Pod, spec: Container) -> tuple[list[JSON], list[JSON]]:
    """(named volumes, bind mounts) for the container's volumeMounts. Runs in a thread: hostPath
    checks and subPath directories touch the host's filesystem."""
    by_name: dict[str, Volume] = {v.name: v for v in pod.spec.volumes or []}
    named: list[JSON] = []
    binds: list[JSON] = []
    for i, mount in enumerate(spec.volume_mounts or []):
        where = f"volumeMounts[{i}] ({mount.name})"
        volume = by_name.get(mount.name)
        if volume is None:
            raise ContainerConfigError(f"{where}: no volume named {mount.name!r} in the pod")
        options = ["ro"] if mount.read_only else ["rw"]
        if volume.empty_dir is not None:
            if not mount.sub_path:
                named.append(
                    {
                        "Name": state.volumes[volume.name],
                        "Dest": mount.mount_path,
                        "Options": options,
                    }
                )
                continue
            if volume.name not in state.mountpoints:
                raise ContainerConfigError(
                    f"{where}: subPath on a medium: Memory emptyDir is not supported by the "
                    "podman runtime"
                )
            source = mounts.sub_path_source(state.mountpoints[volume.name], mount.sub_path, where)
        elif volume.host_path is not None:
            source = mounts.host_path_source(
                volume.name, volume.host_path.path, volume.host_path.type
            )
            if mount.sub_path:
                source = mounts.sub_path_source(source, mount.sub_path, where)
        else:
            raise ContainerConfigError(
                f"volume {volume.name!r}: the podman runtime supports only emptyDir and hostPath "
                "volumes"
            )
        binds.append(
            {
                "Destination": mount.mount_path,
                "Type": "bind",
                "Source": str(source),
                "Options": ["rbind", *options],
            }
        )
    return named, binds


# --- host facts ----------------------------------------------------------------------------------


def _conflict(exc: PodmanError) -> bool:
    """The name is taken. podman 4.3 says 409 for pods but 500 for containers and volumes."""
    return exc.status == 409 or (
        exc.status == 500 and ("already in use" in exc.cause or "already exists" in exc.cause)
    )


def _has_memory_limit(body: dict[str, JSON]) -> bool:
    return "memory" in (body.get("resource_limits") or {})


def _cgroup_v1_memory() -> bool:
    return Path("/sys/fs/cgroup/memory/memory.oom_control").exists()


def _pick_oci_runtime() -> str | None:
    """runc on cgroup v1 hosts: crun 1.8 refuses "hybrid" ones (ENGINES.md)."""
    return "runc" if _cgroup_v1_memory() else None


def _swap_limit_supported() -> bool:
    if _cgroup_v1_memory():
        return Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
    return True


def _parse_time(raw: object) -> datetime | None:
    """podman's RFC 3339 times with nanoseconds; None for its zero time."""
    if not isinstance(raw, str) or raw.startswith("0001-"):
        return None
    head, _, rest = raw.partition(".")
    frac, tz = "", "+00:00"
    if rest:
        digits = "".join(c for c in rest if c.isdigit())
        frac = "." + digits[:6]
        tz = rest[len(digits) :] or tz
    elif raw.endswith("Z"):
        head = raw[:-1]
    tz = "+00:00" if tz == "Z" else tz
    try:
        return datetime.fromisoformat(head + frac + tz).astimezone(UTC)
    except ValueError:
        return None


def _start_error(exc: PodmanError) -> str:
    """runc's start error, without podman's wrapping."""
    text = str(exc).split(": ", 1)[-1]
    return text.removesuffix(": OCI runtime attempted to invoke a command that was not found")


__all__ = [
    "ContainerEventRef",
    "ContainerEventSink",
    "ImagePullError",
    "PodmanRuntime",
    "container_name",
    "pod_name",
    "pull_policy",
]
