"""The read-only HTTP API, shaped like kubelet's read-only port (10255).

Routes (DESIGN.md): ``/healthz``, ``/pods``, ``/events`` and ``/containerLogs/{ns}/{pod}/{c}``.
Everything is read from the status store, the event recorder and a ``LogSource`` the daemon
wires to the right runtime; this module decides nothing about pods. Errors are v1 ``Status``
objects, as the API server returns them, so that a client can print ``Error from server
(NotFound): ...`` the way kubectl does. ``/metrics`` is not served yet and is a 404 like any
unknown path.

Logs stream: the response is prepared only after the first chunk (or the end of the stream) is
in hand, so that a ``LookupError`` raised by the log source, synchronously or on first read,
still becomes a 404 Status instead of a broken 200. One client (peer address) may hold at most
``max_follows_per_client`` ``follow=true`` streams at once; one more is a 429 Status.

Limits, so that no client can take the daemon's file descriptors (which it needs to run pods
and to write its state): ``serve`` accepts connections itself rather than through asyncio's
server. It holds at most ``max_connections`` at once (more wait in the kernel's listen backlog,
costing the daemon nothing), closes a connection idle for ``idle_timeout`` (one that never sent a
request included), and when accept() fails for want of descriptors or memory (EMFILE, ENFILE,
ENOBUFS, ENOMEM) it backs off and says so in one log line per minute, not a traceback per try.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from aiohttp import web

from minikubelet.api.model import Event, EventList, PodList, dump
from minikubelet.status.events import EventRecorder
from minikubelet.status.store import StatusStore

log = logging.getLogger(__name__)

HealthCheck = tuple[str, bool, str]
"""(name, ok, detail): one line of ``/healthz?verbose``. On failure detail is the reason; on a
passing check a non-empty detail is a warning, shown as ``[+]name warning: detail`` without
failing healthz (e.g. pods run, but their limits are not enforced)."""


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


# --- v1 Status ------------------------------------------------------------------------------

_REASONS = {
    400: "BadRequest",
    404: "NotFound",
    405: "MethodNotAllowed",
    429: "TooManyRequests",
    500: "InternalError",
}

MAX_CONNECTIONS = 1000  # connections served at once (api.maxConnections)
IDLE_TIMEOUT = 60.0  # seconds a connection may wait for its next request (api.idleTimeout)
MAX_FOLLOWS_PER_CLIENT = 100  # follow=true log streams per peer address (api.maxFollowsPerClient)


def status_response(code: int, message: str) -> web.Response:
    """A v1 Status (``kind: Status``, ``status: Failure``) as the API server writes it."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": _REASONS.get(code, "Unknown"),
        "code": code,
    }
    headers = {"Retry-After": "1"} if code == 429 else None
    return web.Response(
        status=code,
        text=json.dumps(body) + "\n",
        content_type="application/json",
        headers=headers,
    )


def _json(payload: object) -> web.Response:
    return web.Response(text=json.dumps(payload) + "\n", content_type="application/json")


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _status_errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Turn aiohttp's plain-text 404/405 into v1 Status objects."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return status_response(404, "the server could not find the requested resource")
    except web.HTTPMethodNotAllowed:
        return status_response(
            405, "the server does not allow this method on the requested resource"
        )


# --- query parsing --------------------------------------------------------------------------


class _BadRequest(Exception):
    pass


def _bool_param(request: web.Request, name: str) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in ("", "true", "1"):
        # A bare "?follow" counts as true.
        return True
    if value in ("false", "0"):
        return False
    raise _BadRequest(f'invalid value for {name}: "{raw}": must be true or false')


def _int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise _BadRequest(f'invalid value for {name}: "{raw}": must be an integer') from None
    if value < 0:
        raise _BadRequest(f"{name}: Invalid value: {value}: must be greater than or equal to 0")
    return value


_EVENT_FIELDS: dict[str, Callable[[Event], str | None]] = {
    "involvedObject.kind": lambda e: e.involved_object.kind,
    "involvedObject.namespace": lambda e: e.involved_object.namespace,
    "involvedObject.name": lambda e: e.involved_object.name,
    "involvedObject.uid": lambda e: e.involved_object.uid,
    "involvedObject.apiVersion": lambda e: e.involved_object.api_version,
    "involvedObject.resourceVersion": lambda e: "",
    "involvedObject.fieldPath": lambda e: e.involved_object.field_path,
    "reason": lambda e: e.reason,
    "reportingComponent": lambda e: e.reporting_component,
    "source": lambda e: e.source.component,
    "type": lambda e: e.type,
    "metadata.name": lambda e: e.metadata.name,
    "metadata.namespace": lambda e: e.metadata.namespace,
}
"""The event fields a fieldSelector may name (the API server's Event field set)."""


