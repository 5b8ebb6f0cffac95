"""Events: ``/api/v1/events`` and ``/api/v1/namespaces/{ns}/events`` (list, JSON or Table).

Read from the event recorder. ``fieldSelector`` takes the API server's Event fields
(``involvedObject.*``, ``reason``, ``type``, ``source``, ...): ``kubectl describe`` finds a
pod's events with ``involvedObject.name/namespace/uid``, ``kubectl events --for pod/x`` with
``involvedObject.kind/name``. Events are not watched here: ``?watch=true`` is 405.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from minikubelet.api.model import Event, dump
from minikubelet.server.errors import ApiError
from minikubelet.server.selectors import FieldSelector, LabelSelector
from minikubelet.server.tables import EVENT_COLUMNS, event_cells, negotiate, table
from minikubelet.status.events import EventRecorder

EVENT_FIELDS: dict[str, Callable[[Any], str]] = {
    "involvedObject.kind": lambda e: e.involved_object.kind or "",
    "involvedObject.namespace": lambda e: e.involved_object.namespace or "",
    "involvedObject.name": lambda e: e.involved_object.name or "",
    "involvedObject.uid": lambda e: e.involved_object.uid or "",
    "involvedObject.apiVersion": lambda e: e.involved_object.api_version or "",
    "involvedObject.resourceVersion": lambda e: "",
    "involvedObject.fieldPath": lambda e: e.involved_object.field_path or "",
    "reason": lambda e: e.reason,
    "reportingComponent": lambda e: e.reporting_component,
    "source": lambda e: e.source.component,
    "type": lambda e: e.type,
    "metadata.name": lambda e: e.metadata.name,
    "metadata.namespace": lambda e: e.metadata.namespace,
}
"""The event fields a fieldSelector may name (the API server's Event field set)."""


def select_events(
    events: list[Event], *, field_selector: str | None, namespace: str | None = None
) -> list[Event]:
    """Events in ``namespace`` (None: all) matching the selector; 400 ApiError if it is bad."""
    selector = FieldSelector(field_selector, EVENT_FIELDS)
    return [
        e
        for e in events
        if (namespace is None or e.metadata.namespace == namespace) and selector.matches(e)
    ]


def add_routes(
    app: web.Application, *, events: EventRecorder, resource_version: Callable[[], int]
) -> None:
    async def list_events(request: web.Request) -> web.Response:
        if request.query.get("watch") in ("1", "true"):
            raise ApiError(405, "watching events is not supported on this node")
        options = negotiate(request)
        namespace = request.match_info.get("namespace")
        LabelSelector(request.query.get("labelSelector"))  # events carry no labels: parse only
        items = select_events(
            events.events(),
            field_selector=request.query.get("fieldSelector"),
            namespace=namespace,
        )
        if request.query.get("labelSelector"):
            items = []
        rv = str(resource_version())
        if options is not None:
            now = datetime.now(UTC)
            rows = [(event_cells(e, now=now), _event_obj(e), None) for e in items]
            payload: dict[str, Any] = table(EVENT_COLUMNS, rows, options, resource_version=rv)
        else:
            payload = {
                "kind": "EventList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": rv},
                "items": [_event_obj(e) for e in items],
            }
        return web.Response(
            text=json.dumps(payload, separators=(",", ":")) + "\n",
            content_type="application/json",
        )

    app.router.add_get("/api/v1/events", list_events)
    app.router.add_get("/api/v1/namespaces/{namespace}/events", list_events)


def _event_obj(event: Event) -> dict[str, Any]:
    obj = dump(event)
    obj["metadata"].setdefault("resourceVersion", "")
    return obj
