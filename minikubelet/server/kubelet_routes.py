"""kubelet's own read-only endpoints: ``/healthz``, ``/pods``, ``/events``, ``/containerLogs``.

The shapes kubelet's read-only port (10255) serves, for scripts and the built-in CLI:
``/pods`` is a v1 PodList of every pod, ``/events`` a v1 EventList (``fieldSelector`` as in
``core_events``), ``/containerLogs/{ns}/{pod}/{container}`` the log with ``previous``,
``tailLines`` and ``follow``. ``/healthz`` is the one path answered without a token
(``auth``): ``ok``, ``?verbose`` lists each check, and a failed check is a 500 listing all.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from aiohttp import web

from minikubelet.api.model import EventList, PodList, dump
from minikubelet.server.core_events import select_events
from minikubelet.server.errors import ApiError
from minikubelet.server.limits import PerClientLimit
from minikubelet.server.logstream import LogOptions, LogSource, bool_param, int_param, stream_log
from minikubelet.status.events import EventRecorder
from minikubelet.status.store import StatusStore

HealthCheck = tuple[str, bool, str]
"""(name, ok, detail): one line of ``/healthz?verbose``. On failure detail is the reason; on a
passing check a non-empty detail is a warning, shown as ``[+]name warning: detail`` without
failing healthz (e.g. pods run, but their limits are not enforced)."""


def _json(payload: object) -> web.Response:
    return web.Response(text=json.dumps(payload) + "\n", content_type="application/json")


def health_report(checks: list[HealthCheck]) -> tuple[bool, str]:
    """(all passed, the verbose text without its last line)."""
    if not any(name == "ping" for name, _, _ in checks):
        checks = [("ping", True, ""), *checks]
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
    return not failed, "".join(lines)


def add_routes(
    app: web.Application,
    *,
    store: StatusStore,
    events: EventRecorder,
    logs: LogSource,
    health: Callable[[], list[HealthCheck]],
    follows: PerClientLimit,
) -> None:
    async def healthz(request: web.Request) -> web.Response:
        ok, text = health_report(health())
        if not ok:
            # kubelet answers 500 with every check listed, verbose or not.
            return web.Response(status=500, text=text + "healthz check failed\n")
        if "verbose" not in request.query:
            return web.Response(text="ok")
        return web.Response(text=text + "healthz check passed\n")

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
        items = select_events(events.events(), field_selector=request.query.get("fieldSelector"))
        return _json(dump(EventList(items=items)))

    async def container_logs(request: web.Request) -> web.StreamResponse:
        namespace = request.match_info["namespace"]
        pod = request.match_info["pod"]
        container = request.match_info["container"]
        options = LogOptions(
            container=container,
            previous=bool_param(request, "previous"),
            follow=bool_param(request, "follow"),
            tail_lines=int_param(request, "tailLines"),
        )
        entry = store.find(namespace, pod)
        if entry is None:
            raise ApiError(404, f'pod "{pod}" does not exist')
        names = {
            str(c.get("name"))
            for key in ("initContainers", "containers")
            for c in _dicts(entry.view.spec.get(key))
        }
        if container not in names:
            raise ApiError(404, f'container "{container}" not found in pod "{pod}"')
        if not options.follow:
            return await stream_log(request, logs, namespace, pod, options, lookup_code=404)
        with follows.hold(request.remote or "unknown"):
            return await stream_log(request, logs, namespace, pod, options, lookup_code=404)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/pods", pods)
    app.router.add_get("/events", list_events)
    app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", container_logs)


def _dicts(value: object) -> list[dict[str, object]]:
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, dict)]
