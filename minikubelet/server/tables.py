"""Server-side printing: ``meta.k8s.io/v1 Table`` responses, as kubectl asks for them.

``kubectl get`` asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints
the columns and cells it gets back: the server decides what ``kubectl get pods`` shows. The pod
cells come from ``printers.pod_row``, the same code that prints ``minikubelet get pods``; the
event and node cells are ports of kubectl's ``printEvent`` and ``printNode``
(``pkg/printers/internalversion/printers.go``). As on the API server, every column is sent,
the ``-o wide`` ones with ``priority: 1``, and kubectl hides those unless asked.

Each row carries the object as ``PartialObjectMetadata`` (``includeObject=Metadata``, kubectl's
default, enough for ``--show-labels`` and ``-L``), the whole object (``Object``) or nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from minikubelet import printers
from minikubelet.api.model import Event, PodView
from minikubelet.server.errors import ApiError, bad_request

TABLE_VERSIONS = ("v1", "v1beta1")


@dataclass(frozen=True, slots=True)
class TableOptions:
    version: str  # meta.k8s.io/<version> asked for
    include_object: str  # None, Metadata or Object


def negotiate(request: web.Request) -> TableOptions | None:
    """Table options when the client's first acceptable type is a Table, None for plain JSON.
    Raises 406 when it accepts neither."""
    accept = request.headers.get("Accept", "") or "*/*"
    for item in accept.split(","):
        media, *raw_params = (part.strip() for part in item.split(";"))
        params = dict(p.partition("=")[::2] for p in raw_params if "=" in p)
        if media.lower() not in ("application/json", "application/*", "*/*"):
            continue
        kind = params.get("as")
        if kind is None:
            return None
        if (
            kind == "Table"
            and params.get("g") == "meta.k8s.io"
            and params.get("v") in TABLE_VERSIONS
        ):
            include = request.query.get("includeObject", "Metadata") or "Metadata"
            if include not in ("None", "Metadata", "Object"):
                raise bad_request(f'invalid value for includeObject: "{include}"')
            return TableOptions(version=params["v"], include_object=include)
    raise ApiError(
        406, f"only the following media types are accepted: application/json (asked for {accept})"
    )


Column = tuple[str, str, int, str]  # name, format, priority, description


def _definitions(columns: Sequence[Column]) -> list[dict[str, Any]]:
    return [
        {"name": name, "type": "string", "format": fmt, "description": desc, "priority": prio}
        for name, fmt, prio, desc in columns
    ]


def _row_object(obj: dict[str, Any], options: TableOptions) -> dict[str, Any] | None:
    if options.include_object == "None":
        return None
    if options.include_object == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": f"meta.k8s.io/{options.version}",
        "metadata": obj.get("metadata", {}),
    }


def table(
    columns: Sequence[Column],
    rows: Iterable[tuple[list[Any], dict[str, Any], list[dict[str, str]] | None]],
    options: TableOptions,
    *,
    resource_version: str = "",
    with_columns: bool = True,
) -> dict[str, Any]:
    """A Table from (cells, object, conditions) rows."""
    out_rows = []
    for cells, obj, conditions in rows:
        row: dict[str, Any] = {"cells": cells}
        if conditions:
            row["conditions"] = conditions
        embedded = _row_object(obj, options)
        if embedded is not None:
            row["object"] = embedded
        out_rows.append(row)
    result: dict[str, Any] = {
        "kind": "Table",
        "apiVersion": f"meta.k8s.io/{options.version}",
        "metadata": {"resourceVersion": resource_version},
    }
    if with_columns:
        result["columnDefinitions"] = _definitions(columns)
    result["rows"] = out_rows
    return result


# --- pods -----------------------------------------------------------------------------------

POD_COLUMNS: list[Column] = [
    ("Name", "name", 0, "Name must be unique within a namespace."),
    ("Ready", "", 0, "The aggregate readiness state of this pod for accepting traffic."),
    ("Status", "", 0, "The aggregate status of the containers in this pod."),
    (
        "Restarts",
        "",
        0,
        "The number of times the containers in this pod have been restarted and when the last "
        "container in this pod has restarted.",
    ),
    (
        "Age",
        "",
        0,
        "CreationTimestamp is a timestamp representing the server time when this "
        "object was created.",
    ),
    ("IP", "", 1, "podIP address allocated to the pod. Routable at least within the cluster."),
    ("Node", "", 1, "NodeName indicates in which node this pod is scheduled."),
    (
        "Nominated Node",
        "",
        1,
        "nominatedNodeName is set when this pod preempts other pods on the node.",
    ),
    (
        "Readiness Gates",
        "",
        1,
        "If specified, all readiness gates will be evaluated for pod readiness.",
    ),
]


def pod_cells(view: PodView, *, now: datetime) -> tuple[list[Any], list[dict[str, str]] | None]:
    """kubectl ``printPod``'s cells (all columns) and row conditions."""
    r = printers.pod_row(view, now=now)
    cells: list[Any] = [r.name, r.ready, r.status, r.restarts, r.age]
    cells += [r.ip, r.node, r.nominated_node, r.readiness_gates]
    conditions = None
    if view.status.phase == "Succeeded":
        conditions = [
            {
                "type": "Completed",
                "status": "True",
                "reason": "Succeeded",
                "message": "The pod has completed successfully.",
            }
        ]
    elif view.status.phase == "Failed":
        conditions = [
            {
                "type": "Completed",
                "status": "True",
                "reason": "Failed",
                "message": "The pod failed.",
            }
        ]
    return cells, conditions


