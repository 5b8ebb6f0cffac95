"""Container logs over HTTP, for kubelet's ``/containerLogs`` and the API's ``pods/log``.

The bytes come from a ``LogSource`` (the daemon wires it to the pod's runtime). The response
is prepared only after the first chunk (or the end of the stream) is in hand, so that a
``LookupError`` raised by the source, synchronously or on first read, is still answered as a
Status instead of a broken 200.

``timestamps=true``: the runtimes keep container output as the container wrote it, with no
time per line, so each line is prefixed (RFC 3339, nanosecond form, UTC, as kubelet's) with the
time minikubelet read it from the log. For lines that arrive while following, that is when
they were written, to within the read; for lines already in the log, it is the time of the
request. ``sinceSeconds`` and ``sinceTime`` need the real times, and are refused (400) rather
than ignored. ``limitBytes`` stops the stream after that many bytes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from aiohttp import web

from minikubelet.api.model import PodView
from minikubelet.server.errors import ApiError, bad_request

log = logging.getLogger(__name__)


class LogSource(Protocol):
    """A container's log, as bytes. Raises LookupError (its first argument is the message
    shown to the client) when the pod, the container or the previous instance does not exist;
    it may raise on call or on first iteration."""

    def __call__(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        previous: bool,
        tail_lines: int | None,
        follow: bool,
    ) -> AsyncIterator[bytes]: ...


def bool_param(request: web.Request, name: str) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in ("", "true", "1"):
        # A bare "?follow" counts as true.
        return True
    if value in ("false", "0"):
        return False
    raise bad_request(f'invalid value for {name}: "{raw}": must be true or false')


def int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f'invalid value for {name}: "{raw}": must be an integer') from None
    if value < 0:
        raise bad_request(f"{name}: Invalid value: {value}: must be greater than or equal to 0")
    return value


@dataclass(frozen=True, slots=True)
class LogOptions:
    container: str
    previous: bool = False
    follow: bool = False
    tail_lines: int | None = None
    timestamps: bool = False
    limit_bytes: int | None = None


def container_names(view: PodView, key: str) -> list[str]:
    items = view.spec.get(key)
    if not isinstance(items, list):
        return []
    return [str(c.get("name")) for c in items if isinstance(c, dict)]


def log_options(request: web.Request, view: PodView) -> LogOptions:
    """``pods/{name}/log`` parameters, checked as the API server checks them (400s)."""
    name = str(view.metadata.get("name"))
    regular = container_names(view, "containers")
    init = container_names(view, "initContainers")
    container = request.query.get("container", "")
    if not container:
        if len(regular) != 1:
            message = (
                f"a container name must be specified for pod {name}, choose one of: "
                f"[{' '.join(regular)}]"
            )
            if init:
                message += f" or one of the init containers: [{' '.join(init)}]"
            raise bad_request(message)
        container = regular[0]
    elif container not in regular and container not in init:
        raise bad_request(f"container {container} is not valid for pod {name}")
    for unsupported in ("sinceSeconds", "sinceTime"):
        if request.query.get(unsupported):
            raise bad_request(
                f"{unsupported} is not supported: this node keeps container logs without a "
                "time for each line"
            )
    limit = int_param(request, "limitBytes")
    if limit == 0:
        raise bad_request("limitBytes: Invalid value: 0: must be greater than 0")
    return LogOptions(
        container=container,
        previous=bool_param(request, "previous"),
        follow=bool_param(request, "follow"),
        tail_lines=int_param(request, "tailLines"),
        timestamps=bool_param(request, "timestamps"),
        limit_bytes=limit,
    )


def rfc3339nano(t: datetime) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: trailing zeros of the fraction dropped."""
    t = t.astimezone(UTC)
    fraction = f"{t.microsecond:06d}000".rstrip("0")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


class _Stamper:
    """Puts the current time before every line, across chunk boundaries."""

    def __init__(self) -> None:
        self._at_line_start = True

    def __call__(self, chunk: bytes) -> bytes:
        if not chunk:
            return chunk
        stamp = rfc3339nano(datetime.now(UTC)).encode() + b" "
        lines = chunk.split(b"\n")
        out = []
        for i, line in enumerate(lines):
            last = i == len(lines) - 1
            if last and not line:
                break  # the chunk ended with a newline: the next chunk starts a line
            if i > 0 or self._at_line_start:
                out.append(stamp + line)
            else:
                out.append(line)
        self._at_line_start = chunk.endswith(b"\n")
        return b"\n".join(out) + (b"\n" if self._at_line_start else b"")


def lookup_message(exc: LookupError, pod: str, container: str) -> str:
    if exc.args and isinstance(exc.args[0], str) and exc.args[0]:
        return exc.args[0]
    return f'container "{container}" in pod "{pod}" is not available'


async def stream_log(
    request: web.Request,
    logs: LogSource,
    namespace: str,
    pod: str,
    options: LogOptions,
    *,
    lookup_code: int = 400,
) -> web.StreamResponse:
    """Stream the log; a LookupError before the first byte is a ``lookup_code`` Status."""
    container = options.container
    try:
        stream = logs(
            namespace,
            pod,
            container,
            previous=options.previous,
            tail_lines=options.tail_lines,
            follow=options.follow,
        )
        first: bytes | None = await anext(stream, None)
    except LookupError as exc:
        raise ApiError(lookup_code, lookup_message(exc, pod, container)) from None

    stamp = _Stamper() if options.timestamps else None
    left = options.limit_bytes
    response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    response.enable_chunked_encoding()

    async def write(chunk: bytes) -> bool:
        """Write one chunk; False once limitBytes is reached."""
        nonlocal left
        if stamp is not None:
            chunk = stamp(chunk)
        if left is not None:
            chunk = chunk[:left]
            left -= len(chunk)
        await response.write(chunk)
        return left is None or left > 0

    try:
        await response.prepare(request)
        if first is not None and await write(first):
            async for chunk in stream:
                if not await write(chunk):
                    break
        await response.write_eof()
    except (ConnectionResetError, LookupError) as exc:
        # The client went away (kubectl logs -f interrupted), or the container vanished
        # mid-stream: either way there is nobody left to tell.
        log.debug("log stream %s/%s/%s ended: %s", namespace, pod, container, exc)
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()
    return response
