"""The API's limits on a real socket: connections at once, idle connections, accept() out of
descriptors, and follow streams per client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import socket
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from minikubelet.api.model import PodKey
from minikubelet.server.app import ApiSettings, Server, make_app, serve
from minikubelet.status.events import EventRecorder
from minikubelet.status.store import StatusStore
from tests.integration.test_server import AUTH, TOKENS, RecordingLogs, entry, running, status


def app_with_a_pod(
    logs: RecordingLogs, *, max_follows_per_client: int = 100
) -> aiohttp.web.Application:
    store = StatusStore(None)
    store.put(
        PodKey("default/web-node1"),
        entry("web-node1", "default", ["web"], status(containers=[running("web")])),
    )
    logs.content[("default", "web-node1", "web", False)] = [b"hello\n"]
    return make_app(
        store=store,
        events=EventRecorder(node_name="n"),
        logs=logs,
        tokens=TOKENS,
        settings=ApiSettings(max_follows_per_client=max_follows_per_client),
    )


@contextlib.asynccontextmanager
async def serving(app: aiohttp.web.Application, **limits: float) -> AsyncIterator[Server]:
    server = await serve(app, "127.0.0.1", 0, shutdown_timeout=0.2, **limits)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        await server.cleanup()


async def idle_connection(server: Server) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


async def get(server: Server, path: str, *, timeout: float = 5.0) -> tuple[int, str]:
    """A GET on a fresh connection of its own (no pooling)."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector, headers=AUTH) as session:
        async with asyncio.timeout(timeout):
            async with session.get(server.url + path) as r:
                return r.status, await r.text()


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def test_connections_beyond_the_limit_wait_until_one_closes() -> None:
    async with serving(app_with_a_pod(RecordingLogs()), max_connections=3) as server:
        idle = [await idle_connection(server) for _ in range(3)]
        async with asyncio.timeout(2):
            while server.connections < 3:
                await asyncio.sleep(0.01)
        waiting = asyncio.create_task(get(server, "/healthz"))
        await asyncio.sleep(0.5)
        assert not waiting.done()  # not accepted: it waits in the listen backlog
        assert server.connections == 3
        await close(idle[0][1])
        assert await asyncio.wait_for(waiting, 5) == (200, "ok")
        for _, writer in idle[1:]:
            await close(writer)


async def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout() -> None:
    async with serving(app_with_a_pod(RecordingLogs()), idle_timeout=0.3) as server:
        reader, writer = await idle_connection(server)
        async with asyncio.timeout(3):
            assert await reader.read() == b""  # closed by the server
        await close(writer)
        async with asyncio.timeout(2):
            while server.connections:
                await asyncio.sleep(0.01)


async def test_a_kept_alive_connection_is_closed_after_the_idle_timeout() -> None:
    async with serving(app_with_a_pod(RecordingLogs()), idle_timeout=0.3) as server:
        reader, writer = await idle_connection(server)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(3):
            data = await reader.read()  # the response, then the close
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"ok")
        await close(writer)


async def test_a_follow_stream_is_not_cut_by_the_idle_timeout() -> None:
    hold = asyncio.Event()
    logs = RecordingLogs(hold=hold)
    async with (
        serving(app_with_a_pod(logs), idle_timeout=0.2) as server,
        aiohttp.ClientSession(headers=AUTH) as session,
        session.get(f"{server.url}/containerLogs/default/web-node1/web?follow=true") as r,
    ):
        assert await r.content.readexactly(6) == b"hello\n"
        await asyncio.sleep(0.6)  # a quiet container: nothing to send for a while
        hold.set()
        assert await asyncio.wait_for(r.content.read(), 5) == b"after hold\n"


async def test_follow_streams_beyond_the_per_client_limit_are_429() -> None:
    logs = RecordingLogs(hold=asyncio.Event())
    async with serving(app_with_a_pod(logs, max_follows_per_client=2)) as server:
        url = f"{server.url}/containerLogs/default/web-node1/web?follow=true"
        async with contextlib.AsyncExitStack() as stack:
            session = await stack.enter_async_context(aiohttp.ClientSession(headers=AUTH))
            follows = []
            for _ in range(2):
                r = await stack.enter_async_context(session.get(url))
                assert await r.content.readexactly(6) == b"hello\n"
                follows.append(r)
            status_code, body = await get(server, "/containerLogs/default/web-node1/web?follow=1")
            assert status_code == 429
            reply = json.loads(body)
            assert (reply["kind"], reply["reason"], reply["code"]) == (
                "Status",
                "TooManyRequests",
                429,
            )
            assert "at most 2 follow=true streams" in reply["message"]
            # Plain reads are not follow streams: never limited this way.
            assert await get(server, "/containerLogs/default/web-node1/web") == (200, "hello\n")
            follows[0].close()  # one hangs up: room for another
            async with asyncio.timeout(3):
                while len(logs.closed) < 2:  # the plain read's stream, and the follower's
                    await asyncio.sleep(0.01)
            r = await stack.enter_async_context(session.get(url))
            assert r.status == 200


@contextlib.contextmanager
def open_files_limit(soft: int) -> Iterator[None]:
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, old)


async def test_accept_out_of_descriptors_backs_off_with_one_log_line_and_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serving(app_with_a_pod(RecordingLogs())) as server:
        # Clients connect first (the kernel completes their handshakes; the server holds no
        # descriptor for them until it accepts), then this process runs out of descriptors.
        clients = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(20)]
        try:
            with open_files_limit(len(os.listdir("/proc/self/fd")) + 1):
                await asyncio.sleep(1.5)
                accepted = server.connections
            assert accepted < 20
            # One line for the whole condition, and no traceback from the accept loop.
            lines = [r for r in caplog.records if "cannot accept" in r.getMessage()]
            assert len(lines) == 1 and lines[0].levelno == logging.WARNING
            assert "Too many open files" in lines[0].getMessage()
            assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
            # Descriptors back: the waiting clients are accepted, and the API answers.
            async with asyncio.timeout(5):
                while server.connections < 20:
                    await asyncio.sleep(0.02)
            assert await get(server, "/healthz") == (200, "ok")
        finally:
            for client in clients:
                client.close()
