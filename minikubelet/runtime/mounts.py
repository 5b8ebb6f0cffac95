"""A container's filesystem view for the process runtime: which host paths appear where.

The process runtime has no image and no root filesystem of its own: a container sees the host's
filesystem, plus its pod's private ``/tmp`` and its ``volumeMounts``, bind-mounted inside a
private mount namespace (util-linux ``unshare --mount --propagation private``). This module owns
everything about that view that can be decided before a process exists:

- ``plan_mounts`` turns the spec into an ordered list of ``Bind``s (parents before children, as
  containerd sorts them), checks hostPath types with kubelet's messages, creates hostPath
  ``DirectoryOrCreate``/``FileOrCreate`` sources and missing subPath directories, and refuses
  what cannot be done safely (a subPath that escapes its volume, a mount over ``/``).
- ``MountPlan.to_host`` maps a path as the container will see it to the host path behind it, so
  that ``check_start`` can check the working directory and the executable *before* the start:
  a missing binary is a StartFailure rather than a container that exits 127.
- ``make_mountpoints`` creates the mount points that do not exist yet (an empty directory, or an
  empty file for a file source) and returns the ones it created on the host, so that the
  runtime can remove them again when no pod uses them any more.
- ``SETUP_SCRIPT`` and ``setup_argv`` are the tiny ``sh`` program that runs *inside* the new
  namespace, enters the container's cgroup (when there is one) before anything else, performs
  the binds and runs the container's command, staying its parent to record its exit status
  (``RUN_SCRIPT`` and ``run_argv`` do the same without a namespace). Every path and argument
  reaches it as a positional parameter, never interpolated into the script text. Sources are
  first bound into a namespace-private staging tmpfs, then bound from there to their targets,
  so that no target can hide a source that is bound after it.

Nothing here mounts anything on the host: every bind happens in the child, after ``unshare`` has
created the private namespace (``unshare`` execs the script only once ``unshare(2)`` succeeded).
All functions except ``setup_argv`` touch the filesystem and are meant for ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from minikubelet.api.errors import ContainerConfigError, StartFailure
from minikubelet.api.model import Container, PodSpec, Volume

OK_MARKER = "minikubelet: mounts ready"
"""Written by SETUP_SCRIPT on its status pipe once every bind is in place, just before exec."""

# The ops both scripts below understand, as positional parameters ending with "--":
#   cgroup PROCS    write our pid ($$: the pid the command will keep) into PROCS, a cgroup.procs
#                   file; first of all ops, so the binds and the command run inside the cgroup.
#                   Exit 128 (kubelet's StartError code) if it cannot: nothing else runs.
#   oom ADJ         our /proc/$$/oom_score_adj (kubelet's per-QoS value); lowering it needs
#                   CAP_SYS_RESOURCE, and a refusal leaves the inherited value (advice only)
#   stage           mount a private tmpfs on $s (an always-empty host directory) and enter it
#   src I SRC dir|file   make ./I and bind SRC there: every source is reached by its host path
#                   *before* any target is bound, since a target may shadow another source
#                   (a state dir under /tmp, a hostPath under another mount's path)
#   bind I DST      mount --rbind ./I DST: relative to the stage, which stays reachable as our
#                   cwd whatever DST shadows (-c: mount(8) must not canonicalise it to a path)
#   direct SRC DST  mount --rbind SRC DST, straight from the host path: used instead of the
#                   stage when no target shadows a later source (the usual case: one exec a bind)
#   ro DST          mount -o remount,bind,ro DST
#   unstage         detach the stage (through /proc/self/cwd: its path may be shadowed now)
#   cd DIR          the working directory, entered after the binds (it may lie inside one)
#   set NAME VALUE  export NAME=VALUE   } sh's own cd sets PWD and OLDPWD: put back exactly
#   unset NAME      unset NAME          } what the container's env says about them
_OPS = """while [ "$#" -gt 0 ]; do
  case $1 in
    --) shift; break ;;
    cgroup) echo $$ > "$2" || { echo "cannot enter cgroup $2" >&2; exit 128; }; shift 2 ;;
    oom) echo "$2" > "/proc/$$/oom_score_adj" 2>/dev/null || :; shift 2 ;;
    stage) "$m" -t tmpfs -o mode=0700,size=1m minikubelet-stage "$s"; cd -- "$s"; shift ;;
    src) if [ "$4" = file ]; then : > "./$2"; else mkdir "./$2"; fi
         "$m" --rbind -c -- "$3" "./$2"; shift 4 ;;
    bind) "$m" --rbind -c -- "./$2" "$3"; shift 3 ;;
    direct) "$m" --rbind -c -- "$2" "$3"; shift 3 ;;
    ro) "$m" -o remount,bind,ro -c -- "$2"; shift 2 ;;
    unstage) "$u" -l -c /proc/self/cwd; shift ;;
    cd) cd -- "$2"; shift 2 ;;
    set) export "$2=$3"; shift 3 ;;
    unset) unset "$2"; shift 2 ;;
    *) echo "unknown setup op: $1" >&2; exit 127 ;;
  esac