def _parse_field_selector(text: str) -> list[tuple[str, bool, str]]:
    """``a=b,c!=d`` -> [(field, equal, value)]. Empty terms are ignored, as apimachinery does."""
    terms: list[tuple[str, bool, str]] = []
    for term in text.split(","):
        term = term.strip()
        if not term:
            continue
        if "!=" in term:
            key, _, value = term.partition("!=")
            terms.append((key.strip(), False, value.strip()))
        elif "==" in term:
            key, _, value = term.partition("==")
            terms.append((key.strip(), True, value.strip()))
        elif "=" in term:
            key, _, value = term.partition("=")
            terms.append((key.strip(), True, value.strip()))
        else:
            raise _BadRequest(f"invalid selector: '{text}'; can't understand '{term}'")
    return terms


def _select_events(events: list[Event], selector: str) -> list[Event]:
    terms = _parse_field_selector(selector)
    for key, _, _ in terms:
        if key not in _EVENT_FIELDS:
            raise _BadRequest(f"field label not supported: {key}")
    return [
        e
        for e in events
        if all(((_EVENT_FIELDS[key](e) or "") == value) == equal for key, equal, value in terms)
    ]


# --- the application ------------------------------------------------------------------------


def make_app(
    *,
    store: StatusStore,
    events: EventRecorder,
    logs: LogSource,
    health: Callable[[], list[HealthCheck]] | None = None,
    max_follows_per_client: int = MAX_FOLLOWS_PER_CLIENT,
) -> web.Application:
    """The aiohttp application. Handlers only read ``store``, ``events`` and ``logs``."""
    follows: Counter[str] = Counter()  # peer address -> follow=true streams open

    async def healthz(request: web.Request) -> web.Response:
        checks = health() if health is not None else []
        if not any(name == "ping" for name, _, _ in checks):
            checks.insert(0, ("ping", True, ""))
        lines = []
        failed = False
        for name, ok, detail in checks:
            if ok and detail:
                lines.append(f"[+]{name} warning: {detail}\n")
            elif ok:
                lines.append(f"[+]{name} ok\n")
            else:
                failed = True
                lines.append(f"[-]{name} failed: {detail or 'reason withheld'}\n")
        if failed:
            # kubelet answers 500 with every check listed, verbose or not.
            return web.Response(status=500, text="".join(lines) + "healthz check failed\n")
        if "verbose" not in request.query:
            return web.Response(text="ok")
        return web.Response(text="".join(lines) + "healthz check passed\n")

    async def pods(request: web.Request) -> web.Response:
        entries = sorted(
            store.entries(),
            key=lambda e: (
                str(e.view.metadata.get("namespace") or "default"),
                str(e.view.metadata.get("name") or ""),
            ),
        )
        return _json(dump(PodList(items=[e.view for e in entries])))

    async def list_events(request: web.Request) -> web.Response:
        items = events.events()
        selector = request.query.get("fieldSelector")
        if selector:
            try:
                items = _select_events(items, selector)
            except _BadRequest as exc:
                return status_response(400, str(exc))
        return _json(dump(EventList(items=items)))

    async def container_logs(request: web.Request) -> web.StreamResponse:
        namespace = request.match_info["namespace"]
        pod = request.match_info["pod"]
        container = request.match_info["container"]
        try:
            previous = _bool_param(request, "previous")
            follow = _bool_param(request, "follow")
            tail_lines = _int_param(request, "tailLines")
        except _BadRequest as exc:
            return status_response(400, str(exc))

        entry = store.find(namespace, pod)
        if entry is None:
            return status_response(404, f'pod "{pod}" does not exist')
        names = {
            str(c.get("name"))
            for key in ("initContainers", "containers")
            for c in _dicts(entry.view.spec.get(key))
        }
        if container not in names:
            return status_response(404, f'container "{container}" not found in pod "{pod}"')

        if not follow:
            return await _stream_logs(
                request, namespace, pod, container, previous=previous, tail_lines=tail_lines
            )
        peer = request.remote or "unknown"
        if follows[peer] >= max_follows_per_client:
            return status_response(
                429,
                f"too many log streams from {peer}: at most {max_follows_per_client} "
                "follow=true streams per client",
            )
        follows[peer] += 1
        try:
            return await _stream_logs(
                request,
                namespace,
                pod,
                container,
                previous=previous,
                tail_lines=tail_lines,
                follow=True,
            )
        finally:
            follows[peer] -= 1
            if not follows[peer]:
                del follows[peer]

    async def _stream_logs(
        request: web.Request,
        namespace: str,
        pod: str,
        container: str,
        *,
        previous: bool,
        tail_lines: int | None,
        follow: bool = False,
    ) -> web.StreamResponse:
        try:
            stream = logs(
                namespace, pod, container, previous=previous, tail_lines=tail_lines, follow=follow
            )
            first: bytes | None = await anext(stream, None)
        except LookupError as exc:
            return status_response(404, _lookup_message(exc, pod, container))

        response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        response.enable_chunked_encoding()
        try:
            await response.prepare(request)
            if first is not None:
                await response.write(first)
                async for chunk in stream:
                    await response.write(chunk)
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

    app = web.Application(middlewares=[_status_errors])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/pods", pods)
    app.router.add_get("/events", list_events)
    app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", container_logs)
    return app


