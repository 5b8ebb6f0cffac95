"""PodmanRuntime against a real podman service (tests/podman/conftest.py): pods, containers,
volumes, limits, OOM, exec, logs and removal, driven through the Runtime seam only."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import pytest

from minikubelet.api.errors import RuntimeFailure, StartFailure
from minikubelet.runtime.base import ExitReason, Runtime
from minikubelet.runtime.podman import ImagePullError, PodmanRuntime, pull_policy
from minikubelet.runtime.podman_api import PodmanClient
from tests.podman.conftest import IMAGE, box, make_pod, sh
from tests.runtime_helpers import config, read_all, run_to_exit

# Generous: the first test's setup may install podman (apt-get) and build the image.
pytestmark = pytest.mark.timeout(180)


def _conformance(runtime: PodmanRuntime) -> Runtime:
    return runtime  # mypy checks that PodmanRuntime implements the Protocol


ENTRY_IMAGE = "localhost/minikubelet-test-entry:latest"


@pytest.fixture(scope="module")
def entry_image(podman_socket: Path) -> str:
    """busybox with ENTRYPOINT ["echo", "entry"] and CMD ["cmd"], committed through the API."""

    async def build() -> None:
        async with PodmanClient(podman_socket) as api:
            name = f"mkl-entry-{uuid.uuid4().hex[:8]}"
            await api.call(
                "POST",
                "/containers/create",
                body={"name": name, "image": IMAGE, "command": ["true"]},
                what="create",
            )
            await api.call(
                "POST",
                "/commit",
                params={
                    "container": name,
                    "repo": ENTRY_IMAGE.rsplit(":", 1)[0],
                    "tag": "latest",
                    "changes": ['ENTRYPOINT ["echo", "entry"]', 'CMD ["cmd"]'],
                },
                what="commit",
            )
            await api.call("DELETE", f"/containers/{name}", params={"force": "true"}, what="rm")

    asyncio.run(build())
    return ENTRY_IMAGE


# --- command, args, env --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, b"entry cmd\n"),  # the image's entrypoint and cmd
        ({"args": ["a", "b"]}, b"entry a b\n"),  # args replace cmd; the entrypoint stays
        ({"command": ["echo", "c"]}, b"c\n"),  # command replaces both
        ({"command": ["echo", "c"], "args": ["a"]}, b"c a\n"),
    ],
)
async def test_command_replaces_entrypoint_and_args_replace_cmd(
    rt: PodmanRuntime, entry_image: str, fields: dict[str, list[str]], expected: bytes
) -> None:
    pod = make_pod([box(image=entry_image, **fields)])
    await rt.start_pod(pod)
    code, output = await run_to_exit(rt, pod)
    assert (code, output) == (0, expected)
    await rt.stop_pod(pod)


async def test_env_and_working_dir_reach_the_container(rt: PodmanRuntime) -> None:
    pod = make_pod(
        [
            sh(
                'echo "$GREETING $WHO"; pwd',
                env=[{"name": "GREETING", "value": "hello"}, {"name": "WHO", "value": "pod"}],
                workingDir="/work/here",
            )
        ]
    )
    await rt.start_pod(pod)
    assert await run_to_exit(rt, pod) == (0, b"hello pod\n/work/here\n")
    await rt.stop_pod(pod)


async def test_exit_codes_and_reasons(rt: PodmanRuntime) -> None:
    pod = make_pod([sh("exit 0", name="ok"), sh("echo bye; exit 3", name="bad")])
    await rt.start_pod(pod)
    ok = await rt.start_container(pod, config(pod, 0))
    bad = await rt.start_container(pod, config(pod, 1))
    ok_exit, bad_exit = (
        await rt.wait_container(ok.container_id),
        await rt.wait_container(bad.container_id),
    )
    assert (ok_exit.exit_code, ok_exit.reason) == (0, ExitReason.COMPLETED)
    assert (bad_exit.exit_code, bad_exit.reason) == (3, ExitReason.ERROR)
    assert bad_exit.finished_at >= bad_exit.started_at
    await rt.stop_pod(pod)


async def test_missing_executable_is_a_start_failure(rt: PodmanRuntime) -> None:
    pod = make_pod([box(command=["/no/such/binary"])])
    await rt.start_pod(pod)
    with pytest.raises(StartFailure, match="no/such/binary"):
        await rt.start_container(pod, config(pod))
    await rt.stop_pod(pod)


async def test_run_as_user_and_group(rt: PodmanRuntime) -> None:
    pod = make_pod([sh("id -u; id -g", securityContext={"runAsUser": 1234, "runAsGroup": 5678})])
    await rt.start_pod(pod)
    assert await run_to_exit(rt, pod) == (0, b"1234\n5678\n")
    await rt.stop_pod(pod)


# --- pods: network and volumes -------------------------------------------------------------------


async def test_containers_of_a_pod_talk_over_localhost_and_the_host_reaches_the_pod(
    rt: PodmanRuntime,
) -> None:
    port = 20000 + os.getpid() % 20000
    pod = make_pod(
        [
            sh(
                "mkdir -p /www && echo hello-from-httpd > /www/index.html && "
                "exec httpd -f -p 8080 -h /www",
                name="server",
                ports=[{"containerPort": 8080, "hostPort": port}],
            ),
            sh(
                "for i in $(seq 1 50); do wget -qO- http://127.0.0.1:8080/ && exit 0; "
                "sleep 0.1; done; exit 1",
                name="client",
            ),
        ]
    )
    sandbox = await rt.start_pod(pod)
    server = await rt.start_container(pod, config(pod, 0))
    assert await run_to_exit(rt, pod, 1) == (0, b"hello-from-httpd\n")
    # A probe's view: the pod IP from the host, and the published hostPort.
    for host, target in ((sandbox.pod_ip, 8080), ("127.0.0.1", port)):
        reader, writer = await asyncio.open_connection(host, target)
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        assert b"hello-from-httpd" in await reader.read()
        writer.close()
        await writer.wait_closed()
    await rt.stop_container(server.container_id, grace_seconds=1)
    await rt.stop_pod(pod)


async def test_empty_dir_is_shared_by_the_pods_containers(rt: PodmanRuntime) -> None:
    pod = make_pod(
        [
            sh(
                "echo on-disk > /data/file; echo in-ram > /ram/file",
                name="writer",
                volumeMounts=[
                    {"name": "data", "mountPath": "/data"},
                    {"name": "ram", "mountPath": "/ram"},
                ],
            ),
            sh(
                "cat /shared/file /mem/file; grep -c ' /mem tmpfs' /proc/mounts",
                name="reader",
                volumeMounts=[
                    {"name": "data", "mountPath": "/shared", "readOnly": True},
                    {"name": "ram", "mountPath": "/mem"},
                ],
            ),
        ],
        volumes=[
            {"name": "data", "emptyDir": {}},
            {"name": "ram", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}},
        ],
    )
    await rt.start_pod(pod)
    assert (await run_to_exit(rt, pod, 0))[0] == 0
    assert await run_to_exit(rt, pod, 1) == (0, b"on-disk\nin-ram\n1\n")
    await rt.stop_pod(pod)


async def test_host_path_is_bind_mounted(rt: PodmanRuntime, tmp_path: Path) -> None:
    (tmp_path / "in").write_text("from-host\n")
    pod = make_pod(
        [
            sh(
                "cat /host/in; echo from-pod > /host/sub/out",
                volumeMounts=[{"name": "h", "mountPath": "/host"}],
            )
        ],
        volumes=[{"name": "h", "hostPath": {"path": str(tmp_path), "type": "Directory"}}],
    )
    (tmp_path / "sub").mkdir()
    await rt.start_pod(pod)
    assert await run_to_exit(rt, pod) == (0, b"from-host\n")
    assert (tmp_path / "sub/out").read_text() == "from-pod\n"
    await rt.stop_pod(pod)


# --- limits and OOM ------------------------------------------------------------------------------


async def test_limits_are_applied_to_the_container(rt: PodmanRuntime) -> None:
    pod = make_pod(
        [
            box(
                command=["sleep", "60"],
                resources={
                    "limits": {"memory": "48Mi", "cpu": "500m"},
                    "requests": {"cpu": "250m"},
                },
            )
        ]
    )
    await rt.start_pod(pod)
    started = await rt.start_container(pod, config(pod))
    result = await rt.exec_in_container(
        started.container_id,
        [
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
            "/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us "
            "/sys/fs/cgroup/cpu/cpu.shares 2>/dev/null || cat /sys/fs/cgroup/memory.max "
            "/sys/fs/cgroup/cpu.max",
        ],
        timeout=10,
    )
    text = result.output.decode()
    assert str(48 * 1024 * 1024) in text
    assert "50000" in text and "100000" in text
    await rt.stop_container(started.container_id, grace_seconds=0)
    await rt.stop_pod(pod)


async def test_oom_kill_is_reported_as_oom_killed(rt: PodmanRuntime) -> None:
    pod = make_pod([sh("head -c 100m /dev/zero | tail", resources={"limits": {"memory": "32Mi"}})])
    await rt.start_pod(pod)
    started = await rt.start_container(pod, config(pod))
    async with asyncio.timeout(30):
        result = await rt.wait_container(started.container_id)
    assert (result.exit_code, result.reason) == (137, ExitReason.OOM_KILLED)
    await rt.remove_container(started.container_id)
    await rt.stop_pod(pod)


# --- stop ----------------------------------------------------------------------------------------


async def test_stop_kills_after_the_grace_period_when_sigterm_is_ignored(
    rt: PodmanRuntime,
) -> None:
    pod = make_pod([sh("while true; do sleep 1; done")])  # sh as PID 1 ignores SIGTERM
    await rt.start_pod(pod)
    started = await rt.start_container(pod, config(pod))
    began = time.monotonic()
    await rt.stop_container(started.container_id, grace_seconds=1)
    took = time.monotonic() - began
    result = await rt.wait_container(started.container_id)
    assert result.exit_code == 137 and result.reason is ExitReason.ERROR
    assert 0.9 <= took < 8, took
    await rt.stop_pod(pod)


async def test_stop_lets_a_container_that_handles_sigterm_exit_in_time(rt: PodmanRuntime) -> None:
    pod = make_pod([sh("trap 'echo term; exit 0' TERM; while true; do sleep 0.1; done")])
    await rt.start_pod(pod)
    started = await rt.start_container(pod, config(pod))
    await asyncio.sleep(0.3)  # let sh install its trap
    began = time.monotonic()
    await rt.stop_container(started.container_id, grace_seconds=10)
    assert time.monotonic() - began < 5
    result = await rt.wait_container(started.container_id)
    assert (result.exit_code, result.reason) == (0, ExitReason.COMPLETED)
    assert b"term" in await read_all(rt.logs(pod, "main", restart_count=0))
    await rt.stop_pod(pod)


# --- exec ----------------------------------------------------------------------------------------


async def test_exec_returns_code_and_output_and_times_out(rt: PodmanRuntime) -> None:
    pod = make_pod([box(command=["sleep", "60"])])
    await rt.start_pod(pod)
    started = await rt.start_container(pod, config(pod))
    cid = started.container_id
    result = await rt.exec_in_container(
        cid, ["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10
    )
    assert result.exit_code == 3
    assert b"out\n" in result.output and b"err\n" in result.output
    small = await rt.exec_in_container(
        cid, ["sh", "-c", "head -c 5000 /dev/zero"], timeout=10, output_limit=100
    )
    assert (small.exit_code, len(small.output)) == (0, 100)
    missing = await rt.exec_in_container(cid, ["no-such-probe"], timeout=10)
    assert missing.exit_code != 0
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        await rt.exec_in_container(cid, ["sleep", "30"], timeout=1)
    assert time.monotonic() - began < 4
    # The timed-out exec was killed: nothing but PID 1 (and this ps) is left inside.
    ps = await rt.exec_in_container(cid, ["ps", "-o", "comm"], timeout=10)
    assert b"sleep 30" not in ps.output and ps.output.count(b"sleep") == 1
    await rt.stop_container(cid, grace_seconds=0)
    await rt.stop_pod(pod)


# --- logs ----------------------------------------------------------------------------------------


async def test_logs_of_the_current_and_previous_instance_with_tail_and_follow(
    rt: PodmanRuntime,
) -> None:
    pod = make_pod(
        [sh('echo "instance $N"; echo line2; echo err >&2', env=[{"name": "N", "value": "x"}])]
    )
    await rt.start_pod(pod)
    first = await rt.start_container(pod, config(pod, restart_count=0))
    await rt.wait_container(first.container_id)
    await rt.remove_container(first.container_id)
    second = await rt.start_container(pod, config(pod, restart_count=1))
    await rt.wait_container(second.container_id)
    await rt.remove_container(second.container_id)
    assert await read_all(rt.logs(pod, "main", restart_count=1)) == b"instance x\nline2\nerr\n"
    assert await read_all(rt.logs(pod, "main", restart_count=1, previous=True)) == (
        b"instance x\nline2\nerr\n"
    )
    assert await read_all(rt.logs(pod, "main", restart_count=1, tail_lines=1)) == b"err\n"
    # A third instance replaces the first one: its log is gone, the second's is the previous.
    third = await rt.start_container(pod, config(pod, restart_count=2))
    await rt.wait_container(third.container_id)
    with pytest.raises(LookupError):
        await read_all(rt.logs(pod, "main", restart_count=0))
    assert await read_all(rt.logs(pod, "main", restart_count=2, previous=True)) != b""
    with pytest.raises(LookupError):
        rt.logs(pod, "main", restart_count=0, previous=True)
    await rt.stop_pod(pod)


async def test_follow_streams_a_running_container_until_it_exits(rt: PodmanRuntime) -> None:
    pod = make_pod([sh("for i in 1 2 3; do echo tick $i; sleep 0.3; done")])
    await rt.start_pod(pod)
    started = await rt.start_container(pod, config(pod))
    async with asyncio.timeout(15):
        output = await read_all(rt.logs(pod, "main", restart_count=0, follow=True))
    assert output == b"tick 1\ntick 2\ntick 3\n"
    await rt.wait_container(started.container_id)
    await rt.stop_pod(pod)


# --- images --------------------------------------------------------------------------------------


def test_pull_policy_defaults_as_kubernetes_except_for_local_images() -> None:
    assert pull_policy("docker.io/library/nginx", None) == "Always"
    assert pull_policy("nginx:latest", None) == "Always"
    assert pull_policy("nginx:1.25", None) == "IfNotPresent"
    assert pull_policy("registry:5000/app", None) == "Always"
    assert pull_policy("registry:5000/app:v1", None) == "IfNotPresent"
    assert pull_policy("nginx@sha256:abc", None) == "IfNotPresent"
    assert pull_policy("localhost/busybox:latest", None) == "IfNotPresent"
    assert pull_policy("nginx:1.25", "Never") == "Never"


async def test_image_pull_failures_name_kubelets_reasons(rt: PodmanRuntime) -> None:
    events: list[tuple[str, str]] = []
    rt._container_events = lambda ref, type_, reason, message: events.append((reason, message))
    pod = make_pod(
        [
            box("never", image="localhost/not-here:1", imagePullPolicy="Never", command=["true"]),
            box(
                "pull",
                image="localhost:1/minikubelet/nonexistent:1",
                imagePullPolicy="IfNotPresent",
                command=["true"],
            ),
        ]
    )
    await rt.start_pod(pod)
    with pytest.raises(ImagePullError) as never:
        await rt.start_container(pod, config(pod, 0))
    assert never.value.reason == "ErrImageNeverPull"
    async with asyncio.timeout(50):
        with pytest.raises(ImagePullError) as pull:
            await rt.start_container(pod, config(pod, 1))
    assert pull.value.reason == "ErrImagePull"
    assert 'Failed to pull image "localhost:1/minikubelet/nonexistent:1"' in str(pull.value)
    reasons = [r for r, _ in events]
    # The pull's Warning Failed is the worker's (it has the ImagePullError), not the runtime's.
    assert reasons == ["ErrImageNeverPull", "Pulling"]
    await rt.stop_pod(pod)


# --- podman away, and what is left -------------------------------------------------------------


async def test_unreachable_podman_is_a_runtime_failure_naming_the_socket(tmp_path: Path) -> None:
    socket = tmp_path / "nothing.sock"
    pod = make_pod([box(command=["true"])])
    async with PodmanRuntime(socket=socket) as runtime:
        with pytest.raises(RuntimeFailure, match=r"podman is unreachable on .*nothing\.sock"):
            await runtime.start_pod(pod)


async def test_start_pod_and_start_container_take_over_leftovers_of_the_same_uid(
    rt: PodmanRuntime, podman_socket: Path
) -> None:
    """A daemon that died half-way left the pod, a volume and an instance: nothing conflicts."""
    pod = make_pod([box(command=["sh", "-c", "exit 4"])], volumes=[{"name": "v", "emptyDir": {}}])
    await rt.start_pod(pod)
    await run_to_exit(rt, pod)
    async with PodmanRuntime(socket=podman_socket) as again:
        await again.start_pod(pod)
        assert await run_to_exit(again, pod) == (4, b"")
        await again.stop_pod(pod)


async def test_stop_pod_leaves_nothing_behind(rt: PodmanRuntime, podman_socket: Path) -> None:
    from tests.podman.conftest import leftovers

    pod = make_pod(
        [
            sh("sleep 60", name="a", volumeMounts=[{"name": "v", "mountPath": "/v"}]),
            sh("exit 1", name="b"),
        ],
        volumes=[{"name": "v", "emptyDir": {}}, {"name": "m", "emptyDir": {"medium": "Memory"}}],
    )
    await rt.start_pod(pod)
    a = await rt.start_container(pod, config(pod, 0))
    b = await rt.start_container(pod, config(pod, 1))
    await rt.wait_container(b.container_id)
    await rt.remove_container(b.container_id)
    async with PodmanClient(podman_socket) as api:
        assert len(await leftovers(api, [pod.uid])) == 6  # infra + 2 containers, pod, 2 volumes
        await rt.stop_container(a.container_id, grace_seconds=0)
        await rt.stop_pod(pod)
        assert await leftovers(api, [pod.uid]) == []


async def test_a_container_outlives_a_podman_service_restart_and_its_wait_resumes(
    tmp_path: Path, podman_socket: Path
) -> None:
    """The waiter re-issues podman's wait when the service comes back on the same socket."""
    import subprocess

    from tests.podman.conftest import REPO

    directory = tmp_path / "svc"

    def service() -> Path:
        done = subprocess.run(
            [str(REPO / "scripts/podman-test-env"), str(directory)],
            capture_output=True,
            text=True,
            check=True,
        )
        return Path(done.stdout.strip().splitlines()[-1])

    def kill_service() -> None:
        pid = int((directory / "podman.pid").read_text())
        os.kill(pid, 15)
        for _ in range(100):
            if not os.path.exists(f"/proc/{pid}"):
                return
            time.sleep(0.05)

    socket = await asyncio.to_thread(service)
    pod = make_pod([sh("sleep 3; exit 7")])
    try:
        async with PodmanRuntime(socket=socket) as runtime:
            await runtime.start_pod(pod)
            started = await runtime.start_container(pod, config(pod))
            waiting = asyncio.ensure_future(runtime.wait_container(started.container_id))
            await asyncio.to_thread(kill_service)
            with pytest.raises(RuntimeFailure, match="unreachable"):
                await runtime.exec_in_container(started.container_id, ["true"], timeout=5)
            await asyncio.to_thread(service)
            async with asyncio.timeout(20):
                result = await waiting
            assert result.exit_code == 7
            await runtime.remove_container(started.container_id)
            await runtime.stop_pod(pod)
    finally:
        await asyncio.to_thread(kill_service)