# --- events ---------------------------------------------------------------------------------

EVENT_COLUMNS: list[Column] = [
    (
        "Last Seen",
        "",
        0,
        "The time at which the most recent occurrence of this event was recorded.",
    ),
    ("Type", "", 0, "Type of this event (Normal, Warning), new types could be added in the future"),
    (
        "Reason",
        "",
        0,
        "This should be a short, machine understandable string that gives the "
        "reason for the transition into the object's current status.",
    ),
    ("Object", "", 0, "The object that this event is about."),
    (
        "Subobject",
        "",
        1,
        "If referring to a piece of an object instead of an entire object, "
        "this string should contain a valid JSON/Go field access statement.",
    ),
    ("Source", "", 1, "The component reporting this event."),
    ("Message", "", 0, "A human-readable description of the status of this operation."),
    ("First Seen", "", 1, "The time at which the event was first recorded."),
    ("Count", "", 1, "The number of times this event has occurred."),
    ("Name", "name", 1, "Name must be unique within a namespace."),
]


def event_cells(event: Event, *, now: datetime) -> list[Any]:
    """kubectl ``printEvent`` (wide: every column)."""
    first = printers.since(event.first_timestamp, now)
    last = printers.since(event.last_timestamp, now) if event.last_timestamp else first
    obj = event.involved_object
    kind = (obj.kind or "").lower()
    target = f"{kind}/{obj.name}" if obj.name else kind
    source = event.source.component or ""
    if event.source.host:
        source += f", {event.source.host}"
    return [
        last,
        event.type,
        event.reason,
        target,
        obj.field_path or "",
        source,
        event.message.strip(),
        first,
        event.count or 1,
        event.metadata.name,
    ]


# --- nodes ----------------------------------------------------------------------------------

NODE_COLUMNS: list[Column] = [
    ("Name", "name", 0, "Name must be unique within a namespace."),
    ("Status", "", 0, "The status of the node"),
    ("Roles", "", 0, "The roles of the node"),
    (
        "Age",
        "",
        0,
        "CreationTimestamp is a timestamp representing the server time when this "
        "object was created.",
    ),
    ("Version", "", 0, "Kubelet Version reported by the node."),
    (
        "Internal-IP",
        "",
        1,
        "List of addresses reachable to the node. Queried from cloud provider, if available.",
    ),
    (
        "External-IP",
        "",
        1,
        "List of addresses reachable to the node. Queried from cloud provider, if available.",
    ),
    (
        "OS-Image",
        "",
        1,
        "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
    ),
    (
        "Kernel-Version",
        "",
        1,
        "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
    ),
    (
        "Container-Runtime",
        "",
        1,
        "ContainerRuntime Version reported by the node through "
        "runtime remote API (e.g. containerd://1.4.2).",
    ),
]


def node_cells(node: dict[str, Any], *, now: datetime) -> list[Any]:
    """kubectl ``printNode`` (wide: every column)."""
    meta, status = node["metadata"], node["status"]
    ready = any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])
    )
    state = "Ready" if ready else "NotReady"
    if node.get("spec", {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    roles = sorted(
        key.removeprefix("node-role.kubernetes.io/")
        for key in meta.get("labels", {})
        if key.startswith("node-role.kubernetes.io/")
    )
    addresses = status.get("addresses", [])
    internal = next((a["address"] for a in addresses if a["type"] == "InternalIP"), "<none>")
    external = next((a["address"] for a in addresses if a["type"] == "ExternalIP"), "<none>")
    info = status.get("nodeInfo", {})
    created = printers.parse_time(meta.get("creationTimestamp"))
    return [
        meta["name"],
        state,
        ",".join(roles) or "<none>",
        printers.since(created, now),
        info.get("kubeletVersion", ""),
        internal,
        external,
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]
