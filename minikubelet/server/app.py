"""The read-only HTTP API, shaped like kubelet's read-only port (10255).

Routes (DESIGN.md): ``/healthz``, ``/pods``, ``/events`` and ``/containerLogs/{ns}/{pod}/{c}``.
Everything is read from the status store, the event recorder and a ``LogSource`` the daemon
wires to the right runtime; this module decides nothing about pods. Errors are v1 ``Status``
objects, as the API server returns them, so that a client can print ``Error from server
(NotFound): ...`` the way kubectl does. ``/metrics`` is not served yet and is a 404 like any
unknown path.

Logs stream: the response is prepared only after the first chunk (or the end of the stream) is
in hand, so that a ``LookupError`` raised by the log source, synchronously or on first read,
still becomes a 404 Status instead of a broken 200.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
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
    500: "InternalError",
}


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
    return web.Response(status=code, text=json.dumps(body) + "\n", content_type="application/json")


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
) -> web.Application:
    """The aiohttp application. Handlers only read ``store``, ``events`` and ``logs``."""

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


@dataclass(frozen=True, slots=True)
class Server:
    """A listening API server. ``port`` is the bound port (useful when asked for port 0)."""

    runner: web.AppRunner
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def cleanup(self) -> None:
        """Stop listening, give open requests (log streams) a moment, then close them."""
        await self.runner.cleanup()


async def serve(
    app: web.Application, host: str, port: int, *, shutdown_timeout: float = 2.0
) -> Server:
    """Start listening on ``host:port`` (port 0 picks a free port) and return the handle."""
    # handler_cancellation: a client that hangs up (``logs -f`` interrupted) cancels its handler,
    # which closes the log stream at once instead of when the container next writes.
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=shutdown_timeout,
        handler_cancellation=True,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0]
    log.info("API listening on %s:%s", host, bound[1])
    return Server(runner=runner, host=host, port=int(bound[1]))
