"""Probe handlers against real servers: an aiohttp app, TCP sockets, a grpc.aio server, and
real subprocesses for exec. The expected texts are kubelet's (pkg/probe/*), which is the point.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Iterator, Sequence

import grpc
import grpc.aio
import pytest
import pytest_asyncio
from aiohttp import web
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from minikubelet.api.model import Container, GRPCAction, HTTPGetAction, TCPSocketAction
from minikubelet.probes.grpc_probe import GRPCHandler
from minikubelet.probes.handlers import (
    MAX_OUTPUT,
    USER_AGENT,
    ExecHandler,
    HTTPGetHandler,
    HTTPProber,
    ProbeOutcome,
    ProbeResult,
    TCPSocketHandler,
    go_duration,
    go_quote,
)
from minikubelet.runtime.base import ExecResult

HOST = "127.0.0.1"

# --- helpers -------------------------------------------------------------------------------


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.contextmanager
def unanswered_port() -> Iterator[int]:
    """A listening port whose accept queue is full: a new connect neither succeeds nor fails."""
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect((HOST, port))
            fillers.append(filler)
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def container(*ports: tuple[str, int]) -> Container:
    return Container.model_validate(
        {"name": "app", "ports": [{"name": n, "containerPort": p} for n, p in ports]}
    )


# --- HTTP ----------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def http_server() -> AsyncIterator[int]:
    release = asyncio.Event()  # /slow answers only at teardown, so cleanup never waits long

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom: secret details")

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/ok")

    async def redirect_loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/redirect-loop")

    async def redirect_other_host(request: web.Request) -> web.Response:
        port = request.url.port
        raise web.HTTPFound(f"http://localhost:{port}/ok", text="moved away")

    async def headers(request: web.Request) -> web.Response:
        return web.Response(text=json.dumps({k: v for k, v in request.headers.items()}))

    async def stalled_body(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = 100
        await response.prepare(request)
        await response.write(b"partial")
        await release.wait()
        return response

    async def big_redirect(request: web.Request) -> web.Response:
        return web.Response(status=300, body=b"x" * (3 * MAX_OUTPUT))

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/500", fail)
    app.router.add_get("/slow", slow)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/redirect-loop", redirect_loop)
    app.router.add_get("/redirect-other-host", redirect_other_host)
    app.router.add_get("/headers", headers)
    app.router.add_get("/big-redirect", big_redirect)
    app.router.add_get("/stalled-body", stalled_body)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield port
    finally:
        release.set()
        await runner.cleanup()


@pytest_asyncio.fixture
async def prober() -> AsyncIterator[HTTPProber]:
    client = HTTPProber()
    try:
        yield client
    finally:
        await client.aclose()


async def http_probe(
    prober: HTTPProber,
    port: int | str,
    path: str,
    *,
    headers: Sequence[tuple[str, str]] = (),
    timeout: float = 1,
    spec: Container | None = None,
) -> ProbeOutcome:
    action = HTTPGetAction.model_validate(
        {
            "port": port,
            "path": path,
            "httpHeaders": [{"name": n, "value": v} for n, v in headers],
        }
    )
    handler = HTTPGetHandler(
        action, container=spec or container(), pod_ip=HOST, timeout=timeout, client=prober
    )
    return await handler.probe()


async def test_http_200_is_success_with_the_body(http_server, prober):
    assert await http_probe(prober, http_server, "/ok") == ProbeOutcome(ProbeResult.SUCCESS, "ok")


async def test_http_500_is_failure_without_the_body(http_server, prober):
    assert await http_probe(prober, http_server, "/500") == ProbeOutcome(
        ProbeResult.FAILURE, "HTTP probe failed with statuscode: 500"
    )


async def test_http_sends_kubelets_headers(http_server, prober):
    outcome = await http_probe(
        prober, http_server, "/headers", headers=[("custom-header", "Awesome")]
    )
    assert outcome.result is ProbeResult.SUCCESS
    sent = json.loads(outcome.output)
    assert sent["User-Agent"] == USER_AGENT == "kube-probe/1.34"
    assert sent["Accept"] == "*/*"
    assert sent["Custom-Header"] == "Awesome"
    assert sent["Connection"] == "close"
    assert "Accept-Encoding" not in sent
    assert sent["Host"] == f"{HOST}:{http_server}"


async def test_http_user_headers_override_and_empty_accept_removes_it(http_server, prober):
    outcome = await http_probe(
        prober,
        http_server,
        "/headers",
        headers=[("User-Agent", "mine/1.0"), ("Accept", ""), ("Host", "example.test")],
    )
    sent = json.loads(outcome.output)
    assert sent["User-Agent"] == "mine/1.0"
    assert "Accept" not in sent
    assert sent["Host"] == "example.test"


async def test_http_same_host_redirect_is_followed(http_server, prober):
    assert await http_probe(prober, http_server, "/redirect") == ProbeOutcome(
        ProbeResult.SUCCESS, "ok"
    )


async def test_http_redirect_to_another_host_is_a_warning(http_server, prober):
    assert await http_probe(prober, http_server, "/redirect-other-host") == ProbeOutcome(
        ProbeResult.WARNING, "Probe terminated redirects, Response body: moved away"
    )


async def test_http_redirect_loop_stops_after_10(http_server, prober):
    assert await http_probe(prober, http_server, "/redirect-loop") == ProbeOutcome(
        ProbeResult.FAILURE, 'Get "/redirect-loop": stopped after 10 redirects'
    )


async def test_http_body_is_read_up_to_10_kib(http_server, prober):
    outcome = await http_probe(prober, http_server, "/big-redirect")
    assert outcome.result is ProbeResult.WARNING
    prefix = "Probe terminated redirects, Response body: "
    assert outcome.output == prefix + "x" * MAX_OUTPUT


async def test_http_timeout_awaiting_headers(http_server, prober):
    outcome = await http_probe(prober, http_server, "/slow", timeout=1)
    assert outcome == ProbeOutcome(
        ProbeResult.FAILURE,
        f'Get "http://{HOST}:{http_server}/slow": context deadline exceeded '
        "(Client.Timeout exceeded while awaiting headers)",
    )


async def test_http_timeout_while_reading_the_body_is_an_error(http_server, prober):
    assert await http_probe(prober, http_server, "/stalled-body", timeout=1) == ProbeOutcome(
        ProbeResult.UNKNOWN,
        "context deadline exceeded (Client.Timeout or context cancellation while reading body)",
    )


async def test_http_connection_refused(prober):
    port = closed_port()
    assert await http_probe(prober, port, "/healthz") == ProbeOutcome(
        ProbeResult.FAILURE,
        f'Get "http://{HOST}:{port}/healthz": dial tcp {HOST}:{port}: connect: connection refused',
    )


async def test_http_dial_timeout(prober):
    with unanswered_port() as port:
        outcome = await http_probe(prober, port, "/healthz", timeout=1)
    assert outcome == ProbeOutcome(
        ProbeResult.FAILURE,
        f'Get "http://{HOST}:{port}/healthz": dial tcp {HOST}:{port}: i/o timeout '
        "(Client.Timeout exceeded while awaiting headers)",
    )


async def test_http_named_port_resolves_from_container_ports(http_server, prober):
    spec = container(("http", http_server))
    outcome = await http_probe(prober, "http", "/ok", spec=spec)
    assert outcome == ProbeOutcome(ProbeResult.SUCCESS, "ok")


async def test_http_unknown_port_name_is_an_error(prober):
    assert await http_probe(prober, "http", "/ok") == ProbeOutcome(
        ProbeResult.UNKNOWN, 'strconv.Atoi: parsing "http": invalid syntax'
    )


# --- TCP -----------------------------------------------------------------------------------


async def tcp_probe(port: int | str, *, timeout: float = 1) -> ProbeOutcome:
    action = TCPSocketAction.model_validate({"port": port})
    return await TCPSocketHandler(
        action, container=container(), pod_ip=HOST, timeout=timeout
    ).probe()


async def test_tcp_open_port_is_success():
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert await tcp_probe(port) == ProbeOutcome(ProbeResult.SUCCESS, "")


async def test_tcp_closed_port_is_connection_refused():
    port = closed_port()
    assert await tcp_probe(port) == ProbeOutcome(
        ProbeResult.FAILURE, f"dial tcp {HOST}:{port}: connect: connection refused"
    )


async def test_tcp_timeout_is_io_timeout():
    with unanswered_port() as port:
        outcome = await tcp_probe(port, timeout=1)
    assert outcome == ProbeOutcome(ProbeResult.FAILURE, f"dial tcp {HOST}:{port}: i/o timeout")


async def test_tcp_port_number_as_string_still_works():
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert (await tcp_probe(str(port))).result is ProbeResult.SUCCESS


# --- gRPC ----------------------------------------------------------------------------------


class SlowHealth(health_aio.HealthServicer):  # type: ignore[misc]
    async def Check(self, request, context):
        await asyncio.sleep(5)
        return await super().Check(request, context)


@contextlib.asynccontextmanager
async def grpc_server(servicer: health_aio.HealthServicer | None) -> AsyncIterator[int]:
    server = grpc.aio.server()
    if servicer is not None:
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port(f"{HOST}:0")
    await server.start()
    try:
        yield port
    finally:
        await server.stop(grace=None)


async def grpc_probe(port: int, service: str | None = None, timeout: float = 1) -> ProbeOutcome:
    action = GRPCAction.model_validate({"port": port, "service": service})
    return await GRPCHandler(action, pod_ip=HOST, timeout=timeout).probe()


async def test_grpc_serving_is_success_and_other_statuses_fail():
    health = health_aio.HealthServicer()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    await health.set("db", health_pb2.HealthCheckResponse.NOT_SERVING)
    async with grpc_server(health) as port:
        assert await grpc_probe(port) == ProbeOutcome(ProbeResult.SUCCESS, "service healthy")
        assert await grpc_probe(port, "db") == ProbeOutcome(
            ProbeResult.FAILURE, 'service unhealthy (responded with "NOT_SERVING")'
        )
        outcome = await grpc_probe(port, "nope")
        assert outcome.result is ProbeResult.FAILURE
        assert outcome.output.startswith(
            "error: health rpc probe failed: rpc error: code = NotFound"
        )


async def test_grpc_server_without_health_service():
    async with grpc_server(None) as port:
        outcome = await grpc_probe(port)
    assert outcome.result is ProbeResult.FAILURE
    assert outcome.output.startswith(
        "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): "
    )


async def test_grpc_slow_health_check_times_out():
    slow = SlowHealth()
    await slow.set("", health_pb2.HealthCheckResponse.SERVING)
    async with grpc_server(slow) as port:
        assert await grpc_probe(port, timeout=1) == ProbeOutcome(
            ProbeResult.FAILURE, "timeout: health rpc did not complete within 1s"
        )


async def test_grpc_nothing_listening_times_out_connecting():
    port = closed_port()
    assert await grpc_probe(port, timeout=1) == ProbeOutcome(
        ProbeResult.FAILURE,
        f'timeout: failed to connect service "{HOST}:{port}" within 1s: context deadline exceeded',
    )


# --- exec ----------------------------------------------------------------------------------


async def run_in_subprocess(command: Sequence[str], timeout: float) -> ExecResult:
    """An ExecFn over a real process, with the runtime's contract: TimeoutError on timeout."""
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        async with asyncio.timeout(timeout):
            output, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return ExecResult(exit_code=proc.returncode, output=output)


