"""The embedded default runtime: containers as host processes started by minikubelet.

There is no image: ``command`` + ``args`` is the argv (``args`` alone when there is no
``command``), run on the host's filesystem with exactly the container's env. What a container
gets instead of an image's isolation:

- its own session and process group, led by a tiny ``sh``, the *exit recorder*
  (``mounts.SETUP_SCRIPT``/``RUN_SCRIPT``): it runs the command as its child and writes the
  command's exit status to the instance's exit file when it ends, so that the status is known
  even if no daemon was there to wait (see ``instances``). Stop signals go to the whole group;
- its stdout and stderr are its log file itself (``logfiles``): no pipe to the daemon, so the
  container neither dies of SIGPIPE nor loses output when the daemon is gone;
- as root, a private mount namespace made by util-linux ``unshare --mount --propagation
  private``, in which the recorder binds the pod's private ``/tmp`` and the container's
  volumes, enters ``workingDir``, and runs the command (through ``setpriv`` when
  runAsUser/runAsGroup ask for another user). Chosen over bubblewrap because the spawned PID
  stays in the container (as the recorder): exec probes join it with ``nsenter -t <pid> -m``.
  Not as root, there is no namespace: volumeMounts are refused and the private /tmp is offered
  as ``TMPDIR`` instead.

With a cgroup driver (``cgroups=``), every pod gets a pod cgroup in ``start_pod`` and every
container *instance* a fresh container cgroup. With limits (cgroup v2 with controllers) they
carry kubelet's limits; in tracking mode (a cgroup v2 hierarchy without controllers) they only
hold the processes. The recorder enters the cgroup before anything else (the first op of its
script: ``echo $$ > cgroup.procs``, no extra exec); if it cannot, it exits 128 before the
command runs. A container's processes, also those that left its process group, are then
exactly its cgroup's: the runtime kills the cgroup (``cgroup.kill``) when the instance ends and
checks membership before adopting a process. Without a cgroup, the runtime finds them from the
process group, the session and the live descendants (``procs.members``), which misses a process
that started a session of its own and whose parent has already exited. A non-zero
``memory.events`` ``oom_kill`` (limits only; fresh per instance) makes an exit OOMKilled.

Processes are held by pidfds, never by number (``procs``): the runtime signals the leader
through its pidfd, its process group by number only while the leader is an unreaped child of
ours, and any other process only after pinning it and checking it is still the one found.

Restart recovery (docs/recovery.md): leaving ``async with`` stops the runtime's tasks but not
the containers. Entering it again (a new daemon) reads every instance record under ``root``:
an instance whose leader is still the recorded process (same boot, same start time, same
cgroup) is *adopted*: held by a pidfd, its log taken over, a reaper watching it, and it is
handed to its pod worker by ``recover_pod``. One that ended meanwhile is reported with the
status its recorder wrote (and the file's mtime as the finish time), or as kubelet's
``ContainerStatusUnknown`` when nothing was written. ``clean_up_pods`` stops and removes the
pods nobody claims.

Exec (probes, lifecycle hooks) is the hot path: one exec per exec probe and period. As root it
is ``nsenter -t <pid> -m -r --wdns=<workdir> -- <command>`` with the container's env as it is;
``mounts.EXEC_SCRIPT``'s ``sh`` comes in between only to enter a cgroup with limits (or with an
nsenter older than 2.38); in tracking mode the daemon moves the exec into the container's
cgroup right after spawning it. It is started by ``spawn`` (posix_spawn, waited for through a
pidfd) rather than through asyncio's subprocess machinery.

Each instance has exactly one reaper task (``_reap``): it waits for the leader, kills what the
container left, reads the exit, and resolves the instance's ``exit`` future. ``wait_container``
and ``stop_container`` only ever await that future (shielded), so both may run at once.

Layout under ``root`` (e.g. ``<state dir>/process``), all of it removed by ``stop_pod``:

    pods/<uid>/tmp/                          the pod's private /tmp (mode 1777)
    pods/<uid>/volumes/<name>/               emptyDir volumes (a tmpfs for medium: Memory)
    pods/<uid>/logs/<container>/<n>.log      instance n's output (see logfiles)
    pods/<uid>/containers/<container>-<n>.json   the instance record (see instances)
    pods/<uid>/containers/<container>-<n>.exit   its exit status, written by its recorder
    pods/<uid>/mountpoints                   host paths created as mount points, one a line
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import posixpath
import pwd
import re
import shutil
import signal
from collections.abc import (
    AsyncIterator,
    Collection,
    Coroutine,
    MutableMapping,
    Sequence,
)
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from minikubelet.aiotasks import TaskSet
from minikubelet.api import quantity
from minikubelet.api.errors import ContainerConfigError, RuntimeFailure, StartFailure
from minikubelet.api.model import Container
from minikubelet.api.resources import oom_score_adj
from minikubelet.cgroups import Cgroup, CgroupDriver, CgroupError
from minikubelet.runtime import instances, logfiles, mounts, procs, spawn
from minikubelet.runtime.base import (
    ContainerConfig,
    ContainerExit,
    ContainerID,
    ExecResult,
    PodSandbox,
    PodSandboxConfig,
    RecoveredContainer,
    StartedContainer,
)
from minikubelet.runtime.engine import EngineReport
from minikubelet.runtime.instances import InstanceRecord

log = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""The PATH a container gets when its env sets none (containerd's default for Linux)."""

HOST_TOOL_PACKAGES = {  # the host tools this runtime runs, and their Debian packages
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "setpriv": "util-linux",
    "mount": "mount",
    "umount": "mount",
}

SETUP_TIMEOUT = 30.0  # the binds in the new namespace; a hung hostPath must not hang the start
GROUP_EXIT_TIMEOUT = 5.0  # after SIGKILL to a container, for every process of it to be gone
EXEC_DRAIN_TIMEOUT = 1.0  # for an exec's output pipe's EOF once it has exited
MOUNTPOINTS_FILE = "mountpoints"


class _ObjectLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every line with the object it is about, as kopf's ObjectLogger does."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        return f"{(self.extra or {}).get('object')}: {msg}", kwargs


@dataclass(frozen=True, slots=True)
class _User:
    uid: int  # the uid the container runs as
    gid: int  # its primary gid; supplementary groups are cleared


