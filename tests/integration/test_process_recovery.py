"""ProcessRuntime restart recovery against real processes: a runtime is closed without stopping
its containers (a daemon that died), and a new one is opened over the same root.

What must hold (docs/recovery.md): a running container is adopted, the same process, never
started twice; its exit is still reported with its real code; one that ended meanwhile is
reported with the code its recorder wrote, or as kubelet's ContainerStatusUnknown; a record
that points at another process (a recycled pid) adopts and signals nothing; logs go on without
a gap and stay bounded; a pod nobody claims is stopped and removed; a process that left its
process group dies with its container.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from minikubelet.api.model import PodSpec
from minikubelet.cgroups import CgroupDriver, detect
from minikubelet.runtime import procs
from minikubelet.runtime.base import (
    UNKNOWN_MESSAGE,
    ExitReason,
    PodSandboxConfig,
    RecoveredContainer,
)
from minikubelet.runtime.process import ProcessRuntime
from tests.runtime_helpers import config, read_all

pytestmark = pytest.mark.timeout(90)

SUPPORT = detect()


def make_pod(script: str, *, name: str = "web", grace: int = 1) -> PodSandboxConfig:
    return PodSandboxConfig(
        uid=f"{name}-{uuid.uuid4().hex[:12]}",
        name=f"{name}-node1",
        namespace="default",
        spec=PodSpec.model_validate(
            {
                "terminationGracePeriodSeconds": grace,
                "containers": [{"name": "main", "command": ["sh", "-c", script]}],
            }
        ),
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "process"


@pytest.fixture
def tracking() -> Iterator[CgroupDriver]:
    """A cgroup driver that only tracks processes, in a subtree of this test's own."""
    if SUPPORT.tracking_root is None:
        pytest.skip(f"no writable cgroup v2 hierarchy here: {SUPPORT.reason}")
    driver = CgroupDriver(SUPPORT, name=f"kubepods-test-{uuid.uuid4().hex[:8]}", limits=False)
    driver.setup()
    try:
        yield driver
    finally:
        driver.top.remove()


@pytest.fixture
async def stranger() -> AsyncIterator[asyncio.subprocess.Process]:
    """A live process that no container started, for records to point at."""
    other = await asyncio.create_subprocess_exec("sleep", "60", start_new_session=True)
    try:
        yield other
    finally:
        other.kill()
        await other.wait()


async def recovered(rt: ProcessRuntime, pod: PodSandboxConfig) -> list[RecoveredContainer]:
    await rt.start_pod(pod)
    return list(await rt.recover_pod(pod))


def leader_pid(root: Path, pod: PodSandboxConfig, n: int = 0) -> int:
    data = json.loads((root / "pods" / pod.uid / "containers" / f"main-{n}.json").read_text())
    pid: int = data["pid"]
    return pid


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


def counted(output: bytes) -> list[int]:
    """The numbers the counter printed (its shell may add "Terminated" when stopped)."""
    return [int(line) for line in output.decode().splitlines() if line.isdigit()]


COUNTER = "i=0; while :; do echo $i; i=$((i+1)); sleep 0.01; done"


# --- adoption ------------------------------------------------------------------------------------


async def test_a_running_container_is_adopted_not_started_again(root: Path) -> None:
    pod = make_pod(COUNTER)
    async with ProcessRuntime(root=root) as rt:
        await rt.start_pod(pod)
        started = await rt.start_container(pod, config(pod))
    # The runtime is gone; the container is not.
    pid = leader_pid(root, pod)
    assert psutil.pid_exists(pid)
    await asyncio.sleep(0.3)

    async with ProcessRuntime(root=root) as rt:
        (rc,) = await recovered(rt, pod)
        assert (rc.container_id, rc.exit, rc.restart_count) == (started.container_id, None, 0)
        assert rc.started_at == started.started_at
        assert leader_pid(root, pod) == pid
        # One recorder, one command: nothing was started again.
        assert [p.pid for p in psutil.Process(pid).children()] and len(
            psutil.Process(pid).children()
        ) == 1
        # exec and logs work on it as on a container this runtime started.
        result = await rt.exec_in_container(rc.container_id, ["sh", "-c", "echo ok"], timeout=5)
        assert (result.exit_code, result.output) == (0, b"ok\n")
        # Its exit is reported as before: stop it, and the status is the shell's 143.
        await rt.stop_container(rc.container_id, grace_seconds=5)
        result_exit = await rt.wait_container(rc.container_id)
        assert (result_exit.exit_code, result_exit.reason) == (143, ExitReason.ERROR)
        assert not psutil.pid_exists(pid)
        numbers = counted(await read_all(rt.logs(pod, "main", restart_count=0)))
        assert numbers == list(range(len(numbers))) and len(numbers) > 10  # no gap, no repeat
        await rt.stop_pod(pod)
    assert not (root / "pods" / pod.uid).exists()


