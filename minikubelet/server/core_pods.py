"""``/api/v1`` pods: list, get and watch (JSON or Table), and ``pods/{name}/log``.

Reads only: the pods come from ``feed.PodFeed`` (the status store with resourceVersions) and
the logs from the daemon's ``LogSource``. Selectors are the API server's: ``labelSelector``
and ``fieldSelector`` on ``metadata.name``, ``metadata.namespace``, ``spec.nodeName``,
``spec.restartPolicy``, ``spec.schedulerName``, ``spec.serviceAccountName``,
``spec.hostNetwork``, ``status.phase``, ``status.podIP`` and ``status.nominatedNodeName``.

A watch streams one JSON object per line (``{"type": "ADDED", "object": {...}}``) over a
chunked response, as the API server does: from ``resourceVersion`` N, the changes after N;
without one (or with "0", or ``sendInitialEvents=true``), an ADDED event for every pod first.
With selectors, a pod that starts matching is ADDED and one that stops matching is DELETED.
``allowWatchBookmarks`` brings the BOOKMARK that ends the initial events
(``k8s.io/initial-events-end``), which client-go's streaming lists wait for. A watch that falls
too far behind, or asks for a version no longer known, gets a 410 Expired ERROR event and
lists again. Watches count against ``api.maxWatchesPerClient``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from minikubelet.server.errors import ApiError, bad_request, not_found, status_object
from minikubelet.server.feed import Change, PodFeed, Version
from minikubelet.server.limits import PerClientLimit
from minikubelet.server.logstream import LogSource, log_options, stream_log
from minikubelet.server.selectors import FieldSelector, LabelSelector
from minikubelet.server.tables import POD_COLUMNS, TableOptions, negotiate, pod_cells, table

log = logging.getLogger(__name__)


def _spec(v: Version, key: str) -> str:
    value = v.entry.view.spec.get(key)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


POD_FIELDS: dict[str, Callable[[Any], str]] = {
    "metadata.name": lambda v: v.name,
    "metadata.namespace": lambda v: v.namespace,
    "spec.nodeName": lambda v: _spec(v, "nodeName"),
    "spec.restartPolicy": lambda v: _spec(v, "restartPolicy"),
    "spec.schedulerName": lambda v: _spec(v, "schedulerName"),
    "spec.serviceAccountName": lambda v: _spec(v, "serviceAccountName"),
    "spec.hostNetwork": lambda v: _spec(v, "hostNetwork") or "false",
    "status.phase": lambda v: v.entry.view.status.phase,
    "status.podIP": lambda v: v.entry.view.status.pod_ip or "",
    "status.nominatedNodeName": lambda v: "",
}


class PodFilter:
    """A request's namespace, labelSelector and fieldSelector, over pod versions."""

    def __init__(self, request: web.Request, namespace: str | None) -> None:
        self.namespace = namespace
        self.labels = LabelSelector(request.query.get("labelSelector"))
        self.fields = FieldSelector(request.query.get("fieldSelector"), POD_FIELDS)

    def __call__(self, v: Version | None) -> bool:
        if v is None:
            return False
        if self.namespace is not None and v.namespace != self.namespace:
            return False
        labels = v.entry.view.metadata.get("labels")
        return self.labels.matches(labels if isinstance(labels, dict) else {}) and (
            self.fields.matches(v)
        )


def _json(payload: object, *, content_type: str = "application/json") -> web.Response:
    return web.Response(
        text=json.dumps(payload, separators=(",", ":")) + "\n", content_type=content_type
    )


def _now() -> datetime:
    return datetime.now(UTC)


def pods_table(versions: list[Version], options: TableOptions, *, rv: str) -> dict[str, Any]:
    now = _now()
    rows = []
    for v in versions:
        cells, conditions = pod_cells(v.entry.view, now=now)
        rows.append((cells, v.obj(), conditions))
    return table(POD_COLUMNS, rows, options, resource_version=rv)


