"""cgroup v2 enforcement with real processes, on a real cgroup v2 kernel.

These run inside the VM that ``tests/vm/run-in-vm.sh`` boots (``test_vm_tier.py`` does it from
the host); anywhere without cgroup v2 cpu and memory controllers they skip, with detect()'s
reason. They drive ``CgroupDriver`` and the ``enter_argv`` launcher directly, as the process
runtime will: create the container cgroup, start the command through the launcher, read
cpu.stat / memory.events, kill and remove.

Figures (throttled CPU share, time to the OOM kill) are printed, and appended as JSON lines to
``$MINIKUBELET_VM_RESULTS`` when set, for the host-side test to report.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from minikubelet.api.model import PodSpec
from minikubelet.api.resources import milli_cpu_to_shares, shares_to_weight
from minikubelet.cgroups import CgroupDriver, detect, enter_argv
from minikubelet.cgroups.detect import DAEMON_LEAF, own_cgroup
from minikubelet.cgroups.fs import Cgroup
from tests.vm.throttle import check_throttled_to, throttling

SUPPORT = detect()

pytestmark = [
    pytest.mark.skipif(
        not SUPPORT.available,
        reason=f"needs cgroup v2 with cpu and memory (run tests/vm/run-in-vm.sh): {SUPPORT.reason}",
    ),
    pytest.mark.timeout(300),  # a timeout, not a timed assertion: QEMU's emulation is slow
]


def record(name: str, **figures: object) -> None:
    line = json.dumps({"test": name, **figures})
    print(f"\nFIGURES {line}")
    target = os.environ.get("MINIKUBELET_VM_RESULTS")
    if target:
        with open(target, "a") as f:
            f.write(line + "\n")


def pod(*containers: dict[str, object], init: list[dict[str, object]] | None = None) -> PodSpec:
    raw: dict[str, object] = {"containers": list(containers)}
    if init:
        raw["initContainers"] = init
    return PodSpec.model_validate(raw)


def container(name: str, **resources: dict[str, str]) -> dict[str, object]:
    return {"name": name, "resources": resources} if resources else {"name": name}


@pytest.fixture
def driver() -> Iterator[CgroupDriver]:
    # A subtree of our own per test, so nothing leaks from one test into the next; under
    # systemd it sits in the delegated unit cgroup and setup() moves this pytest into the leaf.
    d = CgroupDriver(SUPPORT, name=f"kubepods-test-{uuid.uuid4().hex[:8]}")
    d.setup()
    yield d
    top = d.top
    if top.exists():
        top.kill()
        deadline = time.monotonic() + 5
        while top.populated() and time.monotonic() < deadline:
            time.sleep(0.01)
        top.remove()


async def start(cg: Cgroup, argv: list[str]) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        *enter_argv(cg.procs_path, argv), stdout=asyncio.subprocess.PIPE
    )
    return proc


async def wait_member(cg: Cgroup, pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while pid not in cg.pids():
        assert time.monotonic() < deadline, f"pid {pid} never entered {cg.path}"
        await asyncio.sleep(0.005)


async def wait_procs(cg: Cgroup, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(cg.pids()) < count:
        assert time.monotonic() < deadline, f"{cg.path} holds {cg.pids()}, expected {count}"
        await asyncio.sleep(0.005)


# --- the subtree ----------------------------------------------------------------------------------


def test_detect_reports_enforcement_with_cpu_memory_pids() -> None:
    assert SUPPORT.root is not None
    assert {"cpu", "memory", "pids"} <= SUPPORT.controllers
    assert SUPPORT.reason.endswith("CPU and memory limits are enforced")


def test_setup_creates_qos_tiers_with_controllers(driver: CgroupDriver) -> None:
    for tier in (driver.top, Cgroup(driver.top.path / "burstable")):
        enabled = set(tier.read("cgroup.subtree_control").split())
        assert {"cpu", "memory", "pids"} <= enabled
    assert Cgroup(driver.top.path / "besteffort").read("cpu.weight").strip() == "1"


@pytest.mark.skipif(not SUPPORT.systemd, reason="only with systemd as PID 1 (run-in-vm --systemd)")
def test_under_systemd_daemon_moves_into_leaf_of_its_delegated_unit(driver: CgroupDriver) -> None:
    assert SUPPORT.root is not None
    assert "system.slice" in str(SUPPORT.root)
    assert own_cgroup().endswith(f"/{DAEMON_LEAF}")
    assert driver.base.pids() == []
    # a restarted daemon finds the same subtree from inside its leaf
    assert detect().root == SUPPORT.root


# --- containers -----------------------------------------------------------------------------------


async def test_process_is_in_its_cgroup_before_the_command_runs(driver: CgroupDriver) -> None:
    spec = pod(container("c"))
    cg = driver.create_container(uid="u1", spec=spec, container=spec.containers[0])
    proc = await start(cg, ["cat", "/proc/self/cgroup"])
    out, _ = await proc.communicate()
    mount = Path("/sys/fs/cgroup")
    assert out.decode().strip() == f"0::/{cg.path.relative_to(mount)}"
    assert proc.returncode == 0
    assert cg.path == driver.top.path / "besteffort" / "podu1" / "c"
    await driver.remove_pod("u1")


async def test_launcher_exits_128_and_runs_nothing_when_cgroup_is_gone(
    driver: CgroupDriver, tmp_path: Path
) -> None:
    spec = pod(container("c"))
    cg = driver.create_container(uid="u2", spec=spec, container=spec.containers[0])
    await driver.remove_pod("u2")
    marker = tmp_path / "ran"
    proc = await start(cg, ["touch", str(marker)])
    await proc.wait()
    assert proc.returncode == 128
    assert not marker.exists()


async def test_cpu_limit_200m_throttles_busy_loop_to_a_fifth_of_a_core(
    driver: CgroupDriver,
) -> None:
    spec = pod(container("burn", limits={"cpu": "200m"}))
    cg = driver.create_container(uid="cpu", spec=spec, container=spec.containers[0])
    assert cg.read("cpu.max").split() == ["20000", "100000"]
    proc = await start(cg, ["/bin/sh", "-c", "while :; do :; done"])
    try:
        await wait_member(cg, proc.pid)
        await asyncio.sleep(0.3)
        before, t0 = cg.cpu_stat(), time.monotonic()
        await asyncio.sleep(3.0)
        after, t1 = cg.cpu_stat(), time.monotonic()
    finally:
        await driver.remove_pod("cpu")
    await proc.wait()
    figures = throttling(before, after, wall_seconds=t1 - t0)
    record("cpu", limit="200m", **figures)
    check_throttled_to(0.2, figures)
    assert proc.returncode == -signal.SIGKILL


async def test_memory_limit_32mi_oom_kills_allocator_with_137(driver: CgroupDriver) -> None:
    spec = pod(container("hog", limits={"memory": "32Mi"}))
    cg = driver.create_container(uid="mem", spec=spec, container=spec.containers[0])
    assert cg.read("memory.max").strip() == str(32 * 1024 * 1024)
    assert cg.read("memory.oom.group").strip() == "1"
    hog = (
        "import sys, time\n"
        "print('allocating', flush=True)\n"
        "chunks = [b'x' * (1 << 20) for _ in range(256)]\n"
        "print('survived', flush=True)\n"
    )
    proc = await start(cg, [sys.executable, "-I", "-S", "-c", hog])
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    t0 = time.monotonic()
    assert line == b"allocating\n"
    rest = await proc.stdout.read()
    await proc.wait()
    oom_seconds = time.monotonic() - t0
    events = cg.memory_events()
    assert proc.returncode is not None
    exit_code = 128 - proc.returncode if proc.returncode < 0 else proc.returncode
    record(
        "memory",
        limit="32Mi",
        exit_code=exit_code,
        oom_kill=events["oom_kill"],
        seconds_to_oom_kill=round(oom_seconds, 3),
    )
    assert b"survived" not in rest
    assert exit_code == 137
    assert events["oom_kill"] >= 1
    assert cg.oom_kills() >= 1
    await driver.remove_pod("mem")


async def test_cpu_weight_follows_kubelet_formula(driver: CgroupDriver) -> None:
    requests = {"a": "100m", "b": "250m", "c": "1", "d": "2", "e": None}
    expected = {"a": 4, "b": 10, "c": 39, "d": 79, "e": 1}
    containers = [
        container(n, requests={"cpu": r}, limits={"memory": "64Mi"}) if r else container(n)
        for n, r in requests.items()
    ]
    spec = pod(*containers)
    for c in spec.containers:
        cg = driver.create_container(uid="w", spec=spec, container=c)
        assert int(cg.read("cpu.weight")) == expected[c.name], c.name
    pod_cg = driver.find_pod("w")
    assert pod_cg is not None and pod_cg.path.parent.name == "burstable"
    total = 100 + 250 + 1000 + 2000
    assert int(pod_cg.read("cpu.weight")) == shares_to_weight(milli_cpu_to_shares(total)) == 131
    assert pod_cg.read("memory.max").strip() == "max"  # not every container limits memory
    record("weights", **{requests[n] or "none": w for n, w in expected.items()}, pod=131)
    await driver.remove_pod("w")


async def test_guaranteed_pod_sits_under_kubepods_with_pod_limits(driver: CgroupDriver) -> None:
    res = {"cpu": "500m", "memory": "64Mi"}
    spec = pod(container("a", limits=res), container("b", limits=res, requests=res))
    cg = driver.create_container(uid="g", spec=spec, container=spec.containers[0])
    assert cg.path.parent == driver.top.path / "podg"
    pod_cg = Cgroup(cg.path.parent)
    assert pod_cg.read("cpu.max").split() == ["100000", "100000"]
    assert pod_cg.read("memory.max").strip() == str(128 * 1024 * 1024)
    await driver.remove_pod("g")


async def test_pids_limit_is_written_to_pod_and_container() -> None:
    d = CgroupDriver(SUPPORT, name=f"kubepods-test-{uuid.uuid4().hex[:8]}", pids_limit=64)
    d.setup()
    try:
        spec = pod(container("c"))
        cg = d.create_container(uid="p", spec=spec, container=spec.containers[0])
        assert cg.read("pids.max").strip() == "64"
        assert Cgroup(cg.path.parent).read("pids.max").strip() == "64"
    finally:
        await d.remove_pod("p")
        d.top.remove()


async def test_restarted_instance_gets_fresh_oom_counter(driver: CgroupDriver) -> None:
    spec = pod(container("c", limits={"memory": "16Mi"}))
    cg = driver.create_container(uid="r", spec=spec, container=spec.containers[0])
    proc = await start(cg, ["/bin/sh", "-c", "x=$(head -c 64m /dev/zero | tr '\\0' x)"])
    await proc.wait()
    assert cg.oom_kills() >= 1
    # as the runtime does after the main process exits: whatever it left is killed and gone
    # (the OOM group kill may still be tearing down the pipeline's other processes)
    await cg.kill_and_wait(timeout=10)
    cg2 = driver.create_container(uid="r", spec=spec, container=spec.containers[0])
    assert cg2.path == cg.path and cg2.oom_kills() == 0
    await driver.remove_pod("r")


# --- cleanup --------------------------------------------------------------------------------------


async def test_remove_pod_kills_every_process_and_removes_its_cgroups(
    driver: CgroupDriver,
) -> None:
    spec = pod(container("a"), container("b", requests={"cpu": "100m"}))
    procs = []
    for c in spec.containers:
        cg = driver.create_container(uid="x", spec=spec, container=c)
        # a grandchild in the background that the launcher's child does not wait for
        procs.append(await start(cg, ["/bin/sh", "-c", "sleep 300 & sleep 300"]))
        await wait_member(cg, procs[-1].pid)
    pod_cg = driver.find_pod("x")
    assert pod_cg is not None and len(pod_cg.path.parent.name) > 0
    await wait_procs(Cgroup(pod_cg.path / "a"), 2)
    t0 = time.monotonic()
    await driver.remove_pod("x")
    removal = time.monotonic() - t0
    for p in procs:
        await asyncio.wait_for(p.wait(), 10)
        assert p.returncode == -signal.SIGKILL
    assert not pod_cg.path.exists()
    assert driver.find_pod("x") is None
    assert driver.pod_uids() == []
    record("cleanup", seconds_to_remove_pod=round(removal, 4))


async def test_kill_without_cgroup_kill_falls_back_to_freeze_and_sigkill(
    driver: CgroupDriver,
) -> None:
    spec = pod(container("c"))
    cg = driver.create_container(uid="k", spec=spec, container=spec.containers[0])
    proc = await start(cg, ["/bin/sh", "-c", "sleep 300 & sleep 300"])
    await wait_member(cg, proc.pid)

    await wait_procs(cg, 2)
    cg.kill_by_signal()  # what kill() does on kernels without cgroup.kill
    assert await cg.wait_empty(timeout=10)
    await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    await driver.remove_pod("k")