async def test_a_container_that_exited_while_no_runtime_watched_reports_its_code(
    root: Path,
) -> None:
    pod = make_pod("sleep 0.5; echo done; exit 3")
    async with ProcessRuntime(root=root) as rt:
        await rt.start_pod(pod)
        started = await rt.start_container(pod, config(pod))
    before = time.time()
    await asyncio.sleep(1.5)

    async with ProcessRuntime(root=root) as rt:
        (rc,) = await recovered(rt, pod)
        assert rc.container_id == started.container_id
        assert rc.exit is not None
        assert (rc.exit.exit_code, rc.exit.reason) == (3, ExitReason.ERROR)
        # The finish time is the recorder's, not when we looked.
        assert before - 1 < rc.exit.finished_at.timestamp() < before + 1
        assert await read_all(rt.logs(pod, "main", restart_count=0)) == b"done\n"
        await rt.stop_pod(pod)


async def test_a_container_killed_whole_while_no_runtime_watched_is_status_unknown(
    root: Path,
) -> None:
    pod = make_pod("sleep 300")
    async with ProcessRuntime(root=root) as rt:
        await rt.start_pod(pod)
        await rt.start_container(pod, config(pod))
    pid = leader_pid(root, pod)
    os.killpg(pid, signal.SIGKILL)  # recorder and command at once: nothing is recorded
    await wait_until(lambda: psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    async with ProcessRuntime(root=root) as rt:
        (rc,) = await recovered(rt, pod)
        assert rc.exit is not None
        assert (rc.exit.exit_code, rc.exit.reason, rc.exit.message) == (
            137,
            ExitReason.UNKNOWN,
            UNKNOWN_MESSAGE,
        )
        await rt.stop_pod(pod)


async def test_exit_code_of_an_adopted_container(root: Path) -> None:
    flag = Path(f"/var/tmp/mkl-test-{uuid.uuid4().hex[:8]}")  # not under /tmp: it is private
    pod = make_pod(f"while [ ! -e {flag} ]; do sleep 0.05; done; echo bye; exit 7")
    async with ProcessRuntime(root=root) as rt:
        await rt.start_pod(pod)
        await rt.start_container(pod, config(pod))
    async with ProcessRuntime(root=root) as rt:
        (rc,) = await recovered(rt, pod)
        assert rc.exit is None
        await asyncio.to_thread(flag.touch)
        async with asyncio.timeout(10):
            result = await rt.wait_container(rc.container_id)
        # Not our child any more (in a real restart), yet the real code: its recorder wrote it.
        assert (result.exit_code, result.reason) == (7, ExitReason.ERROR)
        assert await read_all(rt.logs(pod, "main", restart_count=0)) == b"bye\n"
        await rt.stop_pod(pod)
    await asyncio.to_thread(flag.unlink)


async def test_a_container_whose_pid_was_never_recorded_is_found_and_adopted(root: Path) -> None:
    # The daemon died between the spawn and the record of the pid: only the intent is there.
    pod = make_pod("sleep 300")
    async with ProcessRuntime(root=root) as rt:
        await rt.start_pod(pod)
        await rt.start_container(pod, config(pod))
    pid = leader_pid(root, pod)
    record = root / "pods" / pod.uid / "containers" / "main-0.json"
    data = json.loads(record.read_text())
    data["pid"] = data["pgid"] = data["procStartTicks"] = None
    record.write_text(json.dumps(data))
    async with ProcessRuntime(root=root) as rt:
        (rc,) = await recovered(rt, pod)
        assert rc.exit is None  # running: found by its exit file in its arguments, adopted
        assert leader_pid(root, pod) == pid
        await rt.stop_pod(pod)
    assert not _alive(pid)


# --- identity ------------------------------------------------------------------------------------


def forge(
    root: Path,
    pod: PodSandboxConfig,
    *,
    pid: int,
    ticks: int | None,
    boot: str | None = None,
    cgroup: Path | None = None,
) -> None:
    """A record as a dead daemon would have left it, for a process that is not the one
    recorded (a reused pid)."""
    containers = root / "pods" / pod.uid / "containers"
    containers.mkdir(parents=True)
    (root / "pods" / pod.uid / "logs" / "main").mkdir(parents=True)
    (root / "pods" / pod.uid / "logs" / "main" / "0.log").write_bytes(b"")
    record = {
        "containerID": f"process://{pod.uid}-main-0",
        "podUID": pod.uid,
        "podName": pod.name,
        "namespace": pod.namespace,
        "container": "main",
        "restartCount": 0,
        "startedAt": "2024-01-01T00:00:00+00:00",
        "bootID": boot or procs.boot_id(),
        "gracePeriodSeconds": 1,
        "mountNamespace": False,
        "workingDir": "/",
        "env": {},
        "setpriv": [],
        "cgroup": str(cgroup) if cgroup else None,
        "pid": pid,
        "pgid": pid,
        "procStartTicks": ticks,
        "exit": None,
    }
    (containers / "main-0.json").write_text(json.dumps(record))


async def test_a_record_pointing_at_another_process_adopts_and_signals_nothing(
    root: Path, stranger: asyncio.subprocess.Process
) -> None:
    # The recorded pid now belongs to an unrelated process that started at another time.
    ticks = procs.start_ticks(stranger.pid)
    assert ticks is not None
    pod = make_pod("sleep 60")
    forge(root, pod, pid=stranger.pid, ticks=ticks - 1)
    async with ProcessRuntime(root=root) as rt:
        (rc,) = await recovered(rt, pod)
        assert rc.exit is not None and rc.exit.reason is ExitReason.UNKNOWN
        await rt.stop_pod(pod)
        await rt.clean_up_pods(keep=set())
    assert stranger.returncode is None  # never signalled


async def test_a_record_of_another_boot_is_never_adopted(
    root: Path, stranger: asyncio.subprocess.Process
) -> None:
    pod = make_pod("sleep 60")
    forge(root, pod, pid=stranger.pid, ticks=procs.start_ticks(stranger.pid), boot="another")
    async with ProcessRuntime(root=root) as rt:
        (rc,) = await recovered(rt, pod)
        assert rc.exit is not None and rc.exit.reason is ExitReason.UNKNOWN
        await rt.stop_pod(pod)
    assert stranger.returncode is None


async def test_a_process_outside_the_recorded_cgroup_is_not_adopted(
    root: Path, tracking: CgroupDriver, stranger: asyncio.subprocess.Process
) -> None:
    pod = make_pod("sleep 60")
    cgroup = tracking.create_container(uid=pod.uid, spec=pod.spec, container=pod.spec.containers[0])
    # The right start time, even, but not in the container's cgroup.
    forge(root, pod, pid=stranger.pid, ticks=procs.start_ticks(stranger.pid), cgroup=cgroup.path)
    async with ProcessRuntime(root=root, cgroups=tracking) as rt:
        (rc,) = await recovered(rt, pod)
        assert rc.exit is not None and rc.exit.reason is ExitReason.UNKNOWN
        await rt.stop_pod(pod)
    assert stranger.returncode is None


# --- logs across a restart -----------------------------------------------------------------------


async def test_output_goes_on_without_the_runtime_and_follow_resumes(root: Path) -> None:
    pod = make_pod(COUNTER)
    async with ProcessRuntime(root=root) as rt:
        await rt.start_pod(pod)
        await rt.start_container(pod, config(pod))
        await asyncio.sleep(0.3)
    pid = leader_pid(root, pod)
    await asyncio.sleep(1.0)  # no runtime: the container writes on, into its file
    assert psutil.pid_exists(pid)  # no SIGPIPE

    async with ProcessRuntime(root=root) as rt:
        (rc,) = await recovered(rt, pod)
        assert rc.exit is None
        seen: list[int] = []

        async def follow() -> None:
            buffer = b""
            async for chunk in rt.logs(pod, "main", restart_count=0, follow=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                seen.extend(int(line) for line in lines if line.isdigit())

        follower = asyncio.create_task(follow())
        await wait_until(lambda: len(seen) > 150)
        await rt.stop_container(rc.container_id, grace_seconds=5)
        async with asyncio.timeout(10):
            await follower  # ends with the container
        assert seen == list(range(len(seen)))  # from 0, across the restart, no gap
        await rt.stop_pod(pod)


async def test_a_log_grown_past_its_size_while_no_runtime_watched_is_rotated_at_once(
    root: Path,
) -> None:
    pod = make_pod('i=0; while [ $i -lt 600 ]; do printf "%099d\\n" $i; i=$((i+1)); done; sleep 60')
    async with ProcessRuntime(root=root, log_max_bytes=8192, log_max_files=2) as rt:
        await rt.start_pod(pod)
        await rt.start_container(pod, config(pod))
    log_dir = root / "pods" / pod.uid / "logs" / "main"
    await wait_until(lambda: (log_dir / "0.log").stat().st_size >= 60000)  # unbounded meanwhile
    async with ProcessRuntime(root=root, log_max_bytes=8192, log_max_files=2) as rt:
        (rc,) = await recovered(rt, pod)
        await wait_until(lambda: (log_dir / "0.log").stat().st_size < 8192)
        assert sorted(p.name for p in log_dir.iterdir()) == ["0.log", "0.log.1"]
        await rt.stop_container(rc.container_id, grace_seconds=1)
        await rt.stop_pod(pod)


# --- pods nobody claims --------------------------------------------------------------------------


async def test_pods_nobody_claims_are_stopped_and_removed(root: Path) -> None:
    kept, gone = make_pod("sleep 300", name="kept"), make_pod("sleep 300", name="gone")
    async with ProcessRuntime(root=root) as rt:
        for pod in (kept, gone):
            await rt.start_pod(pod)
            await rt.start_container(pod, config(pod))
    gone_pid = leader_pid(root, gone)
    (root / "pods" / "left-by-an-older-daemon" / "logs").mkdir(parents=True)
    async with ProcessRuntime(root=root) as rt:
        await rt.clean_up_pods(keep={kept.uid})
        assert not psutil.pid_exists(gone_pid) or (
            psutil.Process(gone_pid).status() == psutil.STATUS_ZOMBIE
        )
        assert sorted(os.listdir(root / "pods")) == [kept.uid]
        (rc,) = await recovered(rt, kept)
        assert rc.exit is None
        await rt.stop_pod(kept)
    assert os.listdir(root / "pods") == []


# --- processes that leave their group ------------------------------------------------------------


def escaped_pid(root: Path, pod: PodSandboxConfig) -> int:
    text = (root / "pods" / pod.uid / "logs" / "main" / "0.log").read_text()
    return int(text.split()[0])


async def test_a_process_that_left_its_session_dies_with_its_container_cgroup(
    root: Path, tracking: CgroupDriver
) -> None:
    # setsid: a session of its own; the cgroup knows it anyway.
    pod = make_pod("setsid sh -c 'trap \"\" TERM; echo $$; exec sleep 300' & sleep 300")
    async with ProcessRuntime(root=root, cgroups=tracking) as rt:
        await rt.start_pod(pod)
        started = await rt.start_container(pod, config(pod))
        await wait_until(lambda: (root / "pods" / pod.uid / "logs/main/0.log").stat().st_size)
        escaped = escaped_pid(root, pod)
        assert os.getsid(escaped) == escaped != os.getsid(leader_pid(root, pod))
        await rt.stop_container(started.container_id, grace_seconds=1)
        await wait_until(lambda: not _alive(escaped))
        await rt.stop_pod(pod)


async def test_a_process_that_left_its_session_dies_with_its_adopted_container(
    root: Path, tracking: CgroupDriver
) -> None:
    pod = make_pod("(setsid sh -c 'trap \"\" TERM; echo $$; exec sleep 300' &); sleep 300")
    async with ProcessRuntime(root=root, cgroups=tracking) as rt:
        await rt.start_pod(pod)
        await rt.start_container(pod, config(pod))
        await wait_until(lambda: (root / "pods" / pod.uid / "logs/main/0.log").stat().st_size)
    escaped = escaped_pid(root, pod)
    assert psutil.Process(escaped).ppid() != leader_pid(root, pod)  # orphaned: a double fork
    async with ProcessRuntime(root=root, cgroups=tracking) as rt:
        await rt.clean_up_pods(keep=set())
    await wait_until(lambda: not _alive(escaped))


async def test_without_cgroups_a_process_that_left_its_session_dies_on_stop(root: Path) -> None:
    # Its parent (the command) is still there when the container is stopped: found by descent.
    pod = make_pod("setsid sh -c 'trap \"\" TERM; echo $$; exec sleep 300' & wait")
    async with ProcessRuntime(root=root) as rt:
        await rt.start_pod(pod)
        started = await rt.start_container(pod, config(pod))
        await wait_until(lambda: (root / "pods" / pod.uid / "logs/main/0.log").stat().st_size)
        escaped = escaped_pid(root, pod)
        await rt.stop_container(started.container_id, grace_seconds=1)
        await wait_until(lambda: not _alive(escaped))
        await rt.stop_pod(pod)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_a_stopped_adopted_container_leaves_nothing(root: Path) -> None:
    pod = make_pod("sleep 300 & sleep 300 & wait")
    async with ProcessRuntime(root=root) as rt:
        await rt.start_pod(pod)
        await rt.start_container(pod, config(pod))
        await asyncio.sleep(0.3)
    pid = leader_pid(root, pod)
    tree = [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
    assert len(tree) == 4
    async with ProcessRuntime(root=root) as rt:
        (rc,) = await recovered(rt, pod)
        assert rc.exit is None
        await rt.stop_pod(pod)
    assert not any(_alive(p) for p in tree)