done
"""

# The end of both container scripts below: the exit recorder. The shell stays the container's
# parent instead of exec'ing the command, so that when the command ends, its status is written
# to the instance's exit file (fd 8, created empty before anything else, while the host's
# paths are still in view) whether a daemon is there to wait for it or not (see
# runtime.instances). It runs the command in the foreground (a background job of a
# non-interactive shell would ignore SIGINT and SIGQUIT), with TERM, INT and HUP *trapped*
# rather than ignored (an ignored signal
# stays ignored across exec; a trapped one is reset), so that a stop signal sent to the whole
# process group ends the command and not the recorder. The command gets neither fd 8 nor 9.
# Its status is the shell's: 128+N when a signal N killed it. SIGKILL of the whole container
# takes the recorder too; then there is no status to write, and the daemon knows why.
_RECORD = """set +e
trap : TERM INT HUP
"$@" 8>&- 9>&-
set -- $?
echo "$1" >&8
exit "$1"
"""

# Run by ``sh -c`` inside the new private mount namespace; $1 is mount(8)'s path, $2
# umount(8)'s, $3 the stage directory, $4 the exit file, then the ops, then the argv to run.
# Its stdin is the write end of the runtime's status pipe (dash cannot redirect fds above 9, so
# the pipe cannot come as an arbitrary fd). While it works, stderr is the status pipe, so that a
# failing mount's message reaches the runtime (which turns it into a StartFailure) instead of
# the container's log. On success it writes OK_MARKER there, points stderr back at the log and
# closes the status pipe, so the container inherits neither; the container's stdin is
# /dev/null. Then it records the command's exit (_RECORD).
SETUP_SCRIPT = f"""set -eu
m=$1 u=$2 s=$3
exec 9>&2 2>&0 0</dev/null 8>"$4"
shift 4
{_OPS}echo "{OK_MARKER}" >&2
exec 2>&9 9>&-
{_RECORD}"""

# The same without a mount namespace (not root): $1 is the exit file, then the ops (cgroup,
# oom, cd and env; a failure exits before the command runs), then the argv to run.
RUN_SCRIPT = f"""set -eu
m= u= s=
exec 8>"$1"
shift
{_OPS}{_RECORD}"""

# Run by ``sh -c`` after ``nsenter -t <pid> -m`` for exec_in_container: only the cgroup, cd and
# env ops. Only needed to enter a cgroup (nsenter cannot) or with an nsenter older than 2.38;
# otherwise ``nsenter --wdns`` enters the workdir itself and one exec is saved.
EXEC_SCRIPT = f"""set -eu
m= u= s=
{_OPS}exec "$@"
"""


@dataclass(frozen=True, slots=True)
class Bind:
    source: Path  # the host path that appears at target
    target: str  # the absolute, normalised path inside the container
    read_only: bool  # remounted read-only after the bind
    is_file: bool  # the source is not a directory, so the mount point must be a file


@dataclass(frozen=True, slots=True)
class MountPlan:
    binds: tuple[Bind, ...]  # in mount order: a parent's bind before anything below it

    def to_host(self, container_path: str) -> Path:
        """The host path a container path resolves to, through the binds (the deepest wins)."""
        return _to_host(self.binds, container_path)

    def mountpoints(self) -> list[Path]:
        """Where each bind's mount point lies on the host: through the binds before it only."""
        return [_to_host(self.binds[:i], bind.target) for i, bind in enumerate(self.binds)]


EMPTY_PLAN = MountPlan(binds=())


