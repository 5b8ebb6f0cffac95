"""The one Node: ``/api/v1/nodes`` and ``/api/v1/nodes/{name}`` (list, get; JSON or Table).

What kubelet reports in its Node object, as far as minikubelet knows it: the labels kubelet
sets (``kubernetes.io/hostname``, ``kubernetes.io/os``, ``kubernetes.io/arch``), addresses,
capacity and allocatable (the same allocatable admission fits pods into), ``nodeInfo`` from
the host (kernel, OS image, machine and boot IDs) and a ``Ready`` condition. Ready follows
``/healthz``: False, with the failing checks as its message, while a check fails.
``kubectl describe node`` adds the pods on the node and their requests and limits by listing
pods with ``fieldSelector=spec.nodeName=...``, and the node's events by its name and uid.

The node's uid is derived from its name (a UUID 5), and is not its name: kubectl looks for node
events by both, and kubelet's own events use the name.
"""

from __future__ import annotations

import json
import platform
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web

from minikubelet import __version__
from minikubelet.api.model import format_time
from minikubelet.server.errors import ApiError, not_found
from minikubelet.server.selectors import FieldSelector, LabelSelector
from minikubelet.server.tables import NODE_COLUMNS, negotiate, node_cells, table

KUBERNETES_VERSION = "1.37.0"  # the Kubernetes API version whose shapes and behaviour we serve
KUBELET_VERSION = f"v{KUBERNETES_VERSION}+minikubelet-{__version__}"

_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


def go_arch() -> str:
    machine = platform.machine()
    return _GO_ARCH.get(machine, machine)


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        key, _, value = line.partition("=")
        if key == "PRETTY_NAME":
            return value.strip().strip('"')
    return ""


def cpu_quantity(cores: Decimal) -> str:
    return str(int(cores)) if cores == int(cores) else f"{int(cores * 1000)}m"


def bytes_quantity(amount: Decimal) -> str:
    return f"{int(amount) // 1024}Ki"


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    host_ip: str
    capacity: Mapping[str, Decimal]  # cpu (cores), memory and ephemeral-storage (bytes)
    allocatable: Mapping[str, Decimal]
    runtimes: tuple[str, ...]  # runtime classes available, default first
    started: datetime = field(default_factory=lambda: datetime.now(UTC))


def node_object(
    node: NodeInfo, *, health: Callable[[], tuple[bool, str]], resource_version: str
) -> dict[str, Any]:
    ok, failing = health()
    started = format_time(node.started)
    now = format_time(datetime.now(UTC))

    def resources(values: Mapping[str, Decimal]) -> dict[str, str]:
        out = {}
        for key, amount in values.items():
            out[key] = cpu_quantity(amount) if key == "cpu" else bytes_quantity(amount)
        return out

    addresses = [{"type": "InternalIP", "address": node.host_ip}]
    addresses.append({"type": "Hostname", "address": node.name})
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": node.name,
            "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"minikubelet:node:{node.name}")),
            "resourceVersion": resource_version,
            "creationTimestamp": started,
            "labels": {
                "kubernetes.io/hostname": node.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": go_arch(),
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": go_arch(),
            },
            "annotations": {"minikubelet.io/runtimes": ",".join(node.runtimes)},
        },
        "spec": {},
        "status": {
            "capacity": resources(node.capacity),
            "allocatable": resources(node.allocatable),
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ok else "False",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": started,
                    "reason": "KubeletReady" if ok else "KubeletNotReady",
                    "message": "kubelet is posting ready status" if ok else failing,
                }
            ],
            "addresses": addresses,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "machineID": _read("/etc/machine-id"),
                "systemUUID": _read("/sys/class/dmi/id/product_uuid"),
                "bootID": _read("/proc/sys/kernel/random/boot_id"),
                "kernelVersion": platform.release(),
                "osImage": _os_image(),
                "containerRuntimeVersion": f"{node.runtimes[0]}://minikubelet-{__version__}",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": go_arch(),
            },
        },
    }


NODE_FIELDS: dict[str, Callable[[Any], str]] = {
    "metadata.name": lambda n: n["metadata"]["name"],
    "spec.unschedulable": lambda n: "false",
}


def add_routes(
    app: web.Application,
    *,
    node: NodeInfo,
    health: Callable[[], tuple[bool, str]],
    resource_version: Callable[[], int],
) -> None:
    def current() -> dict[str, Any]:
        return node_object(node, health=health, resource_version=str(resource_version()))

    def respond(request: web.Request, nodes: list[dict[str, Any]], *, single: bool) -> web.Response:
        options = negotiate(request)
        rv = str(resource_version())
        if options is not None:
            now = datetime.now(UTC)
            payload = table(
                NODE_COLUMNS,
                [(node_cells(n, now=now), n, None) for n in nodes],
                options,
                resource_version=rv,
            )
        elif single:
            payload = nodes[0]
        else:
            payload = {
                "kind": "NodeList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": rv},
                "items": nodes,
            }
        return web.Response(
            text=json.dumps(payload, separators=(",", ":")) + "\n",
            content_type="application/json",
        )

    async def list_nodes(request: web.Request) -> web.Response:
        if request.query.get("watch") in ("1", "true"):
            raise ApiError(405, "watching nodes is not supported on this node")
        labels = LabelSelector(request.query.get("labelSelector"))
        fields = FieldSelector(request.query.get("fieldSelector"), NODE_FIELDS)
        n = current()
        nodes = [n] if labels.matches(n["metadata"]["labels"]) and fields.matches(n) else []
        return respond(request, nodes, single=False)

    async def get_node(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name != node.name:
            raise not_found("nodes", name)
        return respond(request, [current()], single=True)

    app.router.add_get("/api/v1/nodes", list_nodes)
    app.router.add_get("/api/v1/nodes/{name}", get_node)