@dataclass(slots=True)
class _Instance:
    """One container instance, from its start (or adoption) until remove_container or
    stop_pod."""

    record: InstanceRecord  # as on disk: identity, what exec needs, and the exit once known
    record_path: Path
    exit_file: Path  # written by its recorder
    leader: procs.Leader  # the recorder: pid == pgid == sid
    log: _ObjectLog
    output: logfiles.LiveLog  # its log file
    exit: asyncio.Future[ContainerExit]  # resolved by the reaper, once
    cgroup: Cgroup | None = None  # this instance's container cgroup; None without a driver
    adopted: bool = False  # started by an earlier daemon
    killed: bool = False  # we sent SIGKILL: an exit without a recorded status is ours
    # Processes of the container outside its group and session, found when it was stopped
    # (no cgroup): pid -> start ticks, killed with what is left.
    strays: dict[int, int] = field(default_factory=dict)

    @property
    def container_id(self) -> ContainerID:
        return ContainerID(self.record.container_id)

    @property
    def pod_uid(self) -> str:
        return self.record.pod_uid

    @property
    def name(self) -> str:
        return self.record.container

    @property
    def pid(self) -> int:
        return self.leader.pid

    @property
    def started_at(self) -> datetime:
        return self.record.started_at


@dataclass(slots=True)
class _PodState:
    directory: Path  # <root>/pods/<uid>
    mountpoints: set[Path] = field(default_factory=set)  # host paths its containers mount on