def plan_mounts(
    *,
    container: Container,
    spec: PodSpec,
    volumes_dir: Path,
    private_tmp: Path | None,
) -> MountPlan:
    """Resolve a container's volumeMounts (and the pod's private /tmp) into binds.

    Raises ContainerConfigError with the volume named, as kubelet's FailedMount events do.
    """
    volumes = {v.name: v for v in spec.volumes or []}
    binds: list[Bind] = []
    seen: set[str] = set()
    for index, vm in enumerate(container.volume_mounts or []):
        where = f"volumeMounts[{index}] ({vm.name!r} at {vm.mount_path!r})"
        target = _normalise_target(vm.mount_path, where)
        if target in seen:
            raise ContainerConfigError(f"{where}: mountPath {target!r} is mounted twice")
        seen.add(target)
        volume = volumes.get(vm.name)
        if volume is None:
            raise ContainerConfigError(f"{where}: the pod has no volume named {vm.name!r}")
        source = _volume_source(volume, volumes_dir)
        if vm.sub_path:
            source = sub_path_source(source, vm.sub_path, where)
        binds.append(
            Bind(
                source=source,
                target=target,
                read_only=bool(vm.read_only),
                is_file=source.exists() and not source.is_dir(),
            )
        )
    if private_tmp is not None and "/tmp" not in seen:
        # A volumeMount at /tmp replaces the pod's private /tmp rather than stacking on it.
        binds.append(Bind(source=private_tmp, target="/tmp", read_only=False, is_file=False))
    # Parents first, so that a bind below another lands inside it (containerd's sortMounts).
    binds.sort(key=lambda b: len(PurePosixPath(b.target).parts))
    return MountPlan(binds=tuple(binds))


def make_mountpoints(plan: MountPlan) -> list[Path]:
    """Create the mount points that do not exist yet; return those created, shallowest first.

    A mount point below an earlier bind is created in that bind's source (where the container
    will see it), not on the host path it shadows. A missing mount point becomes an empty
    directory, or an empty file when the source is a file (bwrap does the same).
    """
    created: list[Path] = []
    for bind, host in zip(plan.binds, plan.mountpoints(), strict=True):
        if os.path.lexists(host):
            continue
        missing: list[Path] = []
        parent = host.parent if bind.is_file else host
        while not os.path.lexists(parent):
            missing.append(parent)
            parent = parent.parent
        try:
            # FileExistsError: another pod's container made it just now; it is not ours.
            for path in reversed(missing):
                with contextlib.suppress(FileExistsError):
                    os.mkdir(path, 0o755)
                    created.append(path)
            if bind.is_file:
                with contextlib.suppress(FileExistsError):
                    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
                    os.close(os.open(host, flags, 0o644))
                    created.append(host)
        except OSError as exc:
            raise ContainerConfigError(
                f"cannot create mount point {bind.target!r} for {bind.source}: {exc.strerror}"
            ) from exc
    return created


def remove_if_unused(path: Path) -> bool:
    """Remove a mount point we created if it is still empty; True if it is gone."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return True
    try:
        if stat.S_ISDIR(st.st_mode):
            os.rmdir(path)
        elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
            os.unlink(path)
        else:
            return False
    except OSError:
        return False  # not empty (something was put there, or another mount point below)
    return True


def _needs_stage(binds: Sequence[Bind]) -> bool:
    """Whether a bind's target would hide the source of a bind made after it (a state dir
    under /tmp, a hostPath under another mount's path): then every source is staged first."""
    return any(
        later.source.is_relative_to(earlier.target)
        for i, earlier in enumerate(binds)
        for later in binds[i + 1 :]
    )