def _dicts(value: object) -> list[dict[str, object]]:
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, dict)]


def _lookup_message(exc: LookupError, pod: str, container: str) -> str:
    if exc.args and isinstance(exc.args[0], str) and exc.args[0]:
        return exc.args[0]
    return f'container "{container}" in pod "{pod}" is not available'


# --- serving --------------------------------------------------------------------------------

ACCEPT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
"""accept() failures that mean "out of descriptors or memory": back off and try again."""

ACCEPT_BACKOFF_MAX = 1.0  # seconds between accept() attempts while they fail that way
FULL_POLL = 0.05  # seconds between checks for a free slot while at max_connections
QUIET_PERIOD = 60.0  # seconds: at most one log line per kind of trouble


class _QuietLog:
    """One warning per period for a recurring condition, with how often it recurred."""

    def __init__(self, period: float) -> None:
        self._period = period
        self._last: dict[str, float] = {}  # condition -> loop time it was last logged
        self._since: Counter[str] = Counter()  # condition -> occurrences not logged

    def say(self, condition: str, message: str) -> None:
        now = asyncio.get_running_loop().time()
        last = self._last.get(condition)
        if last is not None and now - last < self._period:
            self._since[condition] += 1
            return
        repeated = self._since.pop(condition, 0)
        suffix = f" ({repeated} more times since the last report)" if repeated else ""
        log.warning("%s%s", message, suffix)
        self._last[condition] = now


class Server:
    """A listening API server. ``port`` is the bound port (useful when asked for port 0)."""

    def __init__(
        self,
        *,
        runner: web.AppRunner,
        listener: socket.socket,
        host: str,
        max_connections: int,
    ) -> None:
        self.runner = runner
        self.host = host
        self.port = int(listener.getsockname()[1])
        self.max_connections = max_connections
        self._listener = listener
        self._quiet = _QuietLog(QUIET_PERIOD)
        self._accepting = asyncio.get_running_loop().create_task(
            self._accept_loop(), name=f"API accept {host}:{self.port}"
        )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def connections(self) -> int:
        """Connections open now."""
        server = self.runner.server
        return len(server.connections) if server is not None else 0

    async def wait(self) -> None:
        """Return (or raise) only when the accept loop has ended: a failure of the API itself."""
        await asyncio.wait([self._accepting])
        if not self._accepting.cancelled():
            self._accepting.result()

    async def cleanup(self) -> None:
        """Stop listening, give open requests (log streams) a moment, then close them."""
        self._accepting.cancel()
        await asyncio.wait([self._accepting])
        self._listener.close()
        await self.runner.cleanup()

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        protocol_factory = self.runner.server
        assert protocol_factory is not None
        delay = 0.0  # the current back-off after a failed accept()
        while True:
            while self.connections >= self.max_connections:
                self._quiet.say(
                    "full",
                    f"API: {self.max_connections} connections open (api.maxConnections); "
                    "new ones wait until one closes",
                )
                await asyncio.sleep(FULL_POLL)
            try:
                conn, _ = await loop.sock_accept(self._listener)
            except OSError as exc:
                if exc.errno in ACCEPT_ERRNOS:
                    delay = min(max(2 * delay, 0.05), ACCEPT_BACKOFF_MAX)
                    self._quiet.say(
                        "accept",
                        f"API: cannot accept connections: {exc}; retrying every "
                        f"{ACCEPT_BACKOFF_MAX:g}s at most ({self.connections} open)",
                    )
                    await asyncio.sleep(delay)
                    continue
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                    continue  # the client gave up, or a firewall said no: nothing to serve
                raise
            delay = 0.0
            try:
                await loop.connect_accepted_socket(protocol_factory, conn)
            except OSError as exc:
                conn.close()
                self._quiet.say("setup", f"API: setting up a connection failed: {exc}")


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, port), family=family, backlog=128)
    listener.setblocking(False)
    return listener


async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    shutdown_timeout: float = 2.0,
    max_connections: int = MAX_CONNECTIONS,
    idle_timeout: float = IDLE_TIMEOUT,
) -> Server:
    """Start listening on ``host:port`` (port 0 picks a free port) and return the handle."""
    # handler_cancellation: a client that hangs up (``logs -f`` interrupted) cancels its handler,
    # which closes the log stream at once instead of when the container next writes.
    # keepalive_timeout: aiohttp closes a connection that waits this long for a request,
    # the first one included; a response being streamed is not waiting.
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=shutdown_timeout,
        handler_cancellation=True,
        keepalive_timeout=idle_timeout,
    )
    await runner.setup()
    try:
        listener = _listen(host, port)
    except BaseException:
        await runner.cleanup()
        raise
    server = Server(runner=runner, listener=listener, host=host, max_connections=max_connections)
    log.info(
        "API listening on %s:%s (at most %d connections, idle ones closed after %gs)",
        host,
        server.port,
        max_connections,
        idle_timeout,
    )
    return server