def add_routes(
    app: web.Application,
    *,
    feed: PodFeed,
    logs: LogSource,
    watches: PerClientLimit,
    follows: PerClientLimit,
) -> None:
    async def list_pods(request: web.Request) -> web.StreamResponse:
        namespace = request.match_info.get("namespace")
        options = negotiate(request)
        selected = PodFilter(request, namespace)
        if request.query.get("watch") in ("1", "true"):
            return await _watch(request, selected, options)
        versions = [v for v in feed.pods() if selected(v)]
        rv = str(feed.resource_version)
        if options is not None:
            return _json(pods_table(versions, options, rv=rv))
        return _json(
            {
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": rv},
                "items": [v.obj() for v in versions],
            }
        )

    async def get_pod(request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        options = negotiate(request)
        v = feed.get(namespace, name)
        if v is None:
            raise not_found("pods", name)
        if options is not None:
            return _json(pods_table([v], options, rv=str(v.resource_version)))
        return _json(v.obj())

    async def _watch(
        request: web.Request, selected: PodFilter, options: TableOptions | None
    ) -> web.StreamResponse:
        raw_rv = request.query.get("resourceVersion", "")
        initial = request.query.get("sendInitialEvents") == "true" or raw_rv in ("", "0")
        bookmarks = request.query.get("allowWatchBookmarks") == "true"
        since: int | None = None
        if raw_rv not in ("", "0") and request.query.get("sendInitialEvents") != "true":
            try:
                since = int(raw_rv)
            except ValueError:
                raise bad_request(f'invalid value for resourceVersion: "{raw_rv}"') from None
        timeout = _timeout(request)
        client = request.remote or "unknown"
        with watches.hold(client):
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.enable_chunked_encoding()
            try:
                watcher = feed.watch(since)
            except ApiError as exc:
                await response.prepare(request)
                await _send(
                    response, "ERROR", status_object(exc.code, exc.message, reason=exc.reason)
                )
                await response.write_eof()
                return response
            try:
                await response.prepare(request)
                async with asyncio.timeout(timeout):
                    await _stream(response, watcher, selected, options, initial, bookmarks)
            except (TimeoutError, ConnectionResetError):
                pass
            finally:
                watcher.close()
            with contextlib.suppress(ConnectionResetError):
                await response.write_eof()
            return response

    async def _stream(
        response: web.StreamResponse,
        watcher: Any,
        selected: PodFilter,
        options: TableOptions | None,
        initial: bool,
        bookmarks: bool,
    ) -> None:
        first = True

        def encode(v: Version) -> dict[str, Any]:
            nonlocal first
            if options is None:
                return v.obj()
            cells, conditions = pod_cells(v.entry.view, now=_now())
            t = table(
                POD_COLUMNS,
                [(cells, v.obj(), conditions)],
                options,
                resource_version=str(v.resource_version),
                with_columns=first,
            )
            first = False
            return t

        if initial:
            for v in feed.pods():
                if selected(v):
                    await _send(response, "ADDED", encode(v))
            if bookmarks:
                await _send(
                    response,
                    "BOOKMARK",
                    {
                        "kind": "Pod",
                        "apiVersion": "v1",
                        "metadata": {
                            "resourceVersion": str(feed.resource_version),
                            "annotations": {"k8s.io/initial-events-end": "true"},
                        },
                    },
                )
        while True:
            change: Change | None = await watcher.next()
            if change is None:
                await _send(
                    response,
                    "ERROR",
                    status_object(
                        410, "the watch fell too far behind; list again", reason="Expired"
                    ),
                )
                return
            was, now = selected(change.old), selected(change.new)
            if now and change.new is not None:
                await _send(response, "MODIFIED" if was else "ADDED", encode(change.new))
            elif was and change.old is not None:
                gone = change.new if change.new is not None else _deleted(change)
                await _send(response, "DELETED", encode(gone))

    async def pod_log(request: web.Request) -> web.StreamResponse:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        v = feed.get(namespace, name)
        if v is None:
            raise not_found("pods", name)
        options = log_options(request, v.entry.view)
        if not options.follow:
            return await stream_log(request, logs, namespace, name, options)
        with follows.hold(request.remote or "unknown"):
            return await stream_log(request, logs, namespace, name, options)

    app.router.add_get("/api/v1/pods", list_pods)
    app.router.add_get("/api/v1/namespaces/{namespace}/pods", list_pods)
    app.router.add_get("/api/v1/namespaces/{namespace}/pods/{name}", get_pod)
    app.router.add_get("/api/v1/namespaces/{namespace}/pods/{name}/log", pod_log)


def _deleted(change: Change) -> Version:
    """The pod's last version, at the resourceVersion of its deletion."""
    assert change.old is not None
    return Version(change.old.entry, change.resource_version)


async def _send(response: web.StreamResponse, kind: str, obj: dict[str, Any]) -> None:
    line = json.dumps({"type": kind, "object": obj}, separators=(",", ":")) + "\n"
    await response.write(line.encode())


def _timeout(request: web.Request) -> float | None:
    raw = request.query.get("timeoutSeconds")
    if not raw:
        return None
    try:
        seconds = int(raw)
    except ValueError:
        raise bad_request(f'invalid value for timeoutSeconds: "{raw}"') from None
    return float(seconds) if seconds > 0 else None