def setup_argv(
    *,
    sh: str,
    mount: str,
    umount: str,
    stage: Path,
    plan: MountPlan,
    workdir: str,
    env: Mapping[str, str],
    argv: Sequence[str],
    exit_file: Path,
    cgroup_procs: Path | None = None,
    oom_score_adj: int | None = None,
) -> list[str]:
    """``sh -c SETUP_SCRIPT`` with the binds, the working directory and the argv as "$@".

    ``cgroup_procs``: the container cgroup's ``cgroup.procs``, entered before anything else
    (folded into this script: no extra exec). ``exit_file``: where the command's exit status
    is recorded. The caller passes the status pipe's write end as the process's stdin."""
    ops = _cgroup_ops(cgroup_procs, oom_score_adj)
    if plan.binds and not _needs_stage(plan.binds):
        for bind in plan.binds:
            ops += ["direct", str(bind.source), bind.target]
            if bind.read_only:
                ops += ["ro", bind.target]
    elif plan.binds:
        ops.append("stage")
        for index, bind in enumerate(plan.binds):
            ops += ["src", str(index), str(bind.source), "file" if bind.is_file else "dir"]
        for index, bind in enumerate(plan.binds):
            ops += ["bind", str(index), bind.target]
            if bind.read_only:
                ops += ["ro", bind.target]
        ops.append("unstage")
    ops += _cd_ops(workdir, env)
    return [
        sh,
        "-c",
        SETUP_SCRIPT,
        "minikubelet-setup",
        mount,
        umount,
        str(stage),
        str(exit_file),
        *ops,
        "--",
        *argv,
    ]


def run_argv(
    *,
    sh: str,
    workdir: str,
    env: Mapping[str, str],
    argv: Sequence[str],
    exit_file: Path,
    cgroup_procs: Path | None = None,
    oom_score_adj: int | None = None,
) -> list[str]:
    """``sh -c RUN_SCRIPT``: a container without a mount namespace, with its exit recorder."""
    ops = [*_cgroup_ops(cgroup_procs, oom_score_adj), *_cd_ops(workdir, env)]
    return [sh, "-c", RUN_SCRIPT, "minikubelet-run", str(exit_file), *ops, "--", *argv]


def exec_argv(
    *,
    sh: str,
    workdir: str,
    env: Mapping[str, str],
    argv: Sequence[str],
    cgroup_procs: Path | None = None,
) -> list[str]:
    """``sh -c EXEC_SCRIPT``: enter the container's cgroup (if any) and workdir, keep env
    exact, exec argv."""
    ops = [*_cgroup_ops(cgroup_procs, None), *_cd_ops(workdir, env)]
    return [sh, "-c", EXEC_SCRIPT, "minikubelet-exec", *ops, "--", *argv]


def _cgroup_ops(cgroup_procs: Path | None, oom_score_adj: int | None) -> list[str]:
    ops = ["cgroup", str(cgroup_procs)] if cgroup_procs is not None else []
    if oom_score_adj is not None:
        ops += ["oom", str(int(oom_score_adj))]
    return ops


def _cd_ops(workdir: str, env: Mapping[str, str]) -> list[str]:
    ops = ["cd", workdir]
    for name in ("PWD", "OLDPWD"):
        ops += ["set", name, env[name]] if name in env else ["unset", name]
    return ops


def check_start(argv0: str, path_env: str, workdir: str, plan: MountPlan) -> None:
    """StartFailure for what would make the exec fail, in containerd's words, checked through
    the container's mounts (its view), before anything is started."""
    host_workdir = plan.to_host(workdir)
    if not host_workdir.is_dir():
        reason = "not a directory" if host_workdir.exists() else "no such file or directory"
        raise StartFailure(f'chdir to cwd ("{workdir}") set in config.json failed: {reason}')
    if "/" in argv0:
        target = plan.to_host(os.path.join(workdir, argv0))
        if not target.exists():
            raise StartFailure(f'exec: "{argv0}": stat {argv0}: no such file or directory')
        if target.is_dir() or not os.access(target, os.X_OK):
            raise StartFailure(f'exec: "{argv0}": permission denied')
        return
    search = os.pathsep.join(
        str(plan.to_host(os.path.join(workdir, entry or "."))) for entry in path_env.split(":")
    )
    if shutil.which(argv0, path=search) is None:
        raise StartFailure(f'exec: "{argv0}": executable file not found in $PATH')


def find_mountpoints_below(directory: Path) -> list[Path]:
    """Mount points in this (the daemon's) namespace at or below directory."""
    found: list[Path] = []
    prefix = str(directory).rstrip("/")
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            target = _unescape_mountinfo(line.split(" ", 5)[4])
            if target == prefix or target.startswith(prefix + "/"):
                found.append(Path(target))
    return found


# --- helpers ------------------------------------------------------------------------------------


