"""minikubelet's cgroup subtree: QoS tiers, pod cgroups and container cgroups, with their limits.

The layout is kubelet's cgroupfs driver, under the ``root`` that ``detect()`` chose::

    <root>/kubepods/                      cpu memory pids enabled for children
        pod<uid>/<container>              Guaranteed pods
        burstable/pod<uid>/<container>
        besteffort/pod<uid>/<container>   besteffort gets cpu.weight 1 (kubelet: shares 2)

Pod cgroups get kubelet's ResourceConfigForPod (``api.resources``); container cgroups get
``cpu.max`` from limits.cpu, ``cpu.weight`` from requests.cpu (kubelet's shares-to-weight
formula), ``memory.max`` from limits.memory, ``memory.oom.group=1`` (an OOM kill takes the
whole container, as kubelet asks of runc on v2) and ``pids.max`` from the daemon setting (also
on the pod cgroup: kubelet's podPidsLimit).

One cgroup per container *instance*: ``create_container`` removes what the previous instance
left and makes a fresh directory, so ``memory.events`` counts only the current instance and
``oom_kills() > 0`` after an exit means OOMKilled. Its processes enter it before exec through
``launch.enter_argv``; the runtime kills and removes it with ``kill_and_wait`` and ``remove``.

Tracking only (``CgroupDriver(support, limits=False)``, on a host where limits cannot be
enforced but a cgroup v2 hierarchy is writable): the same directories, flat under kubepods
(``kubepods/pod<uid>/<container>``), with no controller enabled and no file written but
``cgroup.procs`` and ``cgroup.kill``. They serve to find and kill every process of a container,
also one that left its process group, and to tell a container's processes from others.

The driver trusts no in-memory state: every method finds its directory from the pod UID, so a
restarted daemon can list and clean up what an earlier one left (``pod_uids``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from minikubelet.api.model import Container, PodSpec
from minikubelet.api.resources import (
    QOSClass,
    container_resources,
    qos_class,
    resource_config_for_pod,
    shares_to_weight,
)
from minikubelet.cgroups.detect import DAEMON_LEAF, CgroupSupport
from minikubelet.cgroups.fs import Cgroup, CgroupError

log = logging.getLogger(__name__)

DEFAULT_NAME = "kubepods"
_TIER = {
    QOSClass.GUARANTEED: None,
    QOSClass.BURSTABLE: "burstable",
    QOSClass.BEST_EFFORT: "besteffort",
}
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$")


def _component(value: str, what: str) -> str:
    if not _SAFE.match(value) or value in {".", ".."} or value.startswith("cgroup."):
        raise CgroupError(f"{what} {value!r} cannot name a cgroup")
    return value


class CgroupDriver:
    """Creates, configures and removes the cgroups of pods and containers under one subtree."""

    def __init__(
        self,
        support: CgroupSupport,
        *,
        name: str = DEFAULT_NAME,
        pids_limit: int | None = None,
        limits: bool = True,
    ) -> None:
        """``limits``: enforce them (the support must allow it); False only tracks processes,
        in ``support.tracking_root``."""
        root = support.root if limits else support.tracking_root
        if (limits and not support.available) or root is None:
            raise CgroupError(f"cgroup v2 is not usable: {support.reason}")
        self.support = support
        self.limits = limits  # limits are written and enforced; False: processes are tracked
        self.base = Cgroup(root)  # our delegated cgroup (or the hierarchy's root)
        self.top = Cgroup(root / _component(name, "subtree name"))  # kubepods
        self.controllers = support.controllers if limits else frozenset()
        self.pids_limit = pids_limit if limits else None  # pids.max; None = no limit

    # --- subtree --------------------------------------------------------------------------------

    def setup(self) -> None:
        """Make the subtree usable. Idempotent.

        Creates the base cgroup if the operator named one that does not exist yet, enabling the
        controllers in ``cgroup.subtree_control`` of each directory on the way down; moves the
        processes in the base cgroup (the daemon, under systemd) into its ``daemon`` leaf,
        because cgroup v2 lets no process stay in a cgroup that enables controllers for its
        children (the hierarchy root is exempt); then creates kubepods and its QoS tiers.
        """
        chain = [self.base]
        while not chain[-1].exists():
            chain.append(Cgroup(chain[-1].path.parent))
        for cg in reversed(chain[:-1]):
            if self.limits:
                Cgroup(cg.path.parent).enable_controllers(self.controllers)
            cg.create()
        if not self.limits:
            # No controller, so no rule against processes beside child cgroups: the daemon
            # stays where it is.
            self.top.create()
            return
        if not self._is_hierarchy_root(self.base.path) and self.base.pids():
            leaf = Cgroup(self.base.path / DAEMON_LEAF)
            leaf.create()
            for pid in self.base.pids():  # the daemon and whatever its unit started beside it
                try:
                    leaf.write("cgroup.procs", str(pid))
                except CgroupError:
                    if self._alive(pid):
                        raise
            log.info("moved the daemon into %s so %s can hold pods", leaf.path, self.base.path)
        self.base.enable_controllers(self.controllers)
        self.top.create(enable=self.controllers)
        for tier in ("burstable", "besteffort"):
            Cgroup(self.top.path / tier).create(enable=self.controllers)
        # kubelet's QoS manager: the besteffort tier gets the minimum shares
        Cgroup(self.top.path / "besteffort").write("cpu.weight", str(shares_to_weight(2)))

    @staticmethod
    def _is_hierarchy_root(path: Path) -> bool:
        return not (path / "cgroup.type").exists()  # only the root cgroup lacks cgroup.type

    @staticmethod
    def _alive(pid: int) -> bool:
        return Path(f"/proc/{pid}").exists()

    # --- pods -----------------------------------------------------------------------------------

    def pod_cgroup(self, uid: str, qos: QOSClass) -> Cgroup:
        tier = _TIER[qos] if self.limits else None
        parent = self.top.path / tier if tier else self.top.path
        return Cgroup(parent / f"pod{_component(uid, 'pod UID')}")

    def find_pod(self, uid: str) -> Cgroup | None:
        """The pod's cgroup in whichever tier it is, if any."""
        for qos in QOSClass:
            cg = self.pod_cgroup(uid, qos)
            if cg.exists():
                return cg
        return None

    def pod_uids(self) -> list[str]:
        """UIDs of every pod cgroup present (e.g. left over by an earlier daemon)."""
        uids: list[str] = []
        for parent in (self.top.path, self.top.path / "burstable", self.top.path / "besteffort"):
            if parent.is_dir():
                uids += [
                    p.name[3:] for p in parent.iterdir() if p.is_dir() and p.name.startswith("pod")
                ]
        return sorted(uids)

    def create_pod(self, *, uid: str, spec: PodSpec) -> Cgroup:
        """Create (or update) the pod's cgroup with ResourceConfigForPod. Idempotent."""
        if not self.limits:
            cg = self.pod_cgroup(uid, QOSClass.GUARANTEED)
            cg.create()
            return cg
        config = resource_config_for_pod(spec)
        cg = self.pod_cgroup(uid, config.qos)
        cg.create(enable=self.controllers)
        cg.write("cpu.weight", str(config.cpu_weight))
        if config.cpu_max is not None:
            cg.write("cpu.max", config.cpu_max)
        if config.memory_max is not None:
            cg.write("memory.max", config.memory_max)
        self._write_pids(cg)
        return cg

    async def remove_pod(self, uid: str, *, timeout: float = 5.0) -> None:
        """Kill whatever is left in the pod's cgroups, then remove them bottom-up."""
        cg = self.find_pod(uid)
        if cg is None:
            return
        await cg.kill_and_wait(timeout=timeout)
        cg.remove()

    # --- containers -----------------------------------------------------------------------------

    def container_cgroup(self, *, uid: str, spec: PodSpec, name: str) -> Cgroup:
        pod = self.pod_cgroup(uid, qos_class(spec))
        return Cgroup(pod.path / _component(name, "container name"))

    def create_container(self, *, uid: str, spec: PodSpec, container: Container) -> Cgroup:
        """A fresh cgroup for one container instance, limits written, ready to be entered.

        The pod cgroup is created if needed. A cgroup left by the previous instance is removed
        first, so the new one's counters (memory.events oom_kill) start at zero; it must be
        empty (the runtime has killed and reaped the previous instance).
        """
        if self.limits:
            pod = self.create_pod(uid=uid, spec=spec)
        else:
            pod = self.pod_cgroup(uid, QOSClass.GUARANTEED)
            if not pod.exists():
                pod.create()
        cg = Cgroup(pod.path / _component(container.name, "container name"))
        if cg.exists():
            if cg.populated():
                raise CgroupError(
                    f"cgroup {cg.path} still holds processes {cg.pids()} of the previous instance"
                )
            cg.remove()
        cg.create()
        if not self.limits:
            return cg
        res = container_resources(container)
        cg.write("cpu.weight", str(res.cpu_weight))
        cg.write("cpu.max", res.cpu_max)
        cg.write("memory.max", res.memory_max)
        cg.write("memory.oom.group", "1")
        self._write_pids(cg)
        return cg

    def _write_pids(self, cg: Cgroup) -> None:
        if self.pids_limit is not None:
            if "pids" not in self.controllers:
                raise CgroupError(f"pids.max requested but {self.base.path} has no pids controller")
            cg.write("pids.max", str(self.pids_limit))