async def exec_probe(command: list[str], *, env: dict[str, str] | None = None, timeout: float = 1):
    return await ExecHandler(
        command, env=env or {}, exec_fn=run_in_subprocess, timeout=timeout
    ).probe()


async def test_exec_exit_0_is_success_with_output():
    assert await exec_probe(["sh", "-c", "echo fine"]) == ProbeOutcome(
        ProbeResult.SUCCESS, "fine\n"
    )


async def test_exec_nonzero_exit_is_failure():
    assert await exec_probe(["sh", "-c", "exit 1"]) == ProbeOutcome(ProbeResult.FAILURE, "")


async def test_exec_failure_message_is_the_output():
    outcome = await exec_probe(["cat", "/nonexistent"])
    assert outcome == ProbeOutcome(
        ProbeResult.FAILURE, "cat: /nonexistent: No such file or directory\n"
    )


async def test_exec_timeout_names_the_command():
    outcome = await exec_probe(["sleep", "5"], timeout=1)
    assert outcome == ProbeOutcome(ProbeResult.FAILURE, 'command "sleep 5" timed out')


async def test_exec_expands_static_env_like_kubelet():
    outcome = await exec_probe(
        ["echo", "$(GREETING)", "$$(GREETING)", "$(MISSING)"], env={"GREETING": "hi"}
    )
    assert outcome == ProbeOutcome(ProbeResult.SUCCESS, "hi $(GREETING) $(MISSING)\n")


async def test_exec_output_is_capped_at_10_kib():
    outcome = await exec_probe(["sh", "-c", "head -c 30000 /dev/zero | tr '\\0' y; exit 3"])
    assert outcome == ProbeOutcome(ProbeResult.FAILURE, "y" * MAX_OUTPUT)


async def test_exec_that_cannot_run_is_an_error():
    outcome = await exec_probe(["/nonexistent/binary"])
    assert outcome.result is ProbeResult.UNKNOWN
    assert "/nonexistent/binary" in outcome.output


# --- Go renderings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"), [(1, "1s"), (59, "59s"), (60, "1m0s"), (90, "1m30s"), (3600, "1h0m0s")]
)
def test_go_duration(seconds, text):
    assert go_duration(seconds) == text


def test_go_quote():
    assert go_quote('cat "a b"\n\x01é') == '"cat \\"a b\\"\\n\\x01é"'
