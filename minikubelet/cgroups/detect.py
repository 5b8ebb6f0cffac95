"""Is cgroup v2 usable here, where does minikubelet's subtree go, and if not, why not.

This module owns the one decision the daemon makes at start: enforce limits, or run every pod
without them and say so. The answer is a ``CgroupSupport`` whose ``reason`` is the sentence the
daemon logs once and shows in ``/healthz?verbose`` and a node Warning event.

Detection reads, it never writes: on a cgroup v1 "hybrid" host ``/sys/fs/cgroup`` is a writable
tmpfs, where a "write to cpu.max" silently creates a plain file. v2 is recognised by the
filesystem type (statfs ``CGROUP2_SUPER_MAGIC``; /proc/self/mountinfo when statfs is not
reachable), then the controllers by ``cgroup.controllers`` of the directory we would use.

Where the subtree goes (``root``): the daemon's own cgroup, or the ``parent`` the operator
configured. That single rule covers both host kinds:

- a cgroupfs host with the daemon in the root cgroup: ``/sys/fs/cgroup/kubepods``, as kubelet's
  cgroupfs driver does;
- a systemd host (PID 1 is systemd, sd_booted): the daemon's unit must have ``Delegate=yes``,
  which hands the unit's cgroup to us (systemd marks it with the ``trusted.delegate`` xattr).
  ``CgroupDriver.setup`` then moves the daemon into the leaf ``<unit cgroup>/daemon`` (cgroup v2
  forbids processes in a cgroup whose controllers are enabled for children) and the pods live
  in ``<unit cgroup>/kubepods``. A cgroup systemd did not delegate is reported as unusable
  rather than written to behind systemd's back.

Tracking without limits (``tracking_root``): where limits cannot be enforced but a cgroup v2
hierarchy is mounted and writable (a cgroup v1 "hybrid" host has one at /sys/fs/cgroup/unified,
without controllers), pods and containers still get cgroups there, only to know and kill every
process of a container: a process that leaves its process group (``setsid``, a double fork)
stays in its cgroup, and ``cgroup.kill`` takes it. The same placement rules apply (the daemon's
own v2 cgroup or ``parent``; a delegated cgroup under systemd). Nothing is limited there, and the
``reason`` still says that limits are not enforced.

We chose the delegated subtree over transient units through systemd's D-Bus API (kubelet's
"systemd" driver): it needs no D-Bus client, it is the same code path as a cgroupfs host (so the
VM tests cover both), the daemon keeps synchronous control of every write and of ``cgroup.kill``,
and a container cannot outlive the daemon's unit, whose stop kills the whole subtree.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass
from pathlib import Path

CGROUP2_SUPER_MAGIC = 0x63677270
CGROUP_SUPER_MAGIC = 0x0027E0EB  # cgroup v1
TMPFS_MAGIC = 0x01021994

DEFAULT_MOUNT = Path("/sys/fs/cgroup")
REQUIRED_CONTROLLERS = frozenset({"cpu", "memory"})
OPTIONAL_CONTROLLERS = frozenset({"pids"})
DAEMON_LEAF = "daemon"  # where the daemon moves itself when its cgroup becomes the subtree root
NOT_ENFORCED = "CPU and memory limits are not enforced"


@dataclass(frozen=True, slots=True)
class CgroupSupport:
    available: bool  # True when limits can be enforced
    root: Path | None  # the directory the subtree is created in (None when unavailable)
    controllers: frozenset[str]  # the wanted controllers present at root (cpu, memory, pids)
    reason: str  # one sentence for the log, /healthz?verbose and the node event
    systemd: bool = False  # PID 1 is systemd: root is a cgroup delegated to our unit
    tracking_root: Path | None = None  # where pod cgroups go (limits or not); None: nowhere


def _statfs_magic(path: Path) -> int | None:
    """f_type of the filesystem at path, or None when statfs cannot be called."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit Linux
        if libc.statfs(os.fsencode(path), buf) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
        return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF
    except (AttributeError, TypeError):
        return None


@dataclass(frozen=True, slots=True)
class _Mount:
    point: Path
    fstype: str
    options: str  # super options: the v1 controllers appear here


def _mounts(mountinfo: Path) -> list[_Mount]:
    mounts: list[_Mount] = []
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return mounts
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields = left.split()
        rest = right.split()
        if not sep or len(fields) < 5 or len(rest) < 3:
            continue
        point = fields[4].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
        mounts.append(_Mount(Path(point), rest[0], rest[2]))
    return mounts


def _fstype(path: Path, mounts: list[_Mount]) -> str | None:
    best: _Mount | None = None
    for m in mounts:
        covers = path == m.point or m.point in path.parents
        if covers and (best is None or len(m.point.parts) >= len(best.point.parts)):
            best = m
    return best.fstype if best else None


def _read_controllers(directory: Path) -> frozenset[str]:
    try:
        return frozenset((directory / "cgroup.controllers").read_text().split())
    except OSError:
        return frozenset()


