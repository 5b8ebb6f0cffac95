"""ProcessRuntime against real processes: no fakes, no mocks.

Most tests need root (mount namespaces, setpriv) and are skipped without it. Paths that a test
mounts on inside a container are unique names under /var/log, /usr/share, /mnt and /tmp; the
tests check that nothing of them shows on the host and that they are gone afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from minikubelet.api.errors import ContainerConfigError, RuntimeFailure, StartFailure
from minikubelet.api.model import PodSpec
from minikubelet.runtime import logfiles
from minikubelet.runtime.base import (
    ContainerID,
    ExitReason,
    PodSandboxConfig,
    Runtime,
)
from minikubelet.runtime.process import DEFAULT_PATH, ProcessRuntime
from tests.runtime_helpers import config, read_all, run_to_exit

pytestmark = pytest.mark.timeout(60)

needs_root = pytest.mark.root  # tests/conftest.py skips it, with the reason, unless root


# --- fixtures and helpers -----------------------------------------------------------------------


def _live_children() -> list[psutil.Process]:
    children: list[psutil.Process] = psutil.Process().children(recursive=True)
    return children


@pytest.fixture(autouse=True)
def no_children_left_behind() -> Iterator[None]:
    """Fail a test that leaves a child process (or an unreaped zombie) behind."""
    yield
    deadline = time.monotonic() + 3.0
    while (children := _live_children()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert children == [], f"child processes left behind: {children}"


_made_pods: list[PodSandboxConfig] = []


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[ProcessRuntime]:
    _made_pods.clear()
    async with ProcessRuntime(root=tmp_path / "process") as runtime:
        try:
            yield runtime
        finally:
            # A test that passed has stopped its pods; this is for one that failed half-way,
            # so that its mount points on the host go too.
            leftovers = [p for p in _made_pods if (tmp_path / "process/pods" / p.uid).exists()]
            for pod in _made_pods:
                await runtime.stop_pod(pod)
    assert leftovers == [], "pods left running"


def _conformance(runtime: ProcessRuntime) -> Runtime:
    return runtime  # mypy checks that ProcessRuntime implements the Protocol


def unique(prefix: str) -> str:
    return f"{prefix}-mkl-test-{uuid.uuid4().hex[:8]}"


def make_pod(
    containers: list[dict[str, Any]],
    *,
    name: str = "web",
    volumes: list[dict[str, Any]] | None = None,
    security_context: dict[str, Any] | None = None,
) -> PodSandboxConfig:
    raw: dict[str, Any] = {"containers": containers}
    if volumes is not None:
        raw["volumes"] = volumes
    if security_context is not None:
        raw["securityContext"] = security_context
    pod = PodSandboxConfig(
        uid=f"{name}-{uuid.uuid4().hex[:12]}",
        name=f"{name}-node1",
        namespace="default",
        spec=PodSpec.model_validate(raw),
    )
    _made_pods.append(pod)
    return pod


def sh(script: str, **extra: Any) -> dict[str, Any]:
    return {"name": extra.pop("name", "main"), "command": ["sh", "-c", script], **extra}


def exists(path: str | Path) -> bool:
    return os.path.lexists(path)


def is_mount(path: Path) -> bool:
    return os.path.ismount(path)


def remove_empty_dirs(*paths: str) -> None:
    """Safety net after a failed test: the mount points it made on the host, if still empty."""
    for path in paths:
        with contextlib.suppress(OSError):
            if os.path.isfile(path) and os.path.getsize(path) == 0:
                os.unlink(path)
            else:
                os.rmdir(path)


def live_group_members(pgid: int) -> list[int]:
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


async def wait_for_log(
    rt: ProcessRuntime, pod: PodSandboxConfig, needle: bytes, *, name: str = "main"
) -> None:
    async with asyncio.timeout(10):
        while needle not in await read_all(rt.logs(pod, name, restart_count=0)):
            await asyncio.sleep(0.05)


# --- start, exit, logs ----------------------------------------------------------------------------


async def test_exit_code_and_output_are_reported(rt: ProcessRuntime) -> None:
    pod = make_pod([sh("echo hi; echo oops >&2; exit 3")])
    await rt.start_pod(pod)
    started = await rt.start_container(pod, config(pod))
    assert started.container_id == f"process://{pod.uid}-main-0"
    result = await rt.wait_container(started.container_id)
    assert (result.exit_code, result.signal, result.reason) == (3, None, ExitReason.ERROR)
    assert result.started_at <= result.finished_at
    assert await read_all(rt.logs(pod, "main", restart_count=0)) == b"hi\noops\n"
    await rt.remove_container(started.container_id)
    await rt.stop_pod(pod)


async def test_exit_zero_is_completed(rt: ProcessRuntime) -> None:
    pod = make_pod([{"name": "main", "command": ["true"]}])
    await rt.start_pod(pod)
    started = await rt.start_container(pod, config(pod))
    result = await rt.wait_container(started.container_id)
    assert (result.exit_code, result.reason) == (0, ExitReason.COMPLETED)
    await rt.stop_pod(pod)


async def test_killed_by_signal_reports_128_plus_n(rt: ProcessRuntime) -> None:
    pod = make_pod([sh("kill -9 $$")])
    await rt.start_pod(pod)
    started = await rt.start_container(pod, config(pod))
    result = await rt.wait_container(started.container_id)
    assert (result.exit_code, result.signal, result.reason) == (137, 9, ExitReason.ERROR)
    await rt.stop_pod(pod)


async def test_args_alone_are_the_argv(rt: ProcessRuntime) -> None:
    pod = make_pod([{"name": "main", "args": ["echo", "from args"]}])
    await rt.start_pod(pod)
    assert await run_to_exit(rt, pod) == (0, b"from args\n")
    await rt.stop_pod(pod)


async def test_env_is_exactly_the_containers_plus_hostname_and_default_path(
    rt: ProcessRuntime,
) -> None:
    pod = make_pod(
        [{"name": "main", "command": ["env"], "env": [{"name": "GREETING", "value": "hi"}]}]
    )
    await rt.start_pod(pod)
    code, output = await run_to_exit(rt, pod)
    env = dict(line.split("=", 1) for line in output.decode().splitlines())
    expected = {"GREETING": "hi", "HOSTNAME": pod.name, "PATH": DEFAULT_PATH}
    if not rt.isolated:
        expected["TMPDIR"] = env["TMPDIR"]
    assert (code, env) == (0, expected)
    await rt.stop_pod(pod)


async def test_container_path_is_used_to_find_the_binary(rt: ProcessRuntime) -> None:
    pod = make_pod(
        [
            {
                "name": "main",
                "command": ["sh", "-c", "echo $PATH"],
                "env": [{"name": "PATH", "value": "/bin"}],
            }
        ]
    )
    await rt.start_pod(pod)
    assert await run_to_exit(rt, pod) == (0, b"/bin\n")
    await rt.stop_pod(pod)


async def test_working_dir_is_entered(rt: ProcessRuntime) -> None:
    pod = make_pod([{"name": "main", "command": ["pwd"], "workingDir": "/usr/share"}])
    await rt.start_pod(pod)
    assert await run_to_exit(rt, pod) == (0, b"/usr/share\n")
    await rt.stop_pod(pod)


async def test_no_command_is_a_config_error(rt: ProcessRuntime) -> None:
    pod = make_pod([{"name": "noentry", "image": "busybox"}])
    await rt.start_pod(pod)
    with pytest.raises(ContainerConfigError, match="no command specified for container 'noentry'"):
        await rt.start_container(pod, config(pod))
    await rt.stop_pod(pod)


async def test_missing_binary_is_a_start_failure_in_containerd_words(rt: ProcessRuntime) -> None:
    pod = make_pod([{"name": "main", "command": ["mkl-no-such-binary", "x"]}])
    await rt.start_pod(pod)
    with pytest.raises(StartFailure) as err:
        await rt.start_container(pod, config(pod))
    assert str(err.value) == 'exec: "mkl-no-such-binary": executable file not found in $PATH'
    await rt.stop_pod(pod)


async def test_missing_absolute_binary_is_a_start_failure(rt: ProcessRuntime) -> None:
    pod = make_pod([{"name": "main", "command": ["/nonexistent/mkl"]}])
    await rt.start_pod(pod)
    with pytest.raises(
        StartFailure, match=r'exec: "/nonexistent/mkl": stat /nonexistent/mkl: no such'
    ):
        await rt.start_container(pod, config(pod))
    await rt.stop_pod(pod)


async def test_missing_working_dir_is_a_start_failure(rt: ProcessRuntime) -> None:
    pod = make_pod([{"name": "main", "command": ["true"], "workingDir": "/nonexistent-mkl"}])
    await rt.start_pod(pod)
    with pytest.raises(StartFailure, match=r'chdir to cwd \("/nonexistent-mkl"\)'):
        await rt.start_container(pod, config(pod))
    await rt.stop_pod(pod)


# --- stop and the process group -------------------------------------------------------------------


async def test_stop_lets_a_term_trapping_container_exit_cleanly(rt: ProcessRuntime) -> None:
    pod = make_pod(
        [sh('trap "echo got TERM; exit 0" TERM; echo ready; while :; do sleep 0.1; done')]
    )
    await rt.start_pod(pod)
    started = await rt.start_container(pod, config(pod))
    await wait_for_log(rt, pod, b"ready")
    t0 = time.monotonic()
    await rt.stop_container(started.container_id, grace_seconds=10)
    assert time.monotonic() - t0 < 5
    result = await rt.wait_container(started.container_id)
    assert (result.exit_code, result.reason) == (0, ExitReason.COMPLETED)
    assert b"got TERM" in await read_all(rt.logs(pod, "main", restart_count=0))
    await rt.stop_pod(pod)


async def test_stop_kills_a_term_ignoring_container_after_grace(rt: ProcessRuntime) -> None:
    pod = make_pod([sh('trap "" TERM; echo $$; echo ready; while :; do sleep 0.1; done')])
    await rt.start_pod(pod)
    started = await rt.start_container(pod, config(pod))
    await wait_for_log(rt, pod, b"ready")
    pid = int((await read_all(rt.logs(pod, "main", restart_count=0))).split()[0])
    # Its own process group and session, led by its exit recorder (its parent).
    pgid = os.getpgid(pid)
    assert os.getsid(pid) == pgid == psutil.Process(pid).ppid() != pid
    t0 = time.monotonic()
    # wait_container and stop_container at once: one reaper, one result.
    waiting = asyncio.create_task(rt.wait_container(started.container_id))
    await rt.stop_container(started.container_id, grace_seconds=1)
    elapsed = time.monotonic() - t0
    result = await waiting
    assert 1 <= elapsed < 4
    assert (result.exit_code, result.signal) == (137, 9)
    assert live_group_members(pgid) == []
    await rt.stop_container(started.container_id, grace_seconds=1)  # already exited: no-op
    await rt.stop_pod(pod)


async def test_a_child_left_behind_by_the_main_process_is_killed(rt: ProcessRuntime) -> None:
    pod = make_pod([sh("sleep 300 & echo $!; exit 0")])
    await rt.start_pod(pod)
    started = await rt.start_container(pod, config(pod))
    result = await rt.wait_container(started.container_id)
    assert result.exit_code == 0
    child = int(await read_all(rt.logs(pod, "main", restart_count=0)))
    with contextlib.suppress(psutil.NoSuchProcess):
        assert psutil.Process(child).status() == psutil.STATUS_ZOMBIE  # dead; init reaps it
    await rt.stop_pod(pod)


async def test_remove_refuses_a_running_container(rt: ProcessRuntime) -> None:
    pod = make_pod([sh("sleep 30")])
    await rt.start_pod(pod)
    started = await rt.start_container(pod, config(pod))
    with pytest.raises(RuntimeFailure, match="stop it before removing"):
        await rt.remove_container(started.container_id)
    await rt.stop_container(started.container_id, grace_seconds=5)
    await rt.remove_container(started.container_id)
    with pytest.raises(RuntimeFailure, match="no such container"):
        await rt.wait_container(started.container_id)
    await rt.stop_pod(pod)


async def test_instance_records_and_exit_files_are_kept_for_two_instances(
    rt: ProcessRuntime, tmp_path: Path
) -> None:
    import json

    pod = make_pod([sh("exit 4")])
    await rt.start_pod(pod)
    started = await rt.start_container(pod, config(pod, restart_count=2))
    containers = tmp_path / "process" / "pods" / pod.uid / "containers"
    record = containers / "main-2.json"
    data = json.loads(record.read_text())
    assert data["pid"] == data["pgid"] > 0
    assert data["procStartTicks"] > 0 and data["bootID"]
    assert (data["podUID"], data["container"], data["restartCount"]) == (pod.uid, "main", 2)
    await rt.wait_container(started.container_id)
    assert json.loads(record.read_text())["exit"]["exitCode"] == 4
    assert (containers / "main-2.exit").read_text() == "4\n"  # written by its recorder
    await rt.remove_container(started.container_id)
    assert record.exists()  # for the next daemon, until two newer instances exist
    for n in (3, 4):
        await run_to_exit(rt, pod, restart_count=n)
    assert sorted(p.name for p in containers.iterdir()) == [
        "main-3.exit",
        "main-3.json",
        "main-4.exit",
        "main-4.json",
    ]
    await rt.stop_pod(pod)


# --- logs ---------------------------------------------------------------------------------------


def collapse_supported(directory: Path) -> bool:
    """Whether this filesystem can drop a file's head (what exact rotation needs)."""
    probe = directory / ".collapse-probe"
    fd = os.open(probe, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    try:
        os.write(fd, b"x" * 3 * 4096)
        try:
            logfiles._collapse(fd, 4096)
        except OSError:
            return False
        return True
    finally:
        os.close(fd)
        os.unlink(probe)


LINE = 100  # bytes per numbered line: "%099d\n"


def numbered(first: int, last: int) -> bytes:
    return b"".join(b"%099d\n" % i for i in range(first, last))


async def test_log_rotation_keeps_max_files_and_loses_nothing_it_keeps(tmp_path: Path) -> None:
    # 400 lines of 100 bytes in bursts of 40: several rotations at 8 KiB.
    script = (
        'i=0; while [ $i -lt 400 ]; do printf "%099d\\n" $i; i=$((i+1)); '
        "[ $((i % 40)) -eq 0 ] && sleep 0.05; done; exit 0"
    )
    pod = make_pod([sh(script)])
    async with ProcessRuntime(root=tmp_path / "p", log_max_bytes=8192, log_max_files=3) as rt:
        await rt.start_pod(pod)
        code, kept = await run_to_exit(rt, pod)
        log_dir = tmp_path / "p" / "pods" / pod.uid / "logs" / "main"
        assert code == 0
        assert sorted(p.name for p in log_dir.iterdir()) == ["0.log", "0.log.1", "0.log.2"]
        assert kept == b"".join(p.read_bytes() for p in logfiles.rotations(log_dir / "0.log"))
        if collapse_supported(log_dir):
            # Rotated by dropping whole blocks from the live file: what is kept is exactly the
            # end of what was written, nothing lost or repeated at any rotation.
            assert numbered(0, 400).endswith(kept)
            for rotated in ("0.log.1", "0.log.2"):
                size = (log_dir / rotated).stat().st_size
                assert size >= 8192 - 4096 and size % 4096 == 0
        tail = await read_all(rt.logs(pod, "main", restart_count=0, tail_lines=2))
        assert tail == numbered(398, 400)
        await rt.stop_pod(pod)


async def test_logs_previous_tail_and_follow(rt: ProcessRuntime) -> None:
    pod = make_pod(
        [
            sh(
                '[ -e /tmp/second ] || { touch /tmp/second; printf "a\\nb\\nc\\n"; exit 1; }; '
                'for i in 1 2 3 4 5; do echo "n$i"; sleep 0.1; done; printf end'
            )
        ]
    )
    await rt.start_pod(pod)
    assert await run_to_exit(rt, pod, restart_count=0) == (1, b"a\nb\nc\n")
    if not rt.isolated:
        pytest.skip("the script relies on the private /tmp")
    started = await rt.start_container(pod, config(pod, restart_count=1))
    followed = await read_all(rt.logs(pod, "main", restart_count=1, follow=True))
    assert followed == b"n1\nn2\nn3\nn4\nn5\nend"
    await rt.wait_container(started.container_id)

    previous = await read_all(rt.logs(pod, "main", restart_count=1, previous=True))
    assert previous == b"a\nb\nc\n"
    assert await read_all(rt.logs(pod, "main", restart_count=1, tail_lines=2)) == b"n5\nend"
    assert (
        await read_all(rt.logs(pod, "main", restart_count=1, previous=True, tail_lines=1)) == b"c\n"
    )
    assert await read_all(rt.logs(pod, "main", restart_count=1, tail_lines=0)) == b""
    assert await read_all(rt.logs(pod, "main", restart_count=1, tail_lines=99)) == followed
    with pytest.raises(LookupError):
        rt.logs(pod, "main", restart_count=0, previous=True)
    with pytest.raises(LookupError):
        rt.logs(pod, "other", restart_count=0)
    await rt.remove_container(started.container_id)
    await rt.stop_pod(pod)


async def test_follow_with_tail_starts_at_the_last_lines_and_sees_rotations(tmp_path: Path) -> None:
    pod = make_pod(
        [
            sh(
                "echo old1; echo old2; sleep 0.5; i=0; "
                'while [ $i -lt 300 ]; do printf "%099d\\n" $i; i=$((i+1)); '
                "[ $((i % 10)) -eq 0 ] && sleep 0.01; done; exit 0"
            )
        ]
    )
    async with ProcessRuntime(root=tmp_path / "p", log_max_bytes=8192, log_max_files=10) as rt:
        await rt.start_pod(pod)
        started = await rt.start_container(pod, config(pod))
        await wait_for_log(rt, pod, b"old2\n")
        followed = await read_all(rt.logs(pod, "main", restart_count=0, tail_lines=1, follow=True))
        log_dir = tmp_path / "p" / "pods" / pod.uid / "logs" / "main"
        assert len(logfiles.rotations(log_dir / "0.log")) > 2  # it did rotate meanwhile
        if collapse_supported(log_dir):
            assert followed == b"old2\n" + numbered(0, 300)
        else:
            assert followed.startswith(b"old2\n") and followed.endswith(numbered(299, 300))
        await rt.wait_container(started.container_id)
        await rt.stop_pod(pod)


async def test_logs_of_older_instances_are_pruned(rt: ProcessRuntime, tmp_path: Path) -> None:
    pod = make_pod([sh("echo run")])
    await rt.start_pod(pod)
    for n in range(3):
        await run_to_exit(rt, pod, restart_count=n)
    log_dir = tmp_path / "process" / "pods" / pod.uid / "logs" / "main"
    assert sorted(p.name for p in log_dir.iterdir()) == ["1.log", "2.log"]
    await rt.stop_pod(pod)


# --- mounts, /tmp and users (root) -------------------------------------------------------------


@needs_root
async def test_empty_dir_is_shared_by_a_pods_containers_and_invisible_on_the_host(
    rt: ProcessRuntime,
) -> None:
    log_dir = f"/var/log/{unique('app')}"
    html_root = f"/usr/share/{unique('nginx')}"
    html = f"{html_root}/html"
    pod = make_pod(
        [
            sh(
                f"echo hello > {log_dir}/app.log",
                name="writer",
                volumeMounts=[{"name": "shared", "mountPath": log_dir}],
            ),
            sh(
                f"cat {html}/app.log",
                name="reader",
                volumeMounts=[{"name": "shared", "mountPath": html}],
            ),
        ],
        volumes=[{"name": "shared", "emptyDir": {}}],
    )
    try:
        await rt.start_pod(pod)
        assert (await run_to_exit(rt, pod, 0))[0] == 0
        assert await run_to_exit(rt, pod, 1) == (0, b"hello\n")
        # The mount points exist on the host (empty); the content does not.
        assert os.listdir(log_dir) == [] and os.listdir(html) == []
        await rt.stop_pod(pod)
        assert not exists(log_dir)
        assert not exists(html_root)
    finally:
        remove_empty_dirs(html, html_root, log_dir)


@needs_root
async def test_each_pod_has_a_private_tmp(rt: ProcessRuntime) -> None:
    name = unique("healthy")
    pods = [
        make_pod([sh(f"echo {who} > /tmp/{name}; sleep 0.3; cat /tmp/{name}")], name=who)
        for who in ("alpha", "beta")
    ]
    for pod in pods:
        await rt.start_pod(pod)
    results = await asyncio.gather(*(run_to_exit(rt, pod) for pod in pods))
    assert results == [(0, b"alpha\n"), (0, b"beta\n")]
    assert not exists(f"/tmp/{name}")
    for pod in pods:
        await rt.stop_pod(pod)


@needs_root
async def test_exec_runs_in_the_containers_namespace_and_times_out(rt: ProcessRuntime) -> None:
    name = unique("probe")
    pod = make_pod(
        [
            sh(
                f"echo ok > /tmp/{name}; echo ready; exec sleep 30",
                workingDir="/tmp",
                env=[{"name": "MARK", "value": "m1"}],
            )
        ]
    )
    await rt.start_pod(pod)
    started = await rt.start_container(pod, config(pod))
    await wait_for_log(rt, pod, b"ready")
    cid = started.container_id

    result = await rt.exec_in_container(
        cid, ["sh", "-c", f"cat {name}; echo $MARK; pwd; echo err >&2; exit 2"], timeout=5
    )
    assert (result.exit_code, result.output) == (2, b"ok\nm1\n/tmp\nerr\n")

    limited = await rt.exec_in_container(
        cid, ["sh", "-c", "yes | head -c 100000"], timeout=5, output_limit=10
    )
    assert (limited.exit_code, limited.output) == (0, b"y\ny\ny\ny\ny\n")

    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        await rt.exec_in_container(cid, ["sh", "-c", "sleep 30"], timeout=0.5)
    assert time.monotonic() - t0 < 3

    # An exec's leftovers do not outlive it, and do not hold the call up.
    t0 = time.monotonic()
    left = await rt.exec_in_container(cid, ["sh", "-c", "sleep 30 & echo bg"], timeout=5)
    assert left.output == b"bg\n" and time.monotonic() - t0 < 3

    await rt.stop_container(cid, grace_seconds=5)
    with pytest.raises(RuntimeFailure, match="not running"):
        await rt.exec_in_container(cid, ["true"], timeout=1)
    assert not exists(f"/tmp/{name}")
    await rt.stop_pod(pod)


@needs_root
async def test_run_as_user_from_container_or_pod_security_context(rt: ProcessRuntime) -> None:
    pod = make_pod(
        [
            sh("id -u; id -g; id -G", name="container-user", securityContext={"runAsUser": 65534}),
            sh("id -u; id -g", name="pod-user"),
        ],
        security_context={"runAsUser": 1234, "runAsGroup": 4321},
    )
    await rt.start_pod(pod)
    assert await run_to_exit(rt, pod, 0) == (0, b"65534\n4321\n4321\n")
    assert await run_to_exit(rt, pod, 1) == (0, b"1234\n4321\n")
    await rt.stop_pod(pod)


@needs_root
async def test_run_as_user_alone_takes_the_users_primary_group(rt: ProcessRuntime) -> None:
    import pwd

    nobody = pwd.getpwuid(65534)
    pod = make_pod(
        [sh("id -u; id -g; touch /tmp/mine && echo wrote", securityContext={"runAsUser": 65534})]
    )
    await rt.start_pod(pod)
    expected = f"65534\n{nobody.pw_gid}\nwrote\n".encode()
    assert await run_to_exit(rt, pod) == (0, expected)
    await rt.stop_pod(pod)


async def test_run_as_non_root_with_root_is_a_config_error(rt: ProcessRuntime) -> None:
    if os.geteuid() != 0:
        pytest.skip("the daemon's own user is not root here")
    pod = make_pod([sh("true", securityContext={"runAsNonRoot": True})])
    await rt.start_pod(pod)
    with pytest.raises(
        ContainerConfigError, match="container has runAsNonRoot and image will run as root"
    ):
        await rt.start_container(pod, config(pod))
    await rt.stop_pod(pod)


@needs_root
async def test_host_path_read_only_sub_path_and_file(rt: ProcessRuntime, tmp_path: Path) -> None:
    data = tmp_path / "hostdata"
    data.mkdir()
    (data / "in.txt").write_text("from host\n")
    made = tmp_path / "made" / "here"
    conf = tmp_path / "app.conf"
    mnt, sub, conf_at = (f"/mnt/{unique(n)}" for n in ("data", "sub", "conf"))
    script = (
        f"cat {mnt}/in.txt; touch {mnt}/x 2>/dev/null && echo writable || echo read-only; "
        f"echo sub > {sub}/file; echo made > /made/f; echo conf > {conf_at}"
    )
    pod = make_pod(
        [
            sh(
                script,
                volumeMounts=[
                    {"name": "host", "mountPath": mnt, "readOnly": True},
                    {"name": "host", "mountPath": sub, "subPath": "nested/dir"},
                    {"name": "made", "mountPath": "/made"},
                    {"name": "conf", "mountPath": conf_at},
                ],
            ),
        ],
        volumes=[
            {"name": "host", "hostPath": {"path": str(data), "type": "Directory"}},
            {"name": "made", "hostPath": {"path": str(made), "type": "DirectoryOrCreate"}},
            {"name": "conf", "hostPath": {"path": str(conf), "type": "FileOrCreate"}},
        ],
    )
    try:
        await rt.start_pod(pod)
        assert await run_to_exit(rt, pod) == (0, b"from host\nread-only\n")
        assert (data / "nested" / "dir" / "file").read_text() == "sub\n"
        assert not (data / "x").exists()
        assert (made / "f").read_text() == "made\n"
        assert conf.read_text() == "conf\n"
        await rt.stop_pod(pod)
        assert not any(exists(p) for p in (mnt, sub, conf_at, "/made"))
    finally:
        remove_empty_dirs(mnt, sub, conf_at, "/made")


@needs_root
async def test_host_path_type_checks_are_config_errors(rt: ProcessRuntime, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    cases = {
        "Directory": (tmp_path / "missing", "is not a directory"),
        "File": (tmp_path / "afile-missing", "is not a file"),
    }
    for kind, (path, message) in cases.items():
        pod = make_pod(
            [sh("true", volumeMounts=[{"name": "h", "mountPath": f"/mnt/{unique('h')}"}])],
            volumes=[{"name": "h", "hostPath": {"path": str(path), "type": kind}}],
        )
        await rt.start_pod(pod)
        with pytest.raises(
            ContainerConfigError, match=f"hostPath type check failed: {path} {message}"
        ):
            await rt.start_container(pod, config(pod))
        await rt.stop_pod(pod)


@needs_root
async def test_memory_empty_dir_is_a_tmpfs_until_the_pod_stops(
    rt: ProcessRuntime, tmp_path: Path
) -> None:
    cache = f"/mnt/{unique('cache')}"
    pod = make_pod(
        [
            sh(
                f"grep ' {cache} ' /proc/self/mounts | cut -d' ' -f3,4 | cut -d, -f1,3",
                volumeMounts=[{"name": "cache", "mountPath": cache}],
            )
        ],
        volumes=[{"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}],
    )
    volume = tmp_path / "process" / "pods" / pod.uid / "volumes" / "cache"
    await rt.start_pod(pod)
    assert is_mount(volume)
    assert await run_to_exit(rt, pod) == (0, b"tmpfs rw,size=1024k\n")
    await rt.stop_pod(pod)
    assert not volume.exists()
    assert not exists(cache)


@needs_root
async def test_a_failed_bind_is_a_start_failure(rt: ProcessRuntime, tmp_path: Path) -> None:
    pod = make_pod(
        [sh("true", volumeMounts=[{"name": "h", "mountPath": f"/mnt/{unique('h')}"}])],
        volumes=[{"name": "h", "hostPath": {"path": str(tmp_path / "nothing-here")}}],
    )
    await rt.start_pod(pod)
    with pytest.raises(StartFailure, match="container setup in its mount namespace failed: mount"):
        await rt.start_container(pod, config(pod))
    await rt.stop_pod(pod)


# --- without mount namespaces (what a non-root daemon gets) ------------------------------------


async def test_without_namespaces_volumes_are_refused_and_tmp_is_tmpdir(tmp_path: Path) -> None:
    async with ProcessRuntime(root=tmp_path / "p", mount_namespaces=False) as rt:
        assert not rt.isolated
        pod = make_pod(
            [
                sh("true", volumeMounts=[{"name": "v", "mountPath": "/data"}]),
                sh('echo "$TMPDIR"', name="tmp"),
            ],
            volumes=[{"name": "v", "emptyDir": {}}],
        )
        await rt.start_pod(pod)
        with pytest.raises(ContainerConfigError, match="volume mounts need"):
            await rt.start_container(pod, config(pod))
        code, output = await run_to_exit(rt, pod, 1)
        assert (code, output) == (0, f"{tmp_path}/p/pods/{pod.uid}/tmp\n".encode())

        sleeper = make_pod([sh("echo ready; exec sleep 30")])
        await rt.start_pod(sleeper)
        started = await rt.start_container(sleeper, config(sleeper))
        await wait_for_log(rt, sleeper, b"ready")
        result = await rt.exec_in_container(
            started.container_id, ["sh", "-c", "echo $HOSTNAME"], timeout=5
        )
        assert result.output == f"{sleeper.name}\n".encode()
        await rt.stop_container(started.container_id, grace_seconds=0)
        await rt.stop_pod(sleeper)
        await rt.stop_pod(pod)


# --- the sandbox ------------------------------------------------------------------------------


async def test_stop_pod_leaves_nothing_behind(rt: ProcessRuntime, tmp_path: Path) -> None:
    pod = make_pod([sh("echo x; sleep 30")], volumes=[{"name": "v", "emptyDir": {}}])
    sandbox = await rt.start_pod(pod)
    assert sandbox.pod_ip == "127.0.0.1"
    assert await rt.start_pod(pod) == sandbox  # idempotent
    await rt.start_container(pod, config(pod))
    # A container still running when its pod is stopped is killed rather than leaked.
    await rt.stop_pod(pod)
    assert list((tmp_path / "process" / "pods").iterdir()) == []
    with pytest.raises(LookupError):
        rt.logs(pod, "main", restart_count=0)


async def test_unknown_container_ids(rt: ProcessRuntime) -> None:
    unknown = ContainerID("process://nope")
    await rt.stop_container(unknown, grace_seconds=1)  # nothing to stop
    await rt.remove_container(unknown)  # nothing to forget
    with pytest.raises(RuntimeFailure):
        await rt.wait_container(unknown)


@needs_root
async def test_a_mount_point_stays_while_another_pod_uses_it(rt: ProcessRuntime) -> None:
    shared = f"/mnt/{unique('shared')}"
    mount = {"volumeMounts": [{"name": "v", "mountPath": shared}]}
    first = make_pod([sh("true", **mount)], volumes=[{"name": "v", "emptyDir": {}}], name="a")
    second = make_pod(
        [sh(f"echo ready; sleep 0.5; echo data > {shared}/f; cat {shared}/f", **mount)],
        volumes=[{"name": "v", "emptyDir": {}}],
        name="b",
    )
    try:
        for pod in (first, second):
            await rt.start_pod(pod)
        await run_to_exit(rt, first)  # creates the mount point on the host
        started = await rt.start_container(second, config(second))
        await wait_for_log(rt, second, b"ready")
        # Removing the directory now would detach the bind inside the second pod's container.
        await rt.stop_pod(first)
        assert exists(shared)
        result = await rt.wait_container(started.container_id)
        output = await read_all(rt.logs(second, "main", restart_count=0))
        assert (result.exit_code, output) == (0, b"ready\ndata\n")
        await rt.stop_pod(second)
        assert not exists(shared)
    finally:
        remove_empty_dirs(shared)


@needs_root
async def test_exec_runs_as_the_containers_user(rt: ProcessRuntime) -> None:
    pod = make_pod([sh("echo ready; exec sleep 30", securityContext={"runAsUser": 65534})])
    await rt.start_pod(pod)
    started = await rt.start_container(pod, config(pod))
    await wait_for_log(rt, pod, b"ready")
    result = await rt.exec_in_container(started.container_id, ["id", "-u"], timeout=5)
    assert (result.exit_code, result.output) == (0, b"65534\n")
    missing = await rt.exec_in_container(started.container_id, ["mkl-nope"], timeout=5)
    assert missing.exit_code == 127
    await rt.stop_container(started.container_id, grace_seconds=0)
    await rt.stop_pod(pod)


@needs_root
async def test_binds_without_staging_when_no_target_hides_a_source() -> None:
    """With the state dir outside every mountPath (as /var/lib/minikubelet is), each bind is
    one direct mount; the private /tmp, a shared emptyDir and readOnly work as with staging."""
    import tempfile

    from minikubelet.runtime.mounts import Bind, _needs_stage

    assert not _needs_stage((Bind(Path("/var/lib/m/tmp"), "/tmp", False, False),))
    assert _needs_stage(
        (
            Bind(Path("/tmp/state/tmp"), "/tmp", False, False),
            Bind(Path("/tmp/state/vol"), "/data", False, False),
        )
    )
    mount_path = f"/var/tmp/{unique('direct')}"
    with tempfile.TemporaryDirectory(dir="/var/tmp") as root:
        async with ProcessRuntime(root=Path(root) / "process") as rt:
            pod = make_pod(
                [
                    sh(
                        f"echo hi > /tmp/t && echo data > {mount_path}/f && cat /tmp/t",
                        name="writer",
                        volumeMounts=[{"name": "v", "mountPath": mount_path}],
                    ),
                    sh(
                        f"cat {mount_path}/f; echo more > {mount_path}/g || echo read-only",
                        name="reader",
                        volumeMounts=[{"name": "v", "mountPath": mount_path, "readOnly": True}],
                    ),
                ],
                volumes=[{"name": "v", "emptyDir": {}}],
            )
            try:
                await rt.start_pod(pod)
                assert await run_to_exit(rt, pod, 0) == (0, b"hi\n")
                _, out = await run_to_exit(rt, pod, 1)
                assert out.startswith(b"data\n") and out.endswith(b"read-only\n")
                assert os.listdir(mount_path) == []
            finally:
                await rt.stop_pod(pod)
                remove_empty_dirs(mount_path)


@needs_root
async def test_oom_score_adj_follows_the_qos_class_without_cgroups(rt: ProcessRuntime) -> None:
    """kubelet's values: BestEffort 1000; Burstable 1000 - 1000*request/node memory, within
    [3, 999]. (Guaranteed's -997 needs CAP_SYS_RESOURCE, which a container host may refuse.)"""
    best_effort = make_pod([sh("cat /proc/self/oom_score_adj")], name="be")
    burstable = make_pod(
        [sh("cat /proc/self/oom_score_adj", resources={"requests": {"memory": "1Mi"}})],
        name="bu",
    )
    for pod in (best_effort, burstable):
        await rt.start_pod(pod)
    assert await run_to_exit(rt, best_effort) == (0, b"1000\n")
    code, out = await run_to_exit(rt, burstable)
    assert code == 0 and 3 <= int(out) <= 999
    for pod in (best_effort, burstable):
        await rt.stop_pod(pod)


def _open_log_files(log_dir: Path) -> list[str]:
    """What this process holds open of a log: rotated files, or files deleted since (not the
    copy a rotation is writing at that moment, ``.rotating``)."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            rotated = ".log." in target and not target.endswith(".rotating")
            if target.startswith(str(log_dir)) and (rotated or target.endswith("(deleted)")):
                held.append(target)
    return held


async def test_a_follower_holds_no_rotated_or_deleted_file_open(tmp_path: Path) -> None:
    # Rotations every 8 KiB, keeping 2 files: most rotated files are deleted soon after.
    pod = make_pod(
        [sh('i=0; while [ $i -lt 2000 ]; do printf "%099d\\n" $i; i=$((i+1)); done; sleep 1')]
    )
    async with ProcessRuntime(root=tmp_path / "p", log_max_bytes=8192, log_max_files=2) as rt:
        await rt.start_pod(pod)
        log_dir = tmp_path / "p" / "pods" / pod.uid / "logs" / "main"
        started = await rt.start_container(pod, config(pod))
        held: list[str] = []
        got = 0
        async for chunk in rt.logs(pod, "main", restart_count=0, follow=True):
            got += len(chunk)
            held += _open_log_files(log_dir)
            await asyncio.sleep(0.001)  # a slow client: it falls behind the rotations
        assert held == []
        assert got > 8192
        await rt.wait_container(started.container_id)
        await rt.stop_pod(pod)
