"""The embedded default runtime: containers as host processes started by minikubelet.

There is no image: ``command`` + ``args`` is the argv (``args`` alone when there is no
``command``), run on the host's filesystem with exactly the container's env. What a container
gets instead of an image's isolation:

- its own session and process group (``start_new_session``), so that stop signals the whole
  container and so that it does not die with the daemon (restart recovery comes later; for it,
  a JSON record per instance is kept under ``<root>/pods/<uid>/containers/``);
- as root, a private mount namespace made by util-linux ``unshare --mount --propagation
  private``, in which a tiny ``sh`` script (``mounts.SETUP_SCRIPT``) binds the pod's private
  ``/tmp`` and the container's volumes, enters ``workingDir``, and ``exec``s the command
  (through ``setpriv`` when runAsUser/runAsGroup ask for another user). Chosen over bubblewrap
  because the spawned PID stays the container's main process: signals and the exit status are
  first-hand, and exec probes join it with ``nsenter -t <pid> -m``. Not as root, there is no
  namespace: volumeMounts are refused and the private /tmp is offered as ``TMPDIR`` instead.

With a cgroup driver (``cgroups=``, cgroup v2 only; the daemon passes None elsewhere and says
so), every pod gets kubelet's pod cgroup (QoS tier, ResourceConfigForPod) in ``start_pod``, and
every container *instance* a fresh container cgroup with its limits. The main process enters it
before anything else runs: the first op of the setup script (``mounts``) is ``echo $$ >
cgroup.procs`` (and its oom_score_adj), folded into the shell that ``unshare`` already execs, so
it costs no extra exec; if it cannot enter, the script exits 128 and the command never runs
(StartError). Exec probes enter the same cgroup in their nsenter wrapper. When the main process
exits, the reaper kills the whole cgroup (``cgroup.kill``: that also catches processes that left
the process group) and waits for it to empty before reporting the exit; a non-zero
``memory.events`` ``oom_kill`` (the counter is fresh per instance) makes it OOMKilled.
``stop_pod`` removes the pod's cgroups.

Exec (probes, lifecycle hooks) is the hot path: one exec per exec probe and period. As root it
is ``nsenter -t <pid> -m -r --wdns=<workdir> -- <command>`` with the container's env as it is;
``mounts.EXEC_SCRIPT``'s ``sh`` comes in between only to enter a cgroup (or with an nsenter
older than 2.38). It is started by ``spawn`` (posix_spawn, waited for through a pidfd) rather
than through asyncio's subprocess machinery. Together: ~0.55 -> ~0.30 ms of daemon CPU per exec.

Each instance has exactly one reaper task (``_reap``): it waits for the main process, kills
what the process left in its group, lets the log pump drain, and resolves the instance's
``exit`` future. ``wait_container`` and ``stop_container`` only ever await that future
(shielded), so both may run at once and every child is reaped exactly once. The runtime owns
its reapers and log pumps; leaving ``async with`` cancels and awaits them (it does not kill the
containers: that is the pod worker's decision, and a later daemon may adopt them).

Layout under ``root`` (e.g. ``<state dir>/process``), all of it removed by ``stop_pod``:

    pods/<uid>/tmp/                          the pod's private /tmp (mode 1777)
    pods/<uid>/volumes/<name>/               emptyDir volumes (a tmpfs for medium: Memory)
    pods/<uid>/logs/<container>/<n>.log      instance n's output (see logfiles)
    pods/<uid>/containers/<container>-<n>.json   the instance record
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import posixpath
import pwd
import re
import shutil
import signal
from collections.abc import AsyncIterator, Coroutine, MutableMapping, Sequence
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
from minikubelet.cgroups import Cgroup, CgroupDriver, CgroupError, enter_argv
from minikubelet.runtime import logfiles, mounts, spawn
from minikubelet.runtime.base import (
    ContainerConfig,
    ContainerExit,
    ContainerID,
    ExecResult,
    ExitReason,
    PodSandbox,
    PodSandboxConfig,
    StartedContainer,
)
from minikubelet.runtime.engine import EngineReport

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
GROUP_EXIT_TIMEOUT = 5.0  # after SIGKILL to a group, for every member to be gone
DRAIN_TIMEOUT = 2.0  # for the output pipe's EOF once the group is gone
EXEC_DRAIN_TIMEOUT = 1.0  # the same, for an exec's output


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
    """One started container instance, from its start until remove_container or stop_pod."""

    container_id: ContainerID
    pod_uid: str
    name: str  # the container's name in the spec
    restart_count: int
    proc: asyncio.subprocess.Process  # the main process; pid == pgid == sid
    started_at: datetime
    env: dict[str, str]  # the container's environment, reused by exec_in_container
    workdir: str  # as the container sees it
    setpriv: tuple[str, ...]  # the setpriv prefix when it runs as another user, else ()
    isolated: bool  # it runs in a private mount namespace (exec joins it with nsenter)
    record: Path  # its JSON record
    log: _ObjectLog
    exit: asyncio.Future[ContainerExit]  # resolved by the reaper, once
    pump: asyncio.Task[None] | None = None  # copies the output pipe into the log file
    cgroup: Cgroup | None = None  # this instance's container cgroup; None without a driver

    @property
    def pid(self) -> int:
        return self.proc.pid


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

        ``cgroups``: a set-up driver to enforce limits with; None runs containers without
        cgroups (the daemon decides, and reports why). ``node_memory`` (bytes, default the
        host's RAM) is what a Burstable container's oom_score_adj is computed against.

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
        self._pidfds = False  # execs go through spawn (posix_spawn + pidfd), not asyncio's
        self._nsenter_wdns = False  # nsenter can enter the workdir itself (--wdns)
        self._entered = False
        self._instances: dict[ContainerID, _Instance] = {}
        self._pods: dict[str, _PodState] = {}
        self._writers: dict[Path, logfiles.LogWriter] = {}  # by current log path
        self._created_mountpoints: set[Path] = set()  # host paths we made as mount points
        self._tasks = TaskSet(log)

    @property
    def name(self) -> str:
        return "process"

    @property
    def cgroups(self) -> CgroupDriver | None:
        """The driver that enforces limits, or None."""
        return self._cgroups

    @property
    def isolated(self) -> bool:
        """Containers get a private mount namespace (volumes, private /tmp)."""
        return self._no_isolation is None

    # --- lifecycle of the runtime itself ------------------------------------------------------

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(_make_root_dirs, self._root)
        self._no_isolation = await self._check_isolation()
        if self._no_isolation is not None:
            log.info("process runtime without mount namespaces: %s", self._no_isolation)
        else:
            self._nsenter_wdns = await self._check_nsenter_wdns()
        self._report_host_tools()
        self._pidfds = spawn.available()
        self._entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        running = [i for i in self._instances.values() if not i.exit.done()]
        if running:
            log.warning(
                "process runtime closing with %d containers still running; they keep running "
                "(their output is no longer collected)",
                len(running),
            )
        await self._tasks.close()
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
            await asyncio.to_thread(_make_pod_dirs, directory, pod)
            if self.isolated:
                for volume in pod.spec.volumes or []:
                    if volume.empty_dir is not None and volume.empty_dir.medium == "Memory":
                        await self._mount_tmpfs(
                            directory / "volumes" / volume.name, volume.empty_dir.size_limit
                        )
            self._pods[pod.uid] = _PodState(directory=directory)
        cgroup_path: str | None = None
        if self._cgroups is not None:
            # Idempotent: QoS tier + ResourceConfigForPod (CgroupError is a RuntimeFailure).
            cgroup_path = str(self._cgroups.create_pod(uid=pod.uid, spec=pod.spec).path)
        # The process runtime shares the host's network: probes reach containers on loopback.
        return PodSandbox(pod_ip="127.0.0.1", cgroup_path=cgroup_path)

    async def _mount_tmpfs(self, directory: Path, size_limit: int | float | str | None) -> None:
        if await asyncio.to_thread(os.path.ismount, directory):
            return  # mounted by an earlier start_pod of this UID
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
        directory = self._pod_dir(pod.uid)
        for inst in [i for i in self._instances.values() if i.pod_uid == pod.uid]:
            if not inst.exit.done():
                inst.log.warning("still running when its pod is stopped; killing it")
                await self.stop_container(inst.container_id, grace_seconds=0)
            with contextlib.suppress(RuntimeFailure):
                await asyncio.shield(inst.exit)
            del self._instances[inst.container_id]
        if self._cgroups is not None:
            try:
                await self._cgroups.remove_pod(pod.uid, timeout=GROUP_EXIT_TIMEOUT)
            except CgroupError as exc:
                log.warning("%s/%s: pod cgroup left behind: %s", pod.namespace, pod.name, exc)
        # Only our tmpfs volumes can be mounted below the pod's directory in our namespace
        # (binds happen in the containers' namespaces): unmount them, deepest first.
        mounted = await asyncio.to_thread(mounts.find_mountpoints_below, directory)
        for path in sorted(mounted, key=lambda p: len(p.parts), reverse=True):
            assert self._umount is not None
            await _run_tool([self._umount, str(path)])
        if still := await asyncio.to_thread(mounts.find_mountpoints_below, directory):
            # Never remove a tree with a mount in it: rmtree would empty what is mounted.
            raise RuntimeFailure(f"cannot remove {directory}: still mounted: {still}")
        for path in [p for p in self._writers if p.is_relative_to(directory)]:
            del self._writers[path]
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(shutil.rmtree, directory)
        self._pods.pop(pod.uid, None)
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
            self._created_mountpoints.update(
                p for p in created if not p.is_relative_to(state.directory)
            )
        elif spec.volume_mounts:
            raise ContainerConfigError(f"{self._no_isolation}")

        await asyncio.to_thread(mounts.check_start, argv[0], env["PATH"], workdir, plan)

        cgroup: Cgroup | None = None
        # kubelet's per-QoS oom_score_adj, with or without cgroups: the launcher script sets it
        # (there is none without a namespace or a cgroup to enter, so then it stays inherited).
        adjust: int | None = oom_score_adj(pod.spec, spec, node_memory=self._node_memory)
        if self._cgroups is not None:
            # A fresh cgroup per instance: its memory.events counts only this instance.
            cgroup = self._cgroups.create_container(uid=pod.uid, spec=pod.spec, container=spec)

        log_dir = state.directory / "logs" / spec.name
        await asyncio.to_thread(_prune_logs, log_dir, config.restart_count)
        for path in [p for p in self._writers if p.parent == log_dir]:
            if _restart_count_of(path) < config.restart_count - 1:
                del self._writers[path]
        writer = logfiles.LogWriter(
            logfiles.log_path(log_dir, config.restart_count),
            max_bytes=self._log_max_bytes,
            max_files=self._log_max_files,
        )
        self._writers[writer.path] = writer

        inst = await self._spawn_instance(
            cid=cid,
            pod=pod,
            spec=spec,
            config=config,
            argv=argv,
            env=env,
            workdir=workdir,
            setpriv=setpriv,
            plan=plan,
            writer=writer,
            olog=olog,
            cgroup=cgroup,
            oom_score_adj=adjust,
        )
        # The record first (a small write, kept on the loop): the reaper adds the exit to it,
        # and a fast exit must not be overwritten by the initial record written after it.
        with contextlib.suppress(OSError):
            _write_json(inst.record, _record(inst, pod))
        # Reaped from here on, whatever happens to this call.
        self._instances[cid] = inst
        self._spawn(self._reap(inst), name=f"reaper {cid}")
        olog.info("started pid %d (instance %d)", inst.pid, config.restart_count)
        return StartedContainer(container_id=cid, started_at=inst.started_at)

    async def _spawn_instance(
        self,
        *,
        cid: ContainerID,
        pod: PodSandboxConfig,
        spec: Container,
        config: ContainerConfig,
        argv: list[str],
        env: dict[str, str],
        workdir: str,
        setpriv: tuple[str, ...],
        plan: mounts.MountPlan,
        writer: logfiles.LogWriter,
        olog: _ObjectLog,
        cgroup: Cgroup | None,
        oom_score_adj: int | None,
    ) -> _Instance:
        """Start the process with its output pump; with a namespace, wait until it is set up.

        With a cgroup, the process enters it before anything else: as the setup script's first
        op with a namespace, else through ``enter_argv``'s one-line launcher."""
        loop = asyncio.get_running_loop()
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        status_r, status_w = os.pipe2(os.O_CLOEXEC) if self.isolated else (-1, -1)
        try:
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
                        workdir=workdir,
                        env=env,
                        argv=[*setpriv, *argv],
                        cgroup_procs=cgroup.procs_path if cgroup else None,
                        oom_score_adj=oom_score_adj,
                    ),
                ]
                cwd = "/"  # the script enters workdir after the binds (it may lie inside one)
            elif cgroup is not None:
                full = enter_argv(cgroup.procs_path, [*setpriv, *argv], oom_score_adj=oom_score_adj)
                cwd = workdir
            else:
                full, cwd = [*setpriv, *argv], workdir
            proc = await asyncio.create_subprocess_exec(
                *full,
                # With a namespace, stdin carries the setup status (the script then takes
                # /dev/null as the container's stdin).
                stdin=status_w if self.isolated else asyncio.subprocess.DEVNULL,
                stdout=out_w,
                stderr=out_w,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            os.close(out_r)
            if status_r >= 0:
                os.close(status_r)
            writer.close()
            raise StartFailure(f'exec: "{argv[0]}": {exc.strerror or exc}') from exc
        finally:
            # The child has its copies; ours would keep the pipes open forever.
            os.close(out_w)
            if status_w >= 0:
                os.close(status_w)
        started_at = datetime.now(UTC)

        inst = _Instance(
            container_id=cid,
            pod_uid=pod.uid,
            name=spec.name,
            restart_count=config.restart_count,
            proc=proc,
            started_at=started_at,
            env=env,
            workdir=workdir,
            setpriv=setpriv,
            isolated=self.isolated,
            record=self._pod_dir(pod.uid)
            / "containers"
            / f"{spec.name}-{config.restart_count}.json",
            log=olog,
            exit=loop.create_future(),
            cgroup=cgroup,
        )
        try:
            reader, transport = await _pipe_reader(out_r)
            inst.pump = self._spawn(_pump(reader, transport, writer), name=f"log pump {cid}")
            if not self.isolated:
                return inst
            status = await _read_setup_status(status_r)
        except BaseException:
            # Cancelled while starting: nobody would reap it, so do it now.
            await self._abandon(inst)
            raise
        if status is None or not status.rstrip().endswith(mounts.OK_MARKER):
            await self._abandon(inst)
            detail = "timed out" if status is None else status.strip() or "it exited"
            # Starting -> StartError: the binds failed; the command never ran.
            raise StartFailure(f"container setup in its mount namespace failed: {detail}")
        if warnings := status.rstrip().removesuffix(mounts.OK_MARKER).strip():
            olog.warning("container setup: %s", warnings)
        return inst

    async def _abandon(self, inst: _Instance) -> None:
        """Kill and reap an instance that failed to start, and close its log."""
        _signal_group(inst.pid, signal.SIGKILL)
        await inst.proc.wait()
        await _kill_group(inst.pid, inst.log)
        await _kill_cgroup(inst)
        await self._drain(inst)

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
            code = await inst.proc.wait()
            finished_at = datetime.now(UTC)
            # Running -> Exited. Whatever it left in its cgroup (forks that left the process
            # group included) and in its process group goes with it, before the exit is told:
            # the next instance gets a fresh cgroup of the same name.
            await _kill_cgroup(inst)
            await _kill_group(inst.pid, inst.log)
            await self._drain(inst)
            result = _exit_of(code, inst.started_at, finished_at, oom_killed=_oom_killed(inst))
            inst.log.info(
                "exited: code %d%s",
                result.exit_code,
                f", signal {result.signal}" * bool(result.signal),
            )
            with contextlib.suppress(OSError):  # the pod (and the record) may be gone already
                await asyncio.to_thread(_record_exit, inst.record, result)
            inst.exit.set_result(result)
        except asyncio.CancelledError:
            if not inst.exit.done():
                inst.exit.set_exception(
                    RuntimeFailure("the process runtime closed before the container exited")
                )
                inst.exit.exception()  # retrieved: no "never retrieved" noise if nobody waits
            raise

    async def _drain(self, inst: _Instance) -> None:
        """Let the log pump reach EOF; give up on it if an escaped process holds the pipe."""
        if inst.pump is None:
            return
        done, _ = await asyncio.wait([inst.pump], timeout=DRAIN_TIMEOUT)
        if not done:
            inst.log.warning(
                "output pipe still open %.0fs after its processes are gone (a process that "
                "left the container's process group holds it); closing the log",
                DRAIN_TIMEOUT,
            )
            inst.pump.cancel()
            await asyncio.wait([inst.pump])

    async def wait_container(self, container_id: ContainerID) -> ContainerExit:
        return await asyncio.shield(self._get(container_id).exit)

    async def stop_container(self, container_id: ContainerID, *, grace_seconds: float) -> None:
        inst = self._instances.get(container_id)
        if inst is None or inst.exit.done():
            return
        # Running -> Terminating. proc.returncode is checked so that a group whose members
        # are all gone (and whose id could be reused) is never signalled.
        if inst.proc.returncode is None:
            _signal_group(inst.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(max(0.0, grace_seconds)):
                await asyncio.shield(inst.exit)
            return
        except TimeoutError:
            pass
        inst.log.info("did not exit within %gs of SIGTERM; sending SIGKILL", grace_seconds)
        if inst.proc.returncode is None:
            _signal_group(inst.pid, signal.SIGKILL)
        if inst.cgroup is not None:
            # Everything in the container, also what left its process group.
            try:
                inst.cgroup.kill()
            except CgroupError as exc:
                inst.log.warning("cgroup kill: %s", exc)
        await asyncio.shield(inst.exit)

    async def remove_container(self, container_id: ContainerID) -> None:
        inst = self._instances.get(container_id)
        if inst is None:
            return
        if not inst.exit.done():
            raise RuntimeFailure(f"container {container_id} is running: stop it before removing")
        del self._instances[container_id]
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(os.unlink, inst.record)

    def _get(self, container_id: ContainerID) -> _Instance:
        inst = self._instances.get(container_id)
        if inst is None:
            raise RuntimeFailure(f"no such container: {container_id}")
        return inst

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
        if inst.proc.returncode is not None or inst.exit.done():
            raise RuntimeFailure(f"container {container_id} is not running")
        if not command:
            raise ContainerConfigError("exec: no command given")
        if inst.isolated:
            argv, cwd = self._exec_argv(inst, command), "/"  # the workdir is entered inside
        elif inst.cgroup is not None:
            argv, cwd = enter_argv(inst.cgroup.procs_path, [*inst.setpriv, *command]), inst.workdir
        else:
            argv, cwd = [*inst.setpriv, *command], inst.workdir
        proc: asyncio.subprocess.Process | spawn.Child
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        try:
            if inst.isolated and self._pidfds:
                # The hot path (every exec probe as root): argv[0] is nsenter's absolute path.
                proc = spawn.spawn(argv, env=inst.env, stdout=out_w)
            else:
                # A working directory and a PATH search in env: what posix_spawn cannot do.
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out_w,
                    stderr=out_w,
                    env=inst.env,
                    cwd=cwd,
                    start_new_session=True,
                )
        except OSError as exc:
            os.close(out_r)
            message = f'exec: "{command[0]}": {exc.strerror or exc}'
            if isinstance(exc, FileNotFoundError) and "/" not in command[0]:
                message = f'exec: "{command[0]}": executable file not found in $PATH'
            return ExecResult(exit_code=127, output=message.encode()[:output_limit])
        finally:
            os.close(out_w)

        output = spawn.Output(out_r, limit=output_limit)
        try:
            try:
                async with asyncio.timeout(timeout):
                    code = await proc.wait()
            except TimeoutError:
                inst.log.info("exec %r timed out after %gs; killing it", list(command), timeout)
                raise
            finally:
                # Exited, timed out or cancelled: its group goes (with it, if still running).
                _signal_group(proc.pid, signal.SIGKILL)
                await proc.wait()
            await output.wait_eof(EXEC_DRAIN_TIMEOUT)
        finally:
            output.close()
        exit_code = code if code >= 0 else 128 - code
        return ExecResult(exit_code=exit_code, output=bytes(output.data))

    def _exec_argv(self, inst: _Instance, command: Sequence[str]) -> list[str]:
        """``nsenter`` into the container's mount namespace, then its workdir and command.

        Without a cgroup to enter, nsenter enters the workdir itself (``--wdns``, util-linux
        >= 2.38) and execs the command: one exec less than through ``EXEC_SCRIPT``'s ``sh``,
        and the env stays exactly the container's (nsenter does not touch PWD/OLDPWD)."""
        assert self._nsenter is not None
        # -r: and its root: setns(CLONE_NEWNS) resets ours to the namespace's, which is not
        # the container's when the daemon runs chrooted (as in the VM tier).
        nsenter = [self._nsenter, "-t", str(inst.pid), "-m", "-r"]
        argv = [*inst.setpriv, *command]
        if inst.cgroup is None and self._nsenter_wdns:
            return [*nsenter, f"--wdns={inst.workdir}", "--", *argv]
        return [
            *nsenter,
            "--",
            *mounts.exec_argv(
                sh=self._sh,
                workdir=inst.workdir,
                env=inst.env,
                argv=argv,
                cgroup_procs=inst.cgroup.procs_path if inst.cgroup else None,
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
            path, writer=self._writers.get(path), tail_lines=tail_lines, follow=follow
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


def _make_pod_dirs(directory: Path, pod: PodSandboxConfig) -> None:
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


_LOG_NAME = re.compile(r"^(\d+)\.log(?:\.\d+)?$")


def _restart_count_of(path: Path) -> int:
    match = _LOG_NAME.match(path.name)
    return int(match.group(1)) if match else -1


def _prune_logs(log_dir: Path, restart_count: int) -> None:
    """Keep only the log of the instance before this one (for ``logs -p``), as kubelet does."""
    log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with os.scandir(log_dir) as entries:
        for entry in entries:
            match = _LOG_NAME.match(entry.name)
            if match and int(match.group(1)) < restart_count - 1:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)


def _exit_of(
    code: int, started_at: datetime, finished_at: datetime, *, oom_killed: bool = False
) -> ContainerExit:
    if oom_killed:
        # memory.oom.group=1: the kernel SIGKILLed the whole container, main process included
        # (exit 137); a main process that exited by itself while its child was killed keeps
        # its own code, as containerd reports it.
        return ContainerExit(
            exit_code=128 - code if code < 0 else code,
            signal=-code if code < 0 else None,
            reason=ExitReason.OOM_KILLED,
            message=None,
            started_at=started_at,
            finished_at=finished_at,
        )
    if code < 0:
        return ContainerExit(
            exit_code=128 - code,
            signal=-code,
            reason=ExitReason.ERROR,
            message=None,
            started_at=started_at,
            finished_at=finished_at,
        )
    return ContainerExit(
        exit_code=code,
        signal=None,
        reason=ExitReason.COMPLETED if code == 0 else ExitReason.ERROR,
        message=None,
        started_at=started_at,
        finished_at=finished_at,
    )


def _record(inst: _Instance, pod: PodSandboxConfig) -> dict[str, object]:
    """The instance record a later daemon reads to adopt or reap the container."""
    data: dict[str, object] = {
        "containerID": inst.container_id,
        "podUID": inst.pod_uid,
        "container": inst.name,
        "restartCount": inst.restart_count,
        "pid": inst.pid,
        "pgid": inst.pid,
        # /proc/<pid>/stat starttime (clock ticks after boot): tells our pid from a reused one.
        "procStartTicks": _proc_start_ticks(inst.pid),
        "startedAt": inst.started_at.isoformat(),
        "mountNamespace": inst.isolated,
        "cgroup": str(inst.cgroup.path) if inst.cgroup else None,
        "podName": pod.name,
        "namespace": pod.namespace,
        "exit": None,
    }
    return data


def _record_exit(path: Path, result: ContainerExit) -> None:
    """Add the exit status to an instance record, if the record is still there."""
    if not path.exists():
        return
    data = json.loads(path.read_text())
    data["exit"] = {
        "exitCode": result.exit_code,
        "signal": result.signal,
        "reason": result.reason.value,
        "finishedAt": result.finished_at.isoformat(),
    }
    _write_json(path, data)


def _proc_start_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[19])  # field 22 of stat(5); fields[0] is field 3 (state)
    except (OSError, IndexError, ValueError):
        return None


def _write_json(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


async def _kill_cgroup(inst: _Instance) -> None:
    """SIGKILL everything in the instance's cgroup and wait until it is empty."""
    if inst.cgroup is None:
        return
    try:
        await inst.cgroup.kill_and_wait(timeout=GROUP_EXIT_TIMEOUT)
    except CgroupError as exc:
        inst.log.warning("after exit: %s", exc)


def _oom_killed(inst: _Instance) -> bool:
    """Whether the kernel's OOM killer killed a process of this instance (fresh counters)."""
    if inst.cgroup is None:
        return False
    try:
        return inst.cgroup.oom_kills() > 0
    except CgroupError as exc:
        inst.log.warning("cannot tell whether it was OOM-killed: %s", exc)
        return False


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Signal a process group; False if it has no members left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


async def _kill_group(pgid: int, olog: logging.LoggerAdapter[logging.Logger]) -> None:
    """SIGKILL every member of the group and wait until none is alive (zombies are dead:
    their parent, init or a subreaper, reaps them)."""
    if not _signal_group(pgid, signal.SIGKILL):
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GROUP_EXIT_TIMEOUT
    while await asyncio.to_thread(_group_alive, pgid):
        if loop.time() > deadline:
            olog.warning(
                "processes of group %d still alive %gs after SIGKILL", pgid, GROUP_EXIT_TIMEOUT
            )
            return
        await asyncio.sleep(0.02)


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group is alive (not a zombie), from /proc."""
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                return True
    return False


async def _pipe_reader(fd: int) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=logfiles.CHUNK)
    protocol = asyncio.StreamReaderProtocol(reader)
    transport, _ = await loop.connect_read_pipe(lambda: protocol, os.fdopen(fd, "rb", buffering=0))
    return reader, transport


async def _pump(
    reader: asyncio.StreamReader, transport: asyncio.BaseTransport, writer: logfiles.LogWriter
) -> None:
    try:
        await logfiles.pump(reader, writer)
    finally:
        transport.close()


async def _read_setup_status(fd: int) -> str | None:
    """What the setup script wrote on its status pipe, up to EOF; None on SETUP_TIMEOUT."""
    reader, transport = await _pipe_reader(fd)
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