def own_cgroup(proc: Path = Path("/proc")) -> str:
    """This process's cgroup v2 path (``0::`` line of /proc/self/cgroup), e.g. ``/`` or
    ``/system.slice/minikubelet.service``."""
    for line in (proc / "self" / "cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:].split(" ")[0] or "/"
    return "/"


def systemd_booted(run: Path = Path("/run")) -> bool:
    """sd_booted(): PID 1 is systemd."""
    return (run / "systemd" / "system").is_dir()


def _is_delegated(directory: Path) -> bool:
    for attr in ("trusted.delegate", "user.delegate"):
        try:
            if os.getxattr(directory, attr).strip(b"\0") in (b"1", b"yes", b"true"):
                return True
        except OSError:
            continue
    return False


def _unavailable(reason: str, tracking_root: Path | None = None) -> CgroupSupport:
    return CgroupSupport(
        False, None, frozenset(), f"{reason}: {NOT_ENFORCED}", tracking_root=tracking_root
    )


def _describe_non_v2(mount: Path, mounts: list[_Mount], fstype: str | None) -> str:
    v1 = sorted(
        opt
        for m in mounts
        if m.fstype == "cgroup"
        for opt in m.options.split(",")
        if opt in REQUIRED_CONTROLLERS
    )
    v2 = [m.point for m in mounts if m.fstype == "cgroup2"]
    if v1 and v2:
        have = sorted(_read_controllers(v2[0]))
        found = (
            f"found cgroup v1 hybrid: {' and '.join(v1)} are v1 controllers, and the v2 "
            f"hierarchy at {v2[0]} has {'only ' + ' '.join(have) if have else 'no controllers'}"
        )
    elif v1:
        found = f"found cgroup v1: {' and '.join(v1)} are v1 controllers"
    elif v2:
        found = f"cgroup v2 is mounted at {v2[0]} instead"
    else:
        found = f"found {fstype or 'nothing'}"
    return f"cgroup v2 is not mounted at {mount} ({found})"


def detect(
    *,
    mount: Path = DEFAULT_MOUNT,
    parent: str | None = None,
    proc: Path = Path("/proc"),
    run: Path = Path("/run"),
) -> CgroupSupport:
    """Decide whether minikubelet can enforce limits, and where its subtree goes.

    ``parent`` is an absolute cgroup path (``/minikubelet``) to use instead of the daemon's own
    cgroup. Nothing is written. When limits cannot be enforced, ``tracking_root`` still names
    a cgroup v2 directory (at or below ``mount``) where processes can be tracked, if any.
    """
    mounts = _mounts(proc / "self" / "mountinfo")
    try:
        magic = _statfs_magic(mount)
    except OSError as exc:
        return _unavailable(f"no cgroup filesystem at {mount} ({exc.strerror})")
    is_v2 = (
        magic == CGROUP2_SUPER_MAGIC if magic is not None else (_fstype(mount, mounts) == "cgroup2")
    )
    if not is_v2:
        reason = _describe_non_v2(mount, mounts, _fstype(mount, mounts))
        v2 = next(
            (m.point for m in mounts if m.fstype == "cgroup2" and m.point.is_relative_to(mount)),
            None,
        )
        tracking = None
        if v2 is not None:
            tracking, _ = _subtree(v2, parent=parent, proc=proc, run=run)
        return _unavailable(reason, tracking)

    root, why_not = _subtree(mount, parent=parent, proc=proc, run=run)
    if root is None:
        return _unavailable(why_not or f"no usable cgroup at {mount}")
    existing = _deepest_existing(root, mount)
    controllers = _read_controllers(existing)
    missing = REQUIRED_CONTROLLERS - controllers
    if missing:
        have = " ".join(sorted(controllers)) or "none"
        return _unavailable(
            f"cgroup v2 at {existing} lacks the {' and '.join(sorted(missing))} "
            f"controller{'s' if len(missing) > 1 else ''} (it has: {have})",
            root,
        )
    wanted = controllers & (REQUIRED_CONTROLLERS | OPTIONAL_CONTROLLERS)
    return CgroupSupport(
        True,
        root,
        wanted,
        f"cgroup v2 at {root} ({' '.join(sorted(wanted))}): CPU and memory limits are enforced",
        systemd_booted(run),
        tracking_root=root,
    )


def _deepest_existing(root: Path, mount: Path) -> Path:
    existing = root
    while not existing.is_dir() and existing != mount:
        existing = existing.parent
    return existing


def _subtree(
    mount: Path, *, parent: str | None, proc: Path, run: Path
) -> tuple[Path | None, str | None]:
    """Where our subtree goes in the cgroup v2 hierarchy at ``mount`` (the daemon's own cgroup,
    or ``parent``), or None and the reason why we may not write there."""
    systemd = systemd_booted(run)
    if parent is not None:
        relative = parent.strip("/")
    else:
        relative = own_cgroup(proc).strip("/")
        if relative.rpartition("/")[2] == DAEMON_LEAF:  # restarted after moving itself
            relative = relative.rpartition("/")[0]
    root = mount / relative if relative else mount

    # The deepest existing directory decides what we may do.
    existing = _deepest_existing(root, mount)
    if systemd:
        if existing == mount:
            return None, (
                f"minikubelet would write to the root cgroup of a systemd host "
                f"({root}); run it from its systemd unit with Delegate=yes"
            )
        if not _is_delegated(existing):
            return None, (
                f"the cgroup {existing} is not delegated by systemd "
                f"(run minikubelet from its unit with Delegate=yes)"
            )
    if not os.access(existing, os.W_OK):
        return None, f"no permission to create cgroups in {existing}"
    return root, None