class ProcessRuntime:
    """Runs containers as host processes. Use as ``async with ProcessRuntime(root=...) as rt``."""

    def __init__(
        self,
        *,
        root: Path,
        log_max_bytes: int = 10 * 1024 * 1024,
        log_max_files: int = 5,
        mount_namespaces: bool | None = None,
        cgroups: CgroupDriver | None = None,
        node_memory: int | None = None,
        engine_report: EngineReport | None = None,
        tool_path: str | None = None,
    ) -> None:
        """``mount_namespaces``: None uses them when root and unshare works; False never does
        (what a non-root daemon gets, for tests and for hosts that forbid unshare).

        ``cgroups``: a set-up driver to enforce limits with, or to track processes with
        (``CgroupDriver(..., limits=False)``); None runs containers without cgroups (the daemon
        decides, and reports why). ``node_memory`` (bytes, default the host's RAM) is what a
        Burstable container's oom_score_adj is computed against.

        ``engine_report`` receives what is missing on the host, as root: util-linux and mount
        (the private mount namespace, exec into it, runAsUser). ``tool_path`` is where those
        tools are looked up (default: $PATH, then the usual system directories)."""
        self._root = root
        self._cgroups = cgroups
        self._node_memory = node_memory or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        self._log_max_bytes = log_max_bytes
        self._log_max_files = log_max_files
        self._want_namespaces = mount_namespaces
        search = tool_path or f"{os.environ.get('PATH', '')}:{DEFAULT_PATH}"
        self.report = engine_report or EngineReport("process")
        self._sh = shutil.which("sh", path=search) or "/bin/sh"
        self._unshare = shutil.which("unshare", path=search)
        self._mount = shutil.which("mount", path=search)
        self._umount = shutil.which("umount", path=search)
        self._nsenter = shutil.which("nsenter", path=search)
        self._setpriv = shutil.which("setpriv", path=search)
        self._no_isolation: str | None = "the runtime has not been entered"  # why not, if not
        self._nsenter_wdns = False  # nsenter can enter the workdir itself (--wdns)
        self._entered = False
        self._boot_id = ""
        self._instances: dict[ContainerID, _Instance] = {}
        self._pods: dict[str, _PodState] = {}
        self._logs: dict[Path, logfiles.LiveLog] = {}  # by live log path
        self._pod_logs: dict[str, set[Path]] = {}  # the paths in _logs, by pod UID
        self._recovered: dict[str, list[RecoveredContainer]] = {}  # by pod UID, until claimed
        self._created_mountpoints: set[Path] = set()  # host paths we made as mount points
        self._tasks = TaskSet(log)
        self._watcher = logfiles.LogWatcher(self._tasks)

    @property
    def name(self) -> str:
        return "process"

    @property
    def cgroups(self) -> CgroupDriver | None:
        """The cgroup driver (enforcing limits, or tracking only), or None."""
        return self._cgroups

    @property
    def isolated(self) -> bool:
        """Containers get a private mount namespace (volumes, private /tmp)."""
        return self._no_isolation is None

    @property
    def _limits(self) -> bool:
        return self._cgroups is not None and self._cgroups.limits

    # --- lifecycle of the runtime itself ------------------------------------------------------

    async def __aenter__(self) -> Self:
        if not spawn.available():
            raise RuntimeFailure("the process runtime needs pidfds (Linux 5.3 or later)")
        await asyncio.to_thread(_make_root_dirs, self._root)
        self._no_isolation = await self._check_isolation()
        if self._no_isolation is not None:
            log.info("process runtime without mount namespaces: %s", self._no_isolation)
        else:
            self._nsenter_wdns = await self._check_nsenter_wdns()
        self._report_host_tools()
        self._boot_id = procs.boot_id()
        self._watcher.start()
        self._entered = True
        try:
            await self._recover()
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        running = [i for i in self._instances.values() if not i.exit.done()]
        if running:
            log.info(
                "process runtime closing with %d containers still running; they keep running "
                "(the next daemon adopts them)",
                len(running),
            )
        await self._close()

    async def _close(self) -> None:
        await self._tasks.close()
        for inst in self._instances.values():
            inst.leader.close()
        for live in self._logs.values():
            live.close()
        self._logs.clear()
        self._pod_logs.clear()
        self._entered = False

    async def _check_isolation(self) -> str | None:
        """None when containers can have a private mount namespace, else the reason why not."""
        if os.geteuid() != 0:
            return f"volume mounts need root: minikubelet runs as uid {os.geteuid()}"
        if self._want_namespaces is False:
            return "volume mounts need a private mount namespace: turned off (mount_namespaces)"
        missing = [
            name
            for name, path in (
                ("unshare", self._unshare),
                ("mount", self._mount),
                ("umount", self._umount),
                ("nsenter", self._nsenter),
            )
            if path is None
        ]
        if missing or self._unshare is None:
            return f"volume mounts need util-linux: {', '.join(missing)} not found"
        proc = await asyncio.create_subprocess_exec(
            self._unshare,
            "--mount",
            "--propagation",
            "private",
            "--",
            self._sh,
            "-c",
            "exit 0",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate()
        if proc.returncode != 0:
            reason = err.decode(errors="replace").strip() or f"exit code {proc.returncode}"
            return f"volume mounts need a private mount namespace: {reason}"
        return None

    def _report_host_tools(self) -> None:
        """As root, what the host lacks for the features above, with the package to install.
        (Without root there are no namespaces to make: nothing is missing then.)"""
        if os.geteuid() != 0 or self._want_namespaces is False:
            self.report.ready()
            return
        tools = {
            "unshare": self._unshare,
            "nsenter": self._nsenter,
            "setpriv": self._setpriv,
            "mount": self._mount,
            "umount": self._umount,
        }
        missing = [name for name, path in tools.items() if path is None]
        if missing:
            lost = []
            if set(missing) - {"setpriv"}:
                lost.append("no volume mounts, no private /tmp")
            if "setpriv" in missing:
                lost.append("no runAsUser")
            packages = sorted({HOST_TOOL_PACKAGES[name] for name in missing})
            self.report.missing(
                f"{', '.join(missing)} not found, so containers get {' and '.join(lost)}: "
                f"apt-get install {' '.join(packages)}"
            )
        elif self._no_isolation is not None:
            self.report.missing(f"containers get no volume mounts: {self._no_isolation}")
        else:
            self.report.ready()

    async def _check_nsenter_wdns(self) -> bool:
        """Whether nsenter has --wdns (util-linux >= 2.38): its help lists the option."""
        assert self._nsenter is not None
        proc = await asyncio.create_subprocess_exec(
            self._nsenter,
            "--help",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await proc.communicate()
        return b"--wdns" in out

    def _spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        return self._tasks.spawn(coro, name=name)

    def _require_entered(self) -> None:
        if not self._entered:
            raise RuntimeError("ProcessRuntime is used outside its `async with` block")

    # --- pods -----------------------------------------------------------------------------------

    def _pod_dir(self, uid: str) -> Path:
        if not uid or "/" in uid or uid in (".", ".."):
            raise RuntimeFailure(f"pod UID {uid!r} cannot name a directory")
        return self._root / "pods" / uid

    async def start_pod(self, pod: PodSandboxConfig) -> PodSandbox:
        self._require_entered()
        if pod.uid not in self._pods:
            directory = self._pod_dir(pod.uid)
            # With the mount points an earlier daemon made for this pod: ours to remove with it.
            made = await asyncio.to_thread(_make_pod_dirs, directory, pod)
            if self.isolated:
                for volume in pod.spec.volumes or []:
                    if volume.empty_dir is not None and volume.empty_dir.medium == "Memory":
                        await self._mount_tmpfs(
                            directory / "volumes" / volume.name, volume.empty_dir.size_limit
                        )
            state = _PodState(directory=directory)
            state.mountpoints.update(made)
            self._created_mountpoints.update(made)
            self._pods[pod.uid] = state
        cgroup_path: str | None = None
        if self._cgroups is not None:
            # Idempotent: QoS tier + ResourceConfigForPod (CgroupError is a RuntimeFailure).
            cgroup = self._cgroups.create_pod(uid=pod.uid, spec=pod.spec)
            if self._cgroups.limits:
                cgroup_path = str(cgroup.path)
        # The process runtime shares the host's network: probes reach containers on loopback.
        return PodSandbox(pod_ip="127.0.0.1", cgroup_path=cgroup_path)

    async def _mount_tmpfs(self, directory: Path, size_limit: int | float | str | None) -> None:
        if await asyncio.to_thread(os.path.ismount, directory):
            return  # mounted by an earlier start_pod of this UID (or an earlier daemon)
        options = "mode=0777"
        if size_limit is not None:
            try:
                size = quantity.value(quantity.parse_quantity(size_limit))
            except ValueError as exc:
                raise RuntimeFailure(f"emptyDir {directory.name!r}: sizeLimit: {exc}") from exc
            options += f",size={size}"
        assert self._mount is not None  # checked by _check_isolation
        await _run_tool([self._mount, "-t", "tmpfs", "-o", options, "tmpfs", str(directory)])

    async def stop_pod(self, pod: PodSandboxConfig) -> None:
        self._require_entered()
        await self._remove_pod(pod.uid, label=f"{pod.namespace}/{pod.name}", grace=0)

    async def _remove_pod(self, uid: str, *, label: str, grace: float | None) -> None:
        """Kill what still runs of the pod (after ``grace``; None: each record's grace period),
        then remove its cgroups, mounts and directory."""
        directory = self._pod_dir(uid)
        running = [i for i in self._instances.values() if i.pod_uid == uid]
        stopping = []
        for inst in running:
            if not inst.exit.done():
                if grace == 0:
                    inst.log.warning("still running when its pod is stopped; killing it")
                wait = inst.record.grace_seconds if grace is None else grace
                stopping.append(self.stop_container(inst.container_id, grace_seconds=wait))
        await asyncio.gather(*stopping)
        for inst in running:
            with contextlib.suppress(RuntimeFailure):
                await asyncio.shield(inst.exit)
            del self._instances[inst.container_id]
        self._recovered.pop(uid, None)
        if self._cgroups is not None:
            try:
                await self._cgroups.remove_pod(uid, timeout=GROUP_EXIT_TIMEOUT)
            except CgroupError as exc:
                log.warning("%s: pod cgroup left behind: %s", label, exc)
        # Only our tmpfs volumes can be mounted below the pod's directory in our namespace
        # (binds happen in the containers' namespaces): unmount them, deepest first.
        mounted = await asyncio.to_thread(mounts.find_mountpoints_below, directory)
        for path in sorted(mounted, key=lambda p: len(p.parts), reverse=True):
            assert self._umount is not None
            await _run_tool([self._umount, str(path)])
        if still := await asyncio.to_thread(mounts.find_mountpoints_below, directory):
            # Never remove a tree with a mount in it: rmtree would empty what is mounted.
            raise RuntimeFailure(f"cannot remove {directory}: still mounted: {still}")
        for path in self._pod_logs.pop(uid, set()):
            self._forget_log(path)
        if uid not in self._pods:
            # Not started by this daemon: its mount points are only in its directory.
            made = await asyncio.to_thread(_read_mountpoints, directory)
            self._created_mountpoints.update(made)
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(shutil.rmtree, directory)
        self._pods.pop(uid, None)
        await asyncio.to_thread(self._remove_unused_mountpoints)

    def _remove_unused_mountpoints(self) -> None:
        """Remove the mount points we created on the host that no pod uses and are still empty.

        A path stays while any pod that may run containers mounting on it exists: removing it
        would detach the mount in that container's namespace (Linux >= 3.18 allows rmdir of a
        mount point in another namespace and lazily unmounts it there).
        """
        in_use = set().union(*(p.mountpoints for p in self._pods.values()))
        for path in sorted(self._created_mountpoints, key=lambda p: len(p.parts), reverse=True):
            if path not in in_use and mounts.remove_if_unused(path):
                self._created_mountpoints.discard(path)

    # --- containers -----------------------------------------------------------------------------

    async def start_container(
        self, pod: PodSandboxConfig, config: ContainerConfig
    ) -> StartedContainer:
        self._require_entered()
        spec = config.container
        state = self._pods.get(pod.uid)
        if state is None:
            raise RuntimeFailure(f"pod {pod.name!r} ({pod.uid}) has no sandbox: start_pod first")
        cid = ContainerID(f"process://{pod.uid}-{spec.name}-{config.restart_count}")
        previous = self._instances.get(cid)
        if previous is not None and not previous.exit.done():
            raise RuntimeFailure(f"container {cid} is already running")
        olog = _ObjectLog(log, {"object": f"{pod.namespace}/{pod.name}/{spec.name}"})

        argv = [*config.command, *config.args]
        if not argv:
            raise ContainerConfigError(
                f"no command specified for container {spec.name!r}: the process runtime has "
                "no image entrypoint, so set command or args"
            )
        user = self._resolve_user(pod, spec)
        setpriv = self._setpriv_prefix(user)

        env = {"HOSTNAME": pod.name}
        tmp = state.directory / "tmp"
        if not self.isolated:
            env["TMPDIR"] = str(tmp)  # the private /tmp, as far as a process without a namespace
        env.update(config.env)  # the container's own values win
        env.setdefault("PATH", DEFAULT_PATH)
        workdir = posixpath.normpath(posixpath.join("/", spec.working_dir or "/"))

        plan = mounts.EMPTY_PLAN
        if self.isolated:
            plan = await asyncio.to_thread(
                mounts.plan_mounts,
                container=spec,
                spec=pod.spec,
                volumes_dir=state.directory / "volumes",
                private_tmp=tmp,
            )
            # Claim the mount points before creating them, so a concurrent stop_pod of
            # another pod does not remove them under us.
            state.mountpoints.update(
                p for p in plan.mountpoints() if not p.is_relative_to(state.directory)
            )
            created = await asyncio.to_thread(mounts.make_mountpoints, plan)
            made = [p for p in created if not p.is_relative_to(state.directory)]
            if made:
                self._created_mountpoints.update(made)
                await asyncio.to_thread(_add_mountpoints, state.directory, made)
        elif spec.volume_mounts:
            raise ContainerConfigError(f"{self._no_isolation}")

        await asyncio.to_thread(mounts.check_start, argv[0], env["PATH"], workdir, plan)

        cgroup: Cgroup | None = None
        # kubelet's per-QoS oom_score_adj, with or without cgroups: the recorder sets it.
        adjust: int | None = oom_score_adj(pod.spec, spec, node_memory=self._node_memory)
        if self._cgroups is not None:
            # A fresh cgroup per instance: its memory.events counts only this instance.
            cgroup = self._cgroups.create_container(uid=pod.uid, spec=pod.spec, container=spec)

        containers_dir = state.directory / "containers"
        log_dir = state.directory / "logs" / spec.name
        await asyncio.to_thread(_prune, log_dir, containers_dir, spec.name, config.restart_count)
        logs = self._pod_logs.get(pod.uid, set())
        for path in [p for p in logs if p.parent == log_dir]:
            if _restart_count_of(path) < config.restart_count - 1:
                logs.discard(path)
                self._forget_log(path)

        record = InstanceRecord(
            container_id=cid,
            pod_uid=pod.uid,
            pod_name=pod.name,
            namespace=pod.namespace,
            container=spec.name,
            restart_count=config.restart_count,
            started_at=datetime.now(UTC),
            boot_id=self._boot_id,
            grace_seconds=float(pod.spec.termination_grace_period_seconds),
            isolated=self.isolated,
            workdir=workdir,
            env=env,
            setpriv=list(setpriv),
            cgroup=str(cgroup.path) if cgroup else None,
        )
        inst = await self._spawn_instance(
            record=record,
            record_path=instances.record_path(containers_dir, spec.name, config.restart_count),
            exit_file=instances.exit_path(containers_dir, spec.name, config.restart_count),
            log_file=logfiles.log_path(log_dir, config.restart_count),
            pod=pod,
            argv=[*setpriv, *argv],
            plan=plan,
            olog=olog,
            cgroup=cgroup,
            oom_score_adj=adjust,
        )
        olog.info("started pid %d (instance %d)", inst.pid, config.restart_count)
        return StartedContainer(container_id=cid, started_at=inst.started_at)

    async def _spawn_instance(
        self,
        *,
        record: InstanceRecord,
        record_path: Path,
        exit_file: Path,
        log_file: Path,
        pod: PodSandboxConfig,
        argv: list[str],
        plan: mounts.MountPlan,
        olog: _ObjectLog,
        cgroup: Cgroup | None,
        oom_score_adj: int | None,
    ) -> _Instance:
        """Start the recorder with the command; with a namespace, wait until it is set up.

        The record is written before the spawn (no pid) and right after it (the pid and its
        start time), each time atomically: a daemon killed in between finds the instance by
        its exit file's path in the process's arguments (``instances.find_unrecorded``)."""
        instances.write_record(record_path, record, atomic=False)
        procs_path = cgroup.procs_path if cgroup else None
        if self.isolated:
            assert self._unshare and self._mount and self._umount
            full = [
                self._unshare,
                "--mount",
                "--propagation",
                "private",
                "--",
                *mounts.setup_argv(
                    sh=self._sh,
                    mount=self._mount,
                    umount=self._umount,
                    stage=self._root / "stage",
                    plan=plan,
                    workdir=record.workdir,
                    env=record.env,
                    argv=argv,
                    exit_file=exit_file,
                    cgroup_procs=procs_path,
                    oom_score_adj=oom_score_adj,
                ),
            ]
        else:
            full = mounts.run_argv(
                sh=self._sh,
                workdir=record.workdir,
                env=record.env,
                argv=argv,
                exit_file=exit_file,
                cgroup_procs=procs_path,
                oom_score_adj=oom_score_adj,
            )
        out = logfiles.open_for_container(log_file)
        # With a namespace, stdin carries the setup status (the script then takes /dev/null as
        # the container's stdin).
        status_r, status_w = os.pipe2(os.O_CLOEXEC) if self.isolated else (-1, -1)
        try:
            pid = spawn.spawn_pid(
                full, env=record.env, stdout=out, stdin=status_w if status_w >= 0 else None
            )
            try:
                leader = procs.Leader.spawned(pid)
            except OSError:
                # No pidfd (EMFILE): nobody would reap it otherwise.
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)  # noqa: ASYNC222 (SIGKILLed: returns at once)
                raise
        except OSError as exc:
            if status_r >= 0:
                os.close(status_r)
            record.exit = instances.start_error(record.started_at, str(exc))
            with contextlib.suppress(OSError):
                instances.write_record(record_path, record)
            raise StartFailure(f'exec: "{full[0]}": {exc.strerror or exc}') from exc
        finally:
            # The child has its copies; ours would keep the pipe open forever.
            os.close(out)
            if status_w >= 0:
                os.close(status_w)
        record.pid = pid
        record.start_ticks = procs.start_ticks(pid)
        inst = self._instance(
            record, record_path, leader=leader, olog=olog, log_file=log_file, cgroup=cgroup
        )
        status: str | None = mounts.OK_MARKER
        try:
            with contextlib.suppress(OSError):
                # In a thread: a daemon killed before it lands finds the process by its
                # arguments (instances.find_unrecorded).
                await asyncio.to_thread(instances.write_record, record_path, record)
            if status_r >= 0:
                fd, status_r = status_r, -1
                status = await _read_setup_status(fd)
        except BaseException:
            # Cancelled while starting: nobody would reap it, so do it now.
            if status_r >= 0:
                os.close(status_r)
            await self._abandon(inst)
            raise
        if status is None or not status.rstrip().endswith(mounts.OK_MARKER):
            await self._abandon(inst)
            detail = "timed out" if status is None else status.strip() or "it exited"
            # Starting -> StartError: the binds failed; the command never ran.
            raise StartFailure(f"container setup in its mount namespace failed: {detail}")
        if warnings := status.rstrip().removesuffix(mounts.OK_MARKER).strip():
            olog.warning("container setup: %s", warnings)
        self._watch(inst)
        return inst

    def _instance(
        self,
        record: InstanceRecord,
        record_path: Path,
        *,
        leader: procs.Leader,
        olog: _ObjectLog,
        log_file: Path,
        cgroup: Cgroup | None,
        adopted: bool = False,
    ) -> _Instance:
        return _Instance(
            record=record,
            record_path=record_path,
            exit_file=record_path.with_suffix(".exit"),
            leader=leader,
            log=olog,
            output=self._live_log(log_file),
            exit=asyncio.get_running_loop().create_future(),
            cgroup=cgroup,
            adopted=adopted,
        )

    def _watch(self, inst: _Instance) -> None:
        """Reaped from here on, whatever happens to the caller."""
        self._instances[inst.container_id] = inst
        self._spawn(self._reap(inst), name=f"reaper {inst.container_id}")

    def _live_log(self, path: Path) -> logfiles.LiveLog:
        live = self._logs.get(path)
        if live is None or live.closed:
            live = logfiles.LiveLog(
                path,
                max_bytes=self._log_max_bytes,
                max_files=self._log_max_files,
                tasks=self._tasks,
            )
            self._logs[path] = live
            # <root>/pods/<uid>/logs/<container>/<n>.log
            self._pod_logs.setdefault(path.parents[2].name, set()).add(path)
            self._watcher.add(live)
            live.grew()  # it may be over its size already (written while no daemon looked)
        return live

    def _forget_log(self, path: Path) -> None:
        live = self._logs.pop(path, None)
        if live is not None:
            self._watcher.remove(live)
            live.close()

    async def _abandon(self, inst: _Instance) -> None:
        """Kill and reap an instance that failed to start, and close its log."""
        inst.killed = True
        inst.leader.signal_group(signal.SIGKILL)
        await inst.leader.wait_exited()
        await self._kill_rest(inst)
        inst.leader.reap()
        self._finish_log(inst)
        inst.record.exit = instances.start_error(inst.started_at, "container setup failed")
        with contextlib.suppress(OSError):
            await asyncio.to_thread(instances.write_record, inst.record_path, inst.record)

    def _finish_log(self, inst: _Instance) -> None:
        inst.output.finish()
        self._watcher.remove(inst.output)

    def _resolve_user(self, pod: PodSandboxConfig, spec: Container) -> _User | None:
        """The user to switch to (None: stay the daemon's), checking runAsNonRoot."""
        csc, psc = spec.security_context, pod.spec.security_context
        uid = _first(csc.run_as_user if csc else None, psc.run_as_user if psc else None)
        gid = _first(csc.run_as_group if csc else None, psc.run_as_group if psc else None)
        non_root = _first(
            csc.run_as_non_root if csc else None, psc.run_as_non_root if psc else None
        )
        euid = os.geteuid()
        if non_root and (euid if uid is None else uid) == 0:
            raise ContainerConfigError(
                "container has runAsNonRoot and image will run as root "
                f'(pod: "{pod.name}_{pod.namespace}({pod.uid})", container: {spec.name})'
            )
        if (uid is None or uid == euid) and (gid is None or gid == os.getegid()):
            return None
        if euid != 0:
            raise ContainerConfigError(
                f"runAsUser/runAsGroup need root: minikubelet runs as uid {euid}"
            )
        if uid is None:
            uid = euid
        if gid is None:
            # containerd's rule: the user's primary group in the image's passwd (here the
            # host's), else 0.
            try:
                gid = pwd.getpwuid(uid).pw_gid
            except KeyError:
                gid = 0
        return _User(uid=uid, gid=gid)

    def _setpriv_prefix(self, user: _User | None) -> tuple[str, ...]:
        if user is None:
            return ()
        if self._setpriv is None:
            raise ContainerConfigError("runAsUser/runAsGroup need setpriv (util-linux): not found")
        return (
            self._setpriv,
            "--reuid",
            str(user.uid),
            "--regid",
            str(user.gid),
            "--clear-groups",
            "--",
        )

    async def _reap(self, inst: _Instance) -> None:
        """The instance's only reaper: resolves inst.exit once everything it ran is gone."""
        try:
            await inst.leader.wait_exited()
            finished_at = datetime.now(UTC)
            # Running -> Exited. Whatever it left (in its cgroup, group or session) goes with
            # it, before the exit is told: the next instance gets a fresh cgroup of the same
            # name. A leader that is our child is reaped only after that, so that its group's
            # number stays reserved while the group is killed.
            await self._kill_rest(inst)
            code = inst.leader.reap()
            recorded = await asyncio.to_thread(instances.read_exit_file, inst.exit_file)
            result = self._exit_result(inst, code, recorded, finished_at)
            self._finish_log(inst)
            inst.log.info(
                "exited: code %d%s",
                result.exit_code,
                f", signal {result.signal}" * bool(result.signal),
            )
            inst.record.exit = result
            with contextlib.suppress(OSError):  # the pod (and the record) may be gone already
                await asyncio.to_thread(_record_exit, inst.record_path, inst.record)
            inst.exit.set_result(result)
        except asyncio.CancelledError:
            if not inst.exit.done():
                inst.exit.set_exception(
                    RuntimeFailure("the process runtime closed before the container exited")
                )
                inst.exit.exception()  # retrieved: no "never retrieved" noise if nobody waits
            raise

    def _exit_result(
        self,
        inst: _Instance,
        code: int | None,
        recorded: tuple[int, datetime] | None,
        finished_at: datetime,
    ) -> ContainerExit:
        """The exit as well as it can be known: the recorder's status (and its file's mtime),
        else what waitpid said of the recorder, else what we did to it."""
        oom = self._oom_killed(inst)
        if recorded is not None:
            status, when = recorded
            return instances.exit_of_status(
                status, started_at=inst.started_at, finished_at=when, oom_killed=oom
            )
        if code is not None:
            # The recorder itself ended: SIGKILL of the whole container (code -9) or an exit
            # before the command ran (a cgroup it could not enter: 128).
            status = 128 - code if code < 0 else code
            return instances.exit_of_status(
                status, started_at=inst.started_at, finished_at=finished_at, oom_killed=oom
            )
        if inst.killed or oom:
            return instances.exit_of_status(
                128 + signal.SIGKILL,
                started_at=inst.started_at,
                finished_at=finished_at,
                oom_killed=oom,
            )
        return instances.unknown_exit(inst.started_at, finished_at)

    def _oom_killed(self, inst: _Instance) -> bool:
        """Whether the kernel's OOM killer killed a process of this instance (fresh counters)."""
        if inst.cgroup is None or not self._limits:
            return False
        try:
            return inst.cgroup.oom_kills() > 0
        except CgroupError as exc:
            inst.log.warning("cannot tell whether it was OOM-killed: %s", exc)
            return False

    async def _kill_rest(self, inst: _Instance) -> None:
        """SIGKILL whatever is left of the container once its leader has exited, and wait until
        it is gone: its cgroup; else its group and session (and the strays found when it was
        stopped)."""
        if inst.cgroup is not None:
            try:
                await inst.cgroup.kill_and_wait(timeout=GROUP_EXIT_TIMEOUT)
            except CgroupError as exc:
                inst.log.warning("after exit: %s", exc)
            return
        inst.leader.signal_group(signal.SIGKILL)  # only while our zombie child holds it
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GROUP_EXIT_TIMEOUT
        while True:
            left = await asyncio.to_thread(self._members, inst, False)
            left += [
                p
                for pid, ticks in inst.strays.items()
                if (p := procs.proc_stat(pid)) is not None and p.alive and p.start_ticks == ticks
            ]
            if not left:
                return
            for p in left:
                _signal_found(p, signal.SIGKILL)
            if loop.time() > deadline:
                inst.log.warning(
                    "processes %s still alive %gs after SIGKILL",
                    sorted(p.pid for p in left),
                    GROUP_EXIT_TIMEOUT,
                )
                return
            await asyncio.sleep(0.02)

    def _members(self, inst: _Instance, descendants: bool) -> list[procs.ProcStat]:
        """The container's processes without a cgroup (blocking: /proc), leader excluded.

        The group's number stays reserved while any member lives, so a process that holds the
        leader's pid and is not the leader means every member is gone, and the group found
        under that number is someone else's: then there is nothing of ours left."""
        found = procs.members(
            procs.scan(), group=inst.pid, descendants=descendants, exclude=inst.pid
        )
        holder = procs.proc_stat(inst.pid)
        if holder is not None and holder.start_ticks != inst.record.start_ticks:
            return []
        return found

    async def wait_container(self, container_id: ContainerID) -> ContainerExit:
        return await asyncio.shield(self._get(container_id).exit)

    async def stop_container(self, container_id: ContainerID, *, grace_seconds: float) -> None:
        inst = self._instances.get(container_id)
        if inst is None or inst.exit.done():
            return
        # Running -> Terminating.
        await self._signal_all(inst, signal.SIGTERM)
        try:
            async with asyncio.timeout(max(0.0, grace_seconds)):
                await asyncio.shield(inst.exit)
            return
        except TimeoutError:
            pass
        inst.log.info("did not exit within %gs of SIGTERM; sending SIGKILL", grace_seconds)
        inst.killed = True
        await self._signal_all(inst, signal.SIGKILL)
        await asyncio.shield(inst.exit)

    async def _signal_all(self, inst: _Instance, sig: signal.Signals) -> None:
        """Signal every process of the container, never one that merely took a number of ours:
        the cgroup's members (SIGKILL: cgroup.kill), or the process group by number while our
        child leads it, or each member pinned and checked."""
        if inst.leader.exited:
            return  # the reaper is at work: it kills what is left
        if inst.cgroup is not None:
            if sig == signal.SIGKILL:
                try:
                    inst.cgroup.kill()
                except CgroupError as exc:
                    inst.log.warning("cgroup kill: %s", exc)
                return
            inst.leader.send_signal(sig)
            members = await asyncio.to_thread(_cgroup_pids, inst.cgroup)
            cgroup = inst.cgroup
            for pid in members:
                if pid != inst.pid:
                    procs.signal_checked(pid, sig, check=lambda p: p in _cgroup_pids(cgroup))
            return
        found = await asyncio.to_thread(self._members, inst, True)
        for p in found:
            if p.pgid != inst.pid and p.sid != inst.pid:
                inst.strays[p.pid] = p.start_ticks  # left the group: killed at the end
        if inst.leader.signal_group(sig):
            found = [p for p in found if p.pgid != inst.pid]
        else:
            inst.leader.send_signal(sig)
        for p in found:
            _signal_found(p, sig)

    async def remove_container(self, container_id: ContainerID) -> None:
        inst = self._instances.get(container_id)
        if inst is None:
            return
        if not inst.exit.done():
            raise RuntimeFailure(f"container {container_id} is running: stop it before removing")
        # Its record and log stay (pruned when two newer instances exist, or with the pod).
        del self._instances[container_id]

    def _get(self, container_id: ContainerID) -> _Instance:
        inst = self._instances.get(container_id)
        if inst is None:
            raise RuntimeFailure(f"no such container: {container_id}")
        return inst

    # --- restart recovery -------------------------------------------------------------------------

    async def _recover(self) -> None:
        """Read what earlier daemons left: adopt the instances still running, account for the
        ones that ended. Their pods claim them with ``recover_pod``."""
        found = await asyncio.to_thread(instances.read_all, self._root / "pods")
        adopted = ended = 0
        for uid, records in found.items():
            recovered: list[RecoveredContainer] = []
            for path, record in records:
                inst = await self._recover_one(path, record)
                if inst is not None:
                    adopted += 1
                    recovered.append(
                        RecoveredContainer(
                            name=record.container,
                            container_id=ContainerID(record.container_id),
                            restart_count=record.restart_count,
                            started_at=record.started_at,
                            exit=None,
                        )
                    )
                    continue
                assert record.exit is not None
                ended += 1
                recovered.append(
                    RecoveredContainer(
                        name=record.container,
                        container_id=ContainerID(record.container_id),
                        restart_count=record.restart_count,
                        started_at=record.started_at,
                        exit=record.exit,
                    )
                )
            self._recovered[uid] = recovered
        if found:
            log.info(
                "found %d pods of an earlier daemon: %d containers adopted, %d had ended",
                len(found),
                adopted,
                ended,
            )

    async def _recover_one(self, path: Path, record: InstanceRecord) -> _Instance | None:
        """Adopt the instance if its leader is still the recorded process; else settle its exit
        (and kill what it left in its cgroup). Returns the adopted instance."""
        olog = _ObjectLog(
            log, {"object": f"{record.namespace}/{record.pod_name}/{record.container}"}
        )
        if record.exit is not None:
            return None
        exit_file = path.with_suffix(".exit")
        cgroup = Cgroup(Path(record.cgroup)) if record.cgroup else None
        leader: procs.Leader | None = None
        unrecorded = record.pid is None
        if record.boot_id == self._boot_id:
            if unrecorded:
                record.pid = await asyncio.to_thread(instances.find_unrecorded, exit_file)
                record.start_ticks = procs.start_ticks(record.pid) if record.pid else None
            if record.pid is not None and record.start_ticks is not None:
                # Membership of its cgroup, if that is still there (a cgroup with a process
                # in it cannot have been removed).
                member = cgroup is not None and cgroup.exists()
                check = (lambda p: p in _cgroup_pids(cgroup)) if member and cgroup else None
                leader = procs.Leader.adopt(record.pid, start_ticks=record.start_ticks, check=check)
        if leader is not None:
            log_dir = path.parent.parent / "logs" / record.container
            log_file = logfiles.log_path(log_dir, record.restart_count)
            if not log_file.exists():
                log_file.touch(mode=0o640)
            inst = self._instance(
                record,
                path,
                leader=leader,
                olog=olog,
                log_file=log_file,
                cgroup=cgroup if cgroup is not None and cgroup.exists() else None,
                adopted=True,
            )
            if unrecorded:
                with contextlib.suppress(OSError):
                    instances.write_record(path, record)  # the pid it had to be found by
            self._watch(inst)
            olog.info("adopted pid %d (instance %d)", leader.pid, record.restart_count)
            return inst
        # Gone while no daemon watched: what it left in its cgroup goes too.
        now = datetime.now(UTC)
        oom = False
        if cgroup is not None and cgroup.exists():
            try:
                await cgroup.kill_and_wait(timeout=GROUP_EXIT_TIMEOUT)
                oom = self._limits and cgroup.oom_kills() > 0
            except CgroupError as exc:
                olog.warning("after it ended: %s", exc)
        recorded = await asyncio.to_thread(instances.read_exit_file, exit_file)
        if recorded is not None:
            status, when = recorded
            record.exit = instances.exit_of_status(
                status, started_at=record.started_at, finished_at=when, oom_killed=oom
            )
        elif oom:
            record.exit = instances.exit_of_status(
                128 + signal.SIGKILL, started_at=record.started_at, finished_at=now, oom_killed=True
            )
        else:
            record.exit = instances.unknown_exit(record.started_at, now)
        olog.info(
            "instance %d ended while no daemon watched: %s, exit code %d",
            record.restart_count,
            record.exit.reason.value,
            record.exit.exit_code,
        )
        with contextlib.suppress(OSError):
            await asyncio.to_thread(_record_exit, path, record)
        return None

    async def recover_pod(self, pod: PodSandboxConfig) -> Sequence[RecoveredContainer]:
        self._require_entered()
        found = self._recovered.pop(pod.uid, [])
        result: list[RecoveredContainer] = []
        for rc in found:
            inst = self._instances.get(rc.container_id)
            ended = (
                inst is not None
                and inst.exit.done()
                and not inst.exit.cancelled()
                and inst.exit.exception() is None
            )
            if rc.exit is None and inst is not None and ended:
                # Ended since it was adopted: tell it as ended (and forget it).
                rc = RecoveredContainer(
                    name=rc.name,
                    container_id=rc.container_id,
                    restart_count=rc.restart_count,
                    started_at=rc.started_at,
                    exit=inst.exit.result(),
                )
                del self._instances[rc.container_id]
            result.append(rc)
        return result

    async def clean_up_pods(self, keep: Collection[str]) -> None:
        self._require_entered()
        try:
            uids = sorted(os.listdir(self._root / "pods"))
        except FileNotFoundError:
            return
        gone = [uid for uid in uids if uid not in keep and uid not in self._pods]
        if not gone:
            return
        log.info("removing %d pods that are no longer wanted: %s", len(gone), ", ".join(gone))
        results = await asyncio.gather(
            *(self._remove_pod(uid, label=f"pod {uid}", grace=None) for uid in gone),
            return_exceptions=True,
        )
        for uid, result in zip(gone, results, strict=True):
            if isinstance(result, RuntimeFailure | OSError):
                log.warning("pod %s: cannot remove what it left: %s", uid, result)
            elif isinstance(result, BaseException):
                raise result

    # --- exec -----------------------------------------------------------------------------------

    async def exec_in_container(
        self,
        container_id: ContainerID,
        command: Sequence[str],
        *,
        timeout: float,
        output_limit: int = 10 * 1024,
    ) -> ExecResult:
        """Run command in the container's mount namespace, as its user, with its env and cwd.

        The exec gets a process group of its own; when it exits, whatever it left there is
        killed (it is not part of the container's group, so nothing else would stop it).
        """
        inst = self._get(container_id)
        if inst.leader.exited or inst.exit.done():
            raise RuntimeFailure(f"container {container_id} is not running")
        if not command:
            raise ContainerConfigError("exec: no command given")
        record = inst.record
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        try:
            proc = spawn.spawn(self._exec_argv(inst, command), env=record.env, stdout=out_w)
        except OSError as exc:
            os.close(out_r)
            message = f'exec: "{command[0]}": {exc.strerror or exc}'
            if isinstance(exc, FileNotFoundError) and "/" not in command[0]:
                message = f'exec: "{command[0]}": executable file not found in $PATH'
            return ExecResult(exit_code=127, output=message.encode()[:output_limit])
        finally:
            os.close(out_w)
        if inst.cgroup is not None and not self._limits:
            # Tracking only: into the container's cgroup from here (nsenter cannot enter one;
            # with limits, the exec script enters it before the command runs).
            with contextlib.suppress(CgroupError):
                inst.cgroup.write("cgroup.procs", str(proc.pid))

        output = spawn.Output(out_r, limit=output_limit)
        try:
            try:
                async with asyncio.timeout(timeout):
                    code = await proc.wait()
            except TimeoutError:
                inst.log.info("exec %r timed out after %gs; killing it", list(command), timeout)
                raise
            finally:
                # Timed out or cancelled: its group goes (an exited one is killed on reaping).
                proc.kill_group()
                await proc.wait()
            await output.wait_eof(EXEC_DRAIN_TIMEOUT)
        finally:
            output.close()
        exit_code = code if code >= 0 else 128 - code
        return ExecResult(exit_code=exit_code, output=bytes(output.data))

    def _exec_argv(self, inst: _Instance, command: Sequence[str]) -> list[str]:
        """``nsenter`` into the container's mount namespace, then its workdir and command;
        without a namespace, ``EXEC_SCRIPT``'s ``sh`` enters the workdir (and cgroup).

        Without a cgroup to enter, nsenter enters the workdir itself (``--wdns``, util-linux
        >= 2.38) and execs the command: one exec less than through ``EXEC_SCRIPT``'s ``sh``,
        and the env stays exactly the container's (nsenter does not touch PWD/OLDPWD)."""
        record = inst.record
        argv = [*record.setpriv, *command]
        enter = inst.cgroup.procs_path if inst.cgroup is not None and self._limits else None
        if not record.isolated:
            return mounts.exec_argv(
                sh=self._sh, workdir=record.workdir, env=record.env, argv=argv, cgroup_procs=enter
            )
        assert self._nsenter is not None
        # -r: and its root: setns(CLONE_NEWNS) resets ours to the namespace's, which is not
        # the container's when the daemon runs chrooted (as in the VM tier).
        nsenter = [self._nsenter, "-t", str(inst.pid), "-m", "-r"]
        if enter is None and self._nsenter_wdns:
            return [*nsenter, f"--wdns={record.workdir}", "--", *argv]
        return [
            *nsenter,
            "--",
            *mounts.exec_argv(
                sh=self._sh, workdir=record.workdir, env=record.env, argv=argv, cgroup_procs=enter
            ),
        ]

    # --- logs -----------------------------------------------------------------------------------

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
        """The instance's raw output. LookupError is raised by this call, before iterating."""
        n = restart_count - 1 if previous else restart_count
        if n < 0:
            raise LookupError(
                f'previous terminated container "{container_name}" in pod "{pod.name}" not found'
            )
        path = logfiles.log_path(self._pod_dir(pod.uid) / "logs" / container_name, n)
        if not logfiles.rotations(path):
            which = "previous terminated container" if previous else "container"
            raise LookupError(
                f'{which} "{container_name}" in pod "{pod.name}" has no log (instance {n})'
            )
        return logfiles.read_log(
            path, live=self._logs.get(path), tail_lines=tail_lines, follow=follow
        )


# --- helpers -------------------------------------------------------------------------------------


_T = TypeVar("_T")


def _first(*values: _T | None) -> _T | None:
    for value in values:
        if value is not None:
            return value
    return None


def _make_root_dirs(root: Path) -> None:
    # stage/ stays empty on the host: containers mount a private tmpfs on it while they set up.
    for sub in ("pods", "stage"):
        (root / sub).mkdir(mode=0o700, parents=True, exist_ok=True)


def _make_pod_dirs(directory: Path, pod: PodSandboxConfig) -> set[Path]:
    """Make the pod's directories; the host mount points recorded there (an earlier daemon's)."""
    for sub in ("logs", "containers", "volumes"):
        (directory / sub).mkdir(
            mode=0o700 if sub != "volumes" else 0o755, parents=True, exist_ok=True
        )
    tmp = directory / "tmp"
    tmp.mkdir(exist_ok=True)
    os.chmod(tmp, 0o1777)  # like /tmp: anyone may write, only owners may delete
    for volume in pod.spec.volumes or []:
        if volume.empty_dir is not None:
            path = directory / "volumes" / volume.name
            path.mkdir(exist_ok=True)
            os.chmod(path, 0o777)  # kubelet's emptyDir mode: writable whatever runAsUser is
    return _read_mountpoints(directory)


def _read_mountpoints(directory: Path) -> set[Path]:
    try:
        text = (directory / MOUNTPOINTS_FILE).read_text()
    except OSError:
        return set()
    return {Path(line) for line in text.splitlines() if line.startswith("/")}


def _add_mountpoints(directory: Path, paths: Sequence[Path]) -> None:
    with open(directory / MOUNTPOINTS_FILE, "a") as f:
        f.writelines(f"{p}\n" for p in paths)


_LOG_NAME = re.compile(r"^(\d+)\.log(?:\.\d+|\.rotating)?$")


def _restart_count_of(path: Path) -> int:
    match = _LOG_NAME.match(path.name)
    return int(match.group(1)) if match else -1


def _prune(log_dir: Path, containers_dir: Path, name: str, restart_count: int) -> None:
    """Keep only the log and record of the instance before this one (for ``logs -p``, and for
    the next daemon), as kubelet keeps one dead container."""
    log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with os.scandir(log_dir) as entries:
        for entry in entries:
            match = _LOG_NAME.match(entry.name)
            if match and int(match.group(1)) < restart_count - 1:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
    instances.prune(containers_dir, name, restart_count)


def _record_exit(path: Path, record: InstanceRecord) -> None:
    """Write the record with its exit, if the record is still there (not removed with its
    pod)."""
    if path.exists():
        instances.write_record(path, record)


def _cgroup_pids(cgroup: Cgroup) -> list[int]:
    try:
        return cgroup.pids()
    except CgroupError:
        return []


def _signal_found(found: procs.ProcStat, sig: signal.Signals) -> None:
    """Signal a process found in /proc, if it is still that process (same start time)."""
    procs.signal_checked(
        found.pid, sig, check=lambda pid: procs.start_ticks(pid) == found.start_ticks
    )


async def _read_setup_status(fd: int) -> str | None:
    """What the setup script wrote on its status pipe, up to EOF; None on SETUP_TIMEOUT."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    protocol = asyncio.StreamReaderProtocol(reader)
    transport, _ = await loop.connect_read_pipe(lambda: protocol, os.fdopen(fd, "rb", buffering=0))
    try:
        async with asyncio.timeout(SETUP_TIMEOUT):
            return (await reader.read()).decode(errors="replace")
    except TimeoutError:
        return None
    finally:
        transport.close()


async def _run_tool(argv: list[str]) -> None:
    """Run mount/umount on the host; RuntimeFailure with its message when it fails."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeFailure(f"{' '.join(argv)}: {out.decode(errors='replace').strip()}")


__all__ = ["DEFAULT_PATH", "ProcessRuntime"]
