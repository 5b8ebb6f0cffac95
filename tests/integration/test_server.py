"""The HTTP API on a real socket, and the real CLI against it.

The aiohttp app is served on port 0 from a real StatusStore and EventRecorder; the log source is
a small async generator that records how it was called. The CLI runs as ``main([...])`` in a
worker thread (so the event loop keeps serving) or as ``python -m minikubelet`` in a subprocess.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import aiohttp
import pytest
import yaml

from minikubelet.api.model import (
    ContainerState,
    ContainerStateRunning,
    ContainerStateTerminated,
    ContainerStateWaiting,
    ContainerStatus,
    ObjectReference,
    PodCondition,
    PodIP,
    PodKey,
    PodStatus,
    PodView,
    pod_key,
)
from minikubelet.cli import main
from minikubelet.server.app import HealthCheck, Server, make_app, serve
from minikubelet.status.events import EventRecorder
from minikubelet.status.store import PodEntry, StatusStore

REPO = Path(__file__).resolve().parents[2]
TOKEN = "test-token-0123456789abcdefghijklmnopqrstuvwxyz"
TOKENS = {TOKEN: "admin"}
AUTH = {"Authorization": f"Bearer {TOKEN}"}
START = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


def decode_pod_available() -> bool:
    from minikubelet.api.validation import decode_pod

    try:
        decode_pod(b"apiVersion: v1\nkind: Pod\n", source="probe")
    except NotImplementedError:
        return False
    except Exception:
        return True
    return True


needs_decode_pod = pytest.mark.skipif(
    not decode_pod_available(), reason="api.validation.decode_pod is not implemented yet"
)


# --- fixtures -----------------------------------------------------------------------------------


@dataclass
class RecordingLogs:
    """A LogSource: serves ``content[(ns, pod, container, previous)]`` and records each call."""

    content: dict[tuple[str, str, str, bool], list[bytes]] = field(default_factory=dict)
    calls: list[dict[str, object]] = field(default_factory=list)
    hold: asyncio.Event | None = None  # when set, a follow stream waits on it after its chunks
    closed: list[str] = field(default_factory=list)

    def __call__(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        previous: bool,
        tail_lines: int | None,
        follow: bool,
    ) -> AsyncIterator[bytes]:
        self.calls.append(
            {"container": container, "previous": previous, "tail": tail_lines, "follow": follow}
        )
        key = (namespace, pod, container, previous)
        if key not in self.content:
            if previous:
                raise LookupError(
                    f'previous terminated container "{container}" in pod "{pod}" not found'
                )
            raise LookupError(f'container "{container}" in pod "{pod}" has no log')
        chunks = self.content[key]
        if tail_lines is not None:
            chunks = chunks[len(chunks) - tail_lines :] if tail_lines else []
        return self._stream(chunks, follow=follow, name=container)

    async def _stream(
        self, chunks: list[bytes], *, follow: bool, name: str
    ) -> AsyncIterator[bytes]:
        try:
            for chunk in chunks:
                yield chunk
            if follow and self.hold is not None:
                await self.hold.wait()
                yield b"after hold\n"
        finally:
            self.closed.append(name)


def status(
    *,
    phase: Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"] = "Running",
    containers: list[ContainerStatus],
    ready: bool = True,
) -> PodStatus:
    return PodStatus(
        phase=phase,
        conditions=[
            PodCondition(type="Initialized", status="True"),
            PodCondition(type="Ready", status="True" if ready else "False"),
            PodCondition(type="ContainersReady", status="True" if ready else "False"),
            PodCondition(type="PodScheduled", status="True"),
        ],
        host_ip="10.1.2.3",
        pod_ip="10.1.2.3",
        pod_ips=[PodIP(ip="10.1.2.3")],
        start_time=START,
        container_statuses=containers,
        qos_class="BestEffort",
    )


def entry(name: str, namespace: str, containers: list[str], st: PodStatus) -> PodEntry:
    view = PodView(
        metadata={
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "creationTimestamp": START.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "annotations": {"kubernetes.io/config.source": "file"},
        },
        spec={
            "nodeName": "node1",
            "restartPolicy": "Always",
            "containers": [{"name": c, "image": "busybox"} for c in containers],
        },
        status=st,
    )
    return PodEntry(view=view, runtime="process", source=f"/etc/manifests/{name}.yaml")


def running(name: str, *, restarts: int = 0) -> ContainerStatus:
    return ContainerStatus(
        name=name,
        ready=True,
        started=True,
        restart_count=restarts,
        state=ContainerState(running=ContainerStateRunning(started_at=START)),
        last_state=ContainerState(
            terminated=ContainerStateTerminated(
                exit_code=1, reason="Error", started_at=START, finished_at=START
            )
        )
        if restarts
        else ContainerState(),
    )


@dataclass
class Api:
    server: Server
    store: StatusStore
    events: EventRecorder
    logs: RecordingLogs
    checks: list[HealthCheck]

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    store = StatusStore(None)
    events = EventRecorder(node_name="node1")
    logs = RecordingLogs()
    checks: list[HealthCheck] = [("syncloop", True, "")]

    web = entry("web-node1", "default", ["web"], status(containers=[running("web", restarts=2)]))
    multi = entry(
        "multi-node1",
        "default",
        ["app", "sidecar"],
        status(containers=[running("app"), running("sidecar")]),
    )
    crash = entry(
        "crash-node1",
        "kube-system",
        ["crash"],
        status(
            containers=[
                ContainerStatus(
                    name="crash",
                    restart_count=4,
                    state=ContainerState(waiting=ContainerStateWaiting(reason="CrashLoopBackOff")),
                )
            ],
            ready=False,
        ),
    )
    for e in (web, multi, crash):
        store.put(pod_key(str(e.view.metadata["namespace"]), str(e.view.metadata["name"])), e)

    web_ref = ObjectReference(
        name="web-node1",
        namespace="default",
        uid="uid-web-node1",
        field_path="spec.containers{web}",
    )
    for _ in range(5):
        events.record(
            web_ref, type="Warning", reason="Unhealthy", message="Liveness probe failed: boom"
        )
    events.record(web_ref, type="Normal", reason="Started", message="Started container web")
    events.record(
        ObjectReference(name="multi-node1", namespace="default", uid="uid-multi-node1"),
        type="Normal",
        reason="Started",
        message="Started container app",
    )

    logs.content[("default", "web-node1", "web", False)] = [b"one\n", b"two\n", b"three\n"]
    logs.content[("default", "web-node1", "web", True)] = [b"previous life\n"]
    logs.content[("default", "multi-node1", "sidecar", False)] = [b"sidecar says hi\n"]

    app = make_app(
        store=store, events=events, logs=logs, tokens=TOKENS, health=lambda: list(checks)
    )
    server = await serve(app, "127.0.0.1", 0)
    try:
        yield Api(server=server, store=store, events=events, logs=logs, checks=checks)
    finally:
        await server.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=AUTH) as session:
        yield session


CliResult = tuple[int, str, str]


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Callable[..., asyncio.Future[CliResult]]:
    """Run ``main(argv)`` in a thread (the loop keeps serving); (exit code, stdout, stderr).
    The CLI gets the token from $MINIKUBELET_TOKEN, and an empty state dir."""
    monkeypatch.setenv("MINIKUBELET_TOKEN", TOKEN)
    monkeypatch.setenv("MINIKUBELET_STATE_DIR", str(tmp_path / "no-state"))

    async def run(*argv: str) -> CliResult:
        capsys.readouterr()
        code = await asyncio.to_thread(main, list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run  # type: ignore[return-value]


# --- /healthz -----------------------------------------------------------------------------------


async def test_healthz_says_ok_and_lists_checks_when_verbose(
    api: Api, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{api.url}/healthz") as r:
        assert (r.status, await r.text()) == (200, "ok")
        assert r.content_type == "text/plain"
    async with http.get(f"{api.url}/healthz?verbose") as r:
        assert r.status == 200
        assert await r.text() == "[+]ping ok\n[+]syncloop ok\nhealthz check passed\n"


async def test_healthz_fails_with_500_naming_the_failed_check(
    api: Api, http: aiohttp.ClientSession
) -> None:
    api.checks.append(("runtime", False, "podman socket unreachable"))
    async with http.get(f"{api.url}/healthz") as r:
        assert r.status == 500
        assert await r.text() == (
            "[+]ping ok\n[+]syncloop ok\n[-]runtime failed: podman socket unreachable\n"
            "healthz check failed\n"
        )


# --- /pods and errors ---------------------------------------------------------------------------


async def test_pods_is_a_v1_pod_list_sorted_by_namespace_and_name(
    api: Api, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{api.url}/pods") as r:
        assert r.status == 200
        assert r.content_type == "application/json"
        body = await r.json()
    assert (body["kind"], body["apiVersion"]) == ("PodList", "v1")
    names = [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in body["items"]]
    assert names == [
        ("default", "multi-node1"),
        ("default", "web-node1"),
        ("kube-system", "crash-node1"),
    ]
    web = body["items"][1]
    assert web["status"]["containerStatuses"][0]["restartCount"] == 2
    assert web["status"]["podIPs"] == [{"ip": "10.1.2.3"}]


@pytest.mark.parametrize("path", ["/metrics", "/nope", "/pods/extra"])
async def test_unknown_paths_are_not_found_status_objects(
    api: Api, http: aiohttp.ClientSession, path: str
) -> None:
    async with http.get(f"{api.url}{path}") as r:
        assert r.status == 404
        assert await r.json() == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "the server could not find the requested resource",
            "reason": "NotFound",
            "code": 404,
        }


async def test_read_only_api_refuses_writes(api: Api, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{api.url}/pods", data=b"{}") as r:
        assert r.status == 405
        assert (await r.json())["reason"] == "MethodNotAllowed"


# --- /events ------------------------------------------------------------------------------------


async def test_events_field_selector_by_name_and_by_uid(
    api: Api, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{api.url}/events") as r:
        everything = await r.json()
    assert everything["kind"] == "EventList"
    assert len(everything["items"]) == 3

    query = {"fieldSelector": "involvedObject.name=web-node1"}
    async with http.get(f"{api.url}/events", params=query) as r:
        by_name = await r.json()
    assert {(e["reason"], e["count"]) for e in by_name["items"]} == {
        ("Unhealthy", 5),
        ("Started", 1),
    }
    unhealthy = next(e for e in by_name["items"] if e["reason"] == "Unhealthy")
    assert unhealthy["involvedObject"]["fieldPath"] == "spec.containers{web}"
    assert unhealthy["source"] == {"component": "kubelet", "host": "node1"}

    query = {"fieldSelector": "involvedObject.uid=uid-multi-node1,type=Normal"}
    async with http.get(f"{api.url}/events", params=query) as r:
        by_uid = await r.json()
    assert [e["message"] for e in by_uid["items"]] == ["Started container app"]

    query = {"fieldSelector": "involvedObject.name=web-node1,reason!=Unhealthy"}
    async with http.get(f"{api.url}/events", params=query) as r:
        assert [e["reason"] for e in (await r.json())["items"]] == ["Started"]


async def test_events_unknown_field_selector_is_bad_request(
    api: Api, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{api.url}/events", params={"fieldSelector": "spec.foo=1"}) as r:
        assert r.status == 400
        body = await r.json()
    assert (body["reason"], body["message"]) == (
        "BadRequest",
        "field label not supported: spec.foo",
    )


# --- /containerLogs -----------------------------------------------------------------------------


async def test_container_logs_pass_previous_and_tail_lines_to_the_source(
    api: Api, http: aiohttp.ClientSession
) -> None:
    base = f"{api.url}/containerLogs/default/web-node1/web"
    async with http.get(base) as r:
        assert (r.status, await r.text()) == (200, "one\ntwo\nthree\n")
        assert r.content_type == "text/plain"
    async with http.get(base, params={"tailLines": "2"}) as r:
        assert await r.text() == "two\nthree\n"
    async with http.get(base, params={"previous": "true"}) as r:
        assert await r.text() == "previous life\n"
    assert api.logs.calls == [
        {"container": "web", "previous": False, "tail": None, "follow": False},
        {"container": "web", "previous": False, "tail": 2, "follow": False},
        {"container": "web", "previous": True, "tail": None, "follow": False},
    ]
    assert api.logs.closed == ["web", "web", "web"]


@pytest.mark.parametrize(
    ("path", "code", "message"),
    [
        ("default/ghost/web", 404, 'pod "ghost" does not exist'),
        ("default/web-node1/nope", 404, 'container "nope" not found in pod "web-node1"'),
        (
            "default/multi-node1/app?previous=1",
            404,
            'previous terminated container "app" in pod "multi-node1" not found',
        ),
        ("default/web-node1/web?tailLines=x", 400, 'invalid value for tailLines: "x"'),
        ("default/web-node1/web?follow=maybe", 400, 'invalid value for follow: "maybe"'),
    ],
)
async def test_container_logs_errors_are_status_objects(
    api: Api, http: aiohttp.ClientSession, path: str, code: int, message: str
) -> None:
    async with http.get(f"{api.url}/containerLogs/{path}") as r:
        assert r.status == code
        body = await r.json()
    assert body["kind"] == "Status"
    assert body["code"] == code
    assert body["message"].startswith(message)


async def test_follow_streams_chunks_as_they_come(api: Api, http: aiohttp.ClientSession) -> None:
    api.logs.hold = asyncio.Event()
    url = f"{api.url}/containerLogs/default/web-node1/web?follow=true"
    async with http.get(url) as r:
        assert r.status == 200
        received = b""
        while received != b"one\ntwo\nthree\n":
            received += await asyncio.wait_for(r.content.readany(), timeout=5)
        api.logs.hold.set()
        assert await asyncio.wait_for(r.content.read(), timeout=5) == b"after hold\n"
    assert api.logs.calls[-1]["follow"] is True


async def test_cleanup_ends_an_open_follow_stream() -> None:
    store = StatusStore(None)
    e = entry("web-node1", "default", ["web"], status(containers=[running("web")]))
    store.put(PodKey("default/web-node1"), e)
    logs = RecordingLogs(hold=asyncio.Event())
    logs.content[("default", "web-node1", "web", False)] = [b"hello\n"]
    server = await serve(
        make_app(store=store, events=EventRecorder(node_name="n"), logs=logs, tokens=TOKENS),
        "127.0.0.1",
        0,
        shutdown_timeout=0.2,
    )
    async with aiohttp.ClientSession(headers=AUTH) as session:
        url = f"{server.url}/containerLogs/default/web-node1/web?follow=true"
        async with session.get(url) as r:
            assert await r.content.readany() == b"hello\n"
            await asyncio.wait_for(server.cleanup(), timeout=5)
    assert logs.closed == ["web"]


async def test_a_follower_hanging_up_closes_its_log_stream(
    api: Api, http: aiohttp.ClientSession
) -> None:
    api.logs.hold = asyncio.Event()  # never set: the stream idles after its chunks
    url = f"{api.url}/containerLogs/default/web-node1/web?follow=1"
    async with http.get(url) as r:
        assert await r.content.readexactly(len(b"one\ntwo\nthree\n")) == b"one\ntwo\nthree\n"
        r.close()  # hang up
    async with asyncio.timeout(5):
        while api.logs.closed != ["web"]:
            await asyncio.sleep(0.01)


async def test_serve_on_port_zero_reports_the_bound_port() -> None:
    app = make_app(
        store=StatusStore(None),
        events=EventRecorder(node_name="n"),
        logs=RecordingLogs(),
        tokens=TOKENS,
    )
    server = await serve(app, "127.0.0.1", 0)
    try:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.close()
        await writer.wait_closed()
    finally:
        await server.cleanup()


# --- CLI: get -----------------------------------------------------------------------------------


async def test_cli_get_pods_prints_the_kubectl_table_for_the_default_namespace(
    api: Api, cli: Callable[..., asyncio.Future[CliResult]]
) -> None:
    code, out, err = await cli("--server", api.url, "get", "pods")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert lines[0].startswith("NAME          READY   STATUS    RESTARTS")
    assert lines[1].split()[:4] == ["multi-node1", "2/2", "Running", "0"]
    assert lines[2].split()[:4] == ["web-node1", "1/1", "Running", "2"]
    assert lines[2].split()[4].startswith("(") and lines[2].split()[5] == "ago)"
    assert len(lines) == 3  # crash-node1 lives in kube-system


async def test_cli_get_all_namespaces_and_wide(
    api: Api, cli: Callable[..., asyncio.Future[CliResult]]
) -> None:
    code, out, _ = await cli("get", "po", "-A", "-o", "wide", "--server", api.url)
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split()[:2] == ["NAMESPACE", "NAME"]
    assert header.endswith("NOMINATED NODE   READINESS GATES")
    crash = rows[-1].split()
    assert crash[:5] == ["kube-system", "crash-node1", "0/1", "CrashLoopBackOff", "4"]
    assert crash[-4:] == ["10.1.2.3", "node1", "<none>", "<none>"]


async def test_cli_get_json_is_a_list_and_a_named_pod_is_the_pod(
    api: Api, cli: Callable[..., asyncio.Future[CliResult]]
) -> None:
    code, out, _ = await cli("--server", api.url, "get", "pods", "-o", "json")
    assert code == 0
    listed = json.loads(out)
    assert (listed["kind"], listed["metadata"]) == ("List", {"resourceVersion": ""})
    assert [p["metadata"]["name"] for p in listed["items"]] == ["multi-node1", "web-node1"]
    assert out.startswith('{\n    "apiVersion": "v1",\n    "items": [')

    code, out, _ = await cli("--server", api.url, "get", "pod", "web-node1", "-o", "yaml")
    assert code == 0
    pod = yaml.safe_load(out)
    assert (pod["kind"], pod["metadata"]["name"]) == ("Pod", "web-node1")
    assert pod["status"]["containerStatuses"][0]["name"] == "web"


async def test_cli_get_unknown_pod_is_not_found(
    api: Api, cli: Callable[..., asyncio.Future[CliResult]]
) -> None:
    code, out, err = await cli("--server", api.url, "get", "pod", "web")
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        'Error from server (NotFound): pods "web" not found',
        "hint: did you mean web-node1?",
    ]


async def test_cli_get_in_an_empty_namespace_says_no_resources(
    api: Api, cli: Callable[..., asyncio.Future[CliResult]]
) -> None:
    code, out, err = await cli("--server", api.url, "get", "pods", "-n", "empty")
    assert (code, out, err) == (0, "", "No resources found in empty namespace.\n")


async def test_cli_reads_the_server_from_the_environment(
    api: Api, cli: Callable[..., asyncio.Future[CliResult]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINIKUBELET_SERVER", api.url)
    code, out, _ = await cli("get", "pods", "-n", "kube-system")
    assert code == 0
    assert "crash-node1" in out


async def test_cli_connection_refused_is_reported_like_kubectl(
    cli: Callable[..., asyncio.Future[CliResult]],
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out, err = await cli("--server", f"http://127.0.0.1:{port}", "get", "pods")
    assert (code, out) == (1, "")
    assert err == (
        f"The connection to the server 127.0.0.1:{port} was refused - is minikubelet running?\n"
    )


# --- CLI: describe ------------------------------------------------------------------------------


async def test_cli_describe_finds_the_static_pod_by_prefix_and_ends_with_its_events(
    api: Api, cli: Callable[..., asyncio.Future[CliResult]]
) -> None:
    code, out, err = await cli("--server", api.url, "describe", "pod", "web")
    assert (code, err) == (0, "")
    assert out.startswith("Name:         web-node1\nNamespace:    default\n")
    assert "    Restart Count:  2\n" in out
    events = out[out.index("Events:\n") :].splitlines()
    assert events[1].split() == ["Type", "Reason", "Age", "From", "Message"]
    assert events[2].split() == ["----", "------", "----", "----", "-------"]
    assert [line.split()[:2] for line in events[3:]] == [
        ["Warning", "Unhealthy"],
        ["Normal", "Started"],
    ]
    assert "(x5 over " in events[3]
    assert events[3].endswith("kubelet  spec.containers{web}: Liveness probe failed: boom")
    assert "Started container app" not in out  # another pod's event


async def test_cli_describe_unknown_pod_is_not_found(
    api: Api, cli: Callable[..., asyncio.Future[CliResult]]
) -> None:
    code, _, err = await cli("--server", api.url, "describe", "pod", "zzz")
    assert code == 1
    assert err == 'Error from server (NotFound): pods "zzz" not found\n'


# --- CLI: logs ----------------------------------------------------------------------------------


async def test_cli_logs_single_container_needs_no_flag(
    api: Api, cli: Callable[..., asyncio.Future[CliResult]]
) -> None:
    code, out, _ = await cli("--server", api.url, "logs", "web-node1", "--tail", "1")
    assert (code, out) == (0, "three\n")
    code, out, _ = await cli("--server", api.url, "logs", "pod/web-node1", "-p")
    assert (code, out) == (0, "previous life\n")
    code, out, _ = await cli("--server", api.url, "logs", "-f", "web-node1")
    assert (code, out) == (0, "one\ntwo\nthree\n")
    assert [c["follow"] for c in api.logs.calls] == [False, False, True]


async def test_cli_logs_defaults_to_the_first_container_like_kubectl(
    api: Api, cli: Callable[..., asyncio.Future[CliResult]]
) -> None:
    _, _, err = await cli("--server", api.url, "logs", "multi-node1")
    assert err.startswith('Defaulted container "app" out of: app, sidecar\n')
    assert api.logs.calls[-1]["container"] == "app"
    code, out, _ = await cli("--server", api.url, "logs", "multi-node1", "-c", "sidecar")
    assert (code, out) == (0, "sidecar says hi\n")


async def test_cli_logs_server_errors_are_printed_like_kubectl(
    api: Api, cli: Callable[..., asyncio.Future[CliResult]]
) -> None:
    code, _, err = await cli("--server", api.url, "logs", "multi-node1", "-c", "app", "-p")
    assert code == 1
    assert err == (
        "Error from server (NotFound): "
        'previous terminated container "app" in pod "multi-node1" not found\n'
    )


# --- CLI as a process ---------------------------------------------------------------------------


async def test_python_dash_m_minikubelet_lists_pods(api: Api) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "minikubelet",
        "get",
        "pods",
        "--server",
        api.url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO), "MINIKUBELET_TOKEN": TOKEN},
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, err.decode()
    assert out.decode().splitlines()[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]


# --- CLI: create and validate (offline) ---------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> CliResult:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@needs_decode_pod
def test_create_pod_writes_a_kubectl_run_manifest_atomically(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from minikubelet.api.validation import decode_pod

    manifests = tmp_path / "manifests"
    manifests.mkdir()
    code, out, err = run_cli(
        capsys,
        "create", "pod", "hello", "--image", "busybox:1.36", "--env", "GREETING=hi",
        "--restart", "Never", "--manifests", str(manifests),
        "--", "sh", "-c", "echo $GREETING; sleep 1",
    )  # fmt: skip
    assert (code, out, err) == (0, "pod/hello created\n", "")
    assert sorted(p.name for p in manifests.iterdir()) == ["hello.yaml"]  # no temp file left
    data = (manifests / "hello.yaml").read_bytes()
    assert yaml.safe_load(data) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"labels": {"run": "hello"}, "name": "hello"},
        "spec": {
            "containers": [
                {
                    "name": "hello",
                    "image": "busybox:1.36",
                    "args": ["sh", "-c", "echo $GREETING; sleep 1"],
                    "env": [{"name": "GREETING", "value": "hi"}],
                    "resources": {},
                }
            ],
            "restartPolicy": "Never",
        },
    }
    decoded = decode_pod(data, source=str(manifests / "hello.yaml"))
    assert decoded.pod.spec.containers[0].args == ["sh", "-c", "echo $GREETING; sleep 1"]
    assert decoded.warnings == ()

    code, _, err = run_cli(
        capsys, "create", "pod", "hello", "--image", "other", "--manifests", str(manifests)
    )
    assert code == 1
    assert err.startswith('Error from server (AlreadyExists): pods "hello" already exists')
    assert (manifests / "hello.yaml").read_bytes() == data


@needs_decode_pod
def test_create_pod_command_flag_and_dry_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(
        capsys,
        "create", "pod", "web", "--image", "nginx", "--command", "--dry-run", "-o", "yaml",
        "--manifests", str(tmp_path), "--", "nginx", "-g", "daemon off;",
    )  # fmt: skip
    assert code == 0
    container = yaml.safe_load(out)["spec"]["containers"][0]
    assert container["command"] == ["nginx", "-g", "daemon off;"]
    assert "args" not in container
    assert list(tmp_path.iterdir()) == []


def test_create_pod_rejects_a_bad_env_without_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        capsys, "create", "pod", "x", "--image", "i", "--env", "NOEQUALS", "--manifests",
        str(tmp_path),
    )  # fmt: skip
    assert (code, err) == (1, "error: invalid env: NOEQUALS\n")
    assert list(tmp_path.iterdir()) == []


@needs_decode_pod
def test_validate_reports_every_error_with_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: good\nspec:\n  containers:\n"
        "  - name: app\n    image: busybox\n    args: [sleep, '10']\n"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n"
        "  - name: app\n    image: busybox\n    livenessProbe:\n      exec:\n"
        '        command: ["true"]\n      periodSeconds: 0\n'
    )
    code, out, err = run_cli(capsys, "validate", "--node-name", "node1", str(good), str(bad))
    assert code == 1
    assert out == f"{good}: valid (pod/good-node1)\n"
    assert f"{bad}: spec.containers[0].livenessProbe.periodSeconds: Invalid value: 0" in err


# --- CLI: run (configuration only) ---------------------------------------------------------------


def test_run_config_is_defaults_then_file_then_flags(tmp_path: Path) -> None:
    from minikubelet.cli import build_config, build_parser

    config = tmp_path / "config.yaml"
    config.write_text("nodeName: from-file\nstateDir: /from/file\nfileCheckFrequency: 5s\n")
    args = build_parser().parse_args(
        ["run", "--config", str(config), "--node-name", "Flag-Node", "--listen", "[::1]:0"]
    )
    cfg = build_config(args)
    assert (cfg.node_name, cfg.state_dir, cfg.file_check_frequency) == (
        "flag-node",
        Path("/from/file"),
        5.0,
    )
    assert (cfg.listen_host, cfg.listen_port) == ("::1", 0)


def test_run_with_a_bad_config_exits_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("nodeNme: typo\n")
    code, out, err = run_cli(capsys, "run", "--config", str(config))
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {config}: nodeNme: unknown setting")
    code, _, err = run_cli(capsys, "run", "--listen", "localhost")
    assert code == 2
    assert "--listen: Invalid value: 'localhost': must be HOST:PORT" in err