def _normalise_target(mount_path: str, where: str) -> str:
    pure = PurePosixPath(mount_path)
    if not pure.is_absolute():
        raise ContainerConfigError(f"{where}: mountPath must be an absolute path")
    if ".." in pure.parts:
        raise ContainerConfigError(f"{where}: mountPath must not contain '..'")
    target = os.path.normpath(mount_path)
    if target in ("/", "//"):
        raise ContainerConfigError(f"{where}: the process runtime cannot mount over /")
    return target


def _volume_source(volume: Volume, volumes_dir: Path) -> Path:
    if volume.empty_dir is not None:
        source = volumes_dir / volume.name
        # start_pod made it; a volume added by a changed spec would be a new pod UID anyway.
        source.mkdir(mode=0o777, parents=True, exist_ok=True)
        return source
    if volume.host_path is not None:
        return host_path_source(volume.name, volume.host_path.path, volume.host_path.type)
    raise ContainerConfigError(
        f"volume {volume.name!r}: the process runtime supports only emptyDir and hostPath volumes"
    )


_TYPE_CHECKS: dict[str, tuple[int, str]] = {
    "Directory": (stat.S_IFDIR, "a directory"),
    "DirectoryOrCreate": (stat.S_IFDIR, "a directory"),
    "File": (stat.S_IFREG, "a file"),
    "FileOrCreate": (stat.S_IFREG, "a file"),
    "Socket": (stat.S_IFSOCK, "a socket file"),
    "CharDevice": (stat.S_IFCHR, "a character device"),
    "BlockDevice": (stat.S_IFBLK, "a block device"),
}


def host_path_source(name: str, path: str, path_type: str) -> Path:
    """kubelet's hostPath type check (pkg/volume/hostpath), with its wording."""
    if not os.path.isabs(path):
        raise ContainerConfigError(f"volume {name!r}: hostPath.path {path!r} must be absolute")
    host = Path(os.path.normpath(path))
    fail = f'MountVolume.SetUp failed for volume "{name}" : hostPath type check failed: {host}'
    try:
        if path_type == "DirectoryOrCreate" and not host.exists():
            host.mkdir(mode=0o755, parents=True)
        elif path_type == "FileOrCreate" and not host.exists():
            host.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            os.close(os.open(host, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    except OSError as exc:
        raise ContainerConfigError(f"{fail} cannot be created: {exc.strerror}") from exc
    if path_type == "":
        # No checks, as kubelet; a missing path shows up as a failed bind at start.
        return host
    kind, noun = _TYPE_CHECKS[path_type]
    try:
        mode = os.stat(host).st_mode
    except OSError:
        raise ContainerConfigError(f"{fail} is not {noun}") from None
    if stat.S_IFMT(mode) != kind:
        raise ContainerConfigError(f"{fail} is not {noun}")
    return host


def sub_path_source(source: Path, sub_path: str, where: str) -> Path:
    pure = PurePosixPath(sub_path)
    if pure.is_absolute() or ".." in pure.parts:
        raise ContainerConfigError(
            f"{where}: subPath {sub_path!r} must be a relative path without '..'"
        )
    path = source / pure
    if not os.path.lexists(path):
        try:
            path.mkdir(mode=0o777 if _is_world_writable(source) else 0o755, parents=True)
        except OSError as exc:
            raise ContainerConfigError(
                f"{where}: cannot create subPath {sub_path!r}: {exc.strerror}"
            ) from exc
    # A symlink inside the volume must not lead the bind out of it (kubelet's safe subpath).
    real_source, real_path = os.path.realpath(source), os.path.realpath(path)
    if os.path.commonpath([real_source, real_path]) != real_source:
        raise ContainerConfigError(f"{where}: subPath {sub_path!r} resolves outside the volume")
    return Path(real_path)


def _is_world_writable(path: Path) -> bool:
    try:
        return bool(os.stat(path).st_mode & stat.S_IWOTH)
    except OSError:
        return False


def _to_host(binds: Sequence[Bind], container_path: str) -> Path:
    path = os.path.normpath(container_path)
    best: Bind | None = None
    for bind in binds:
        below = path == bind.target or path.startswith(bind.target.rstrip("/") + "/")
        if below and (best is None or len(bind.target) > len(best.target)):
            best = bind
    if best is None:
        return Path(path)
    rest = path[len(best.target) :].lstrip("/")
    return best.source / rest if rest else best.source


def _unescape_mountinfo(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    out: list[str] = []
    i = 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)
