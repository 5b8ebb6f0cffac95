"""A small asyncio client for podman's libpod REST API over its unix socket.

This module owns the transport and nothing of Kubernetes: one aiohttp ``ClientSession`` on a
``UnixConnector``, the ``/v4.0.0/libpod`` paths, the translation of every transport and HTTP
error into ``api.errors.RuntimeFailure`` subclasses (httpx's ``map_httpcore_exceptions`` idea),
and the decoding of the Docker-style multiplexed stream (8-byte frame headers) that logs and
exec return. ``runtime/podman.py`` decides what to ask for.

Why not podman-py: it is synchronous and built on requests; the daemon must not block its loop.
Why not the CLI: one process per call costs 50-150 ms and parses text.

Errors:

    RuntimeFailure
    └── PodmanError              podman answered with an error status (``status``, ``cause``)
        └── PodmanUnreachable    no answer at all: the socket is missing, refuses, or hung up

A new connection is made for each request that finds no idle one, so when the service comes back
on the same socket path the next request simply works: nothing needs to be reset.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import aiohttp

from minikubelet.api.errors import RuntimeFailure

API_PREFIX = "/v4.0.0/libpod"
"""podman 4.x serves every 4.x path under this prefix (it answers ``Libpod-Api-Version``)."""

DEFAULT_TIMEOUT = 60.0  # seconds for an ordinary (non-streaming) call
FRAME_HEADER = struct.Struct(">BxxxI")  # stream (1 stdout, 2 stderr), 3 padding, payload size

JSON = Any
"""A decoded JSON document from podman; narrowed by the caller at once."""

Params = Mapping[str, str | int | Sequence[str]]


class PodmanError(RuntimeFailure):
    """podman answered an operation with an error status."""

    def __init__(self, message: str, *, status: int, cause: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.status = status  # the HTTP status (404: no such object, 409: conflict/state)
        self.cause = cause  # podman's short "cause" field, e.g. "no such container"
        self.detail = detail or message  # podman's own message, without the operation's name


class PodmanUnreachable(PodmanError):
    """The podman service did not answer: no socket, connection refused, or it hung up."""


class PodmanClient:
    """``async with PodmanClient(socket) as api``: owns its session and connections."""

    def __init__(self, socket: Path, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.socket = socket
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        connector = aiohttp.UnixConnector(path=str(self.socket), limit=0)
        # The host part is ignored on a unix socket; "d" is what podman's own clients send.
        self._session = aiohttp.ClientSession(
            base_url="http://d", connector=connector, timeout=aiohttp.ClientTimeout(total=None)
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("PodmanClient is used outside its `async with` block")
        return self._session

    # --- requests -----------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: JSON = None,
        ok: Sequence[int] = (200, 201, 204, 304),
        timeout: float | None = -1.0,
        what: str,
    ) -> JSON:
        """One request; returns the decoded JSON body (None when empty).

        ``timeout``: -1 means the client's default, None no limit (a blocking wait).
        ``what`` names the operation in error messages: ``create container web``.
        """
        limit = self._timeout if timeout is not None and timeout < 0 else timeout
        try:
            async with asyncio.timeout(limit):
                async with self.session.request(
                    method,
                    API_PREFIX + path,
                    params=_encode_params(params),
                    json=body,
                ) as resp:
                    raw = await resp.read()
                    status = resp.status
        except TimeoutError:
            raise PodmanUnreachable(
                f"{what}: podman did not answer within {limit:g}s on {self.socket}", status=0
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise self.unreachable(what, exc) from exc
        if status not in ok:
            raise _error_of(what, status, raw)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode(errors="replace")

    async def stream(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        body: JSON = None,
        what: str,
        opened: Callable[[], None] | None = None,
    ) -> AsyncIterator[bytes]:
        """A streaming request: raw chunks of the body as they arrive (logs, exec, pull, events).

        The status is checked before the first chunk; errors are translated as ``call``'s.
        ``opened`` is called once podman has answered with a success status, before any chunk
        (the events stream may stay silent for long: that it is open is news of its own).
        """
        try:
            async with self.session.request(
                method,
                API_PREFIX + path,
                params=_encode_params(params),
                json=body,
            ) as resp:
                if resp.status >= 300:
                    raise _error_of(what, resp.status, await resp.read())
                if opened is not None:
                    opened()
                async for chunk in resp.content.iter_any():
                    yield chunk
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError):
            # podman closes a hijacked (exec) or followed (logs) stream without a clean end.
            return
        except (aiohttp.ClientError, OSError) as exc:
            raise self.unreachable(what, exc) from exc

    def unreachable(self, what: str, exc: BaseException) -> PodmanUnreachable:
        reason = str(exc) or type(exc).__name__
        return PodmanUnreachable(
            f"{what}: podman is unreachable on {self.socket} ({reason}); "
            "is `podman system service` running?",
            status=0,
        )


def path_arg(name: str) -> str:
    """An object name or id as a path segment (image names keep their slashes and colons)."""
    return quote(name, safe="/:@")


def _encode_params(params: Params | None) -> list[tuple[str, str]] | None:
    if params is None:
        return None
    out: list[tuple[str, str]] = []
    for key, value in params.items():
        if isinstance(value, str | int):
            out.append((key, str(value).lower() if isinstance(value, bool) else str(value)))
        else:
            out.extend((key, item) for item in value)
    return out


def _error_of(what: str, status: int, raw: bytes) -> PodmanError:
    message, cause = "", ""
    try:
        doc = json.loads(raw)
        if isinstance(doc, dict):
            message = str(doc.get("message") or "")
            cause = str(doc.get("cause") or "")
    except ValueError:
        message = raw.decode(errors="replace").strip()
    detail = message or f"HTTP {status}"
    return PodmanError(f"{what}: {detail}", status=status, cause=cause or message, detail=detail)


async def demux(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, bytes]]:
    """Docker's multiplexed stream -> (stream, payload) frames; 1 is stdout, 2 stderr."""
    buffer = bytearray()
    async for chunk in chunks:
        buffer.extend(chunk)
        while len(buffer) >= FRAME_HEADER.size:
            stream, size = FRAME_HEADER.unpack_from(buffer)
            end = FRAME_HEADER.size + size
            if len(buffer) < end:
                break
            payload = bytes(buffer[FRAME_HEADER.size : end])
            del buffer[:end]
            yield stream, payload
    if buffer:
        # A stream cut inside a frame: hand over what arrived rather than dropping it.
        yield 1, bytes(buffer[FRAME_HEADER.size :])
