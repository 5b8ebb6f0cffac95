"""Discovery: what kubectl asks before anything else (``/api``, ``/apis``, ``/version``,
``/openapi/v3``).

kubectl maps ``kubectl get po`` to ``/api/v1/namespaces/default/pods`` from the resource list
at ``/api/v1`` (names, kinds, short names, verbs), and caches it. Only the core group is
served (``/apis`` lists no group), in the legacy shape: kubectl asks for aggregated discovery
first and, answered plain JSON, reads the legacy documents instead.

``/openapi/v3/api/v1`` is the schema of the kinds served (generated from Kubernetes 1.37's by
``scripts/gen-openapi``), for ``kubectl explain`` and for ``kubectl apply``, which reads there
that the server validates fields itself (``fieldValidation`` on PATCH) and so needs no
``--validate=false``. The index at ``/openapi/v3`` points at it with a content hash, so that
kubectl caches it until it changes.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from aiohttp import web

from minikubelet import __version__
from minikubelet.server.errors import ApiError
from minikubelet.server.node import KUBERNETES_VERSION, go_arch

READ = ("get", "list", "watch")


@dataclass(frozen=True, slots=True)
class Resource:
    """One entry of an APIResourceList."""

    name: str  # "pods", "pods/log"
    kind: str
    namespaced: bool
    verbs: tuple[str, ...]
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    def entry(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            out["shortNames"] = list(self.short_names)
        if self.categories:
            out["categories"] = list(self.categories)
        return out


def core_resources(*, writes: bool) -> list[Resource]:
    """What /api/v1 lists. The write verbs are listed when writes are on."""
    pod_verbs = READ + (("create", "delete", "patch", "update") if writes else ())
    return [
        Resource("events", "Event", True, ("get", "list"), "event", ("ev",)),
        Resource("nodes", "Node", False, ("get", "list"), "node", ("no",)),
        Resource("pods", "Pod", True, pod_verbs, "pod", ("po",), ("all",)),
        Resource("pods/exec", "PodExecOptions", True, ("create", "get")),
        Resource("pods/log", "Pod", True, ("get",)),
    ]


@dataclass
class OpenAPI:
    """The v3 document for api/v1, read from the package once, with its hash."""

    document: bytes = field(default=b"")
    digest: str = ""

    @classmethod
    def load(cls) -> OpenAPI:
        data = resources.files("minikubelet.server").joinpath("openapi/api__v1.json").read_bytes()
        return cls(document=data, digest=hashlib.sha512(data).hexdigest().upper()[:128])


def version_info() -> dict[str, str]:
    major, minor, _ = KUBERNETES_VERSION.split(".")
    return {
        "major": major,
        "minor": minor,
        "gitVersion": f"v{KUBERNETES_VERSION}+minikubelet-{__version__}",
        "gitCommit": "",
        "gitTreeState": "",
        "buildDate": "",
        "goVersion": f"python{platform.python_version()}",
        "compiler": "cpython",
        "platform": f"linux/{go_arch()}",
    }


def _json(payload: object) -> web.Response:
    return web.Response(
        text=json.dumps(payload, separators=(",", ":")) + "\n", content_type="application/json"
    )


def add_routes(app: web.Application, *, resources_: list[Resource], openapi: OpenAPI) -> None:
    api_v1 = {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [r.entry() for r in resources_],
    }

    async def api(request: web.Request) -> web.Response:
        host = request.host
        return _json(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
            }
        )

    async def apis(request: web.Request) -> web.Response:
        return _json({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})

    async def v1(request: web.Request) -> web.Response:
        return _json(api_v1)

    async def version(request: web.Request) -> web.Response:
        return _json(version_info())

    async def openapi_index(request: web.Request) -> web.Response:
        return _json(
            {
                "paths": {
                    "api/v1": {"serverRelativeURL": f"/openapi/v3/api/v1?hash={openapi.digest}"}
                }
            }
        )

    async def openapi_v1(request: web.Request) -> web.Response:
        accept = request.headers.get("Accept", "*/*")
        if "json" not in accept and "*/*" not in accept:
            raise ApiError(406, "only application/json is served")
        headers = {
            "Cache-Control": "public, immutable" if request.query.get("hash") else "no-cache",
            "Etag": f'"{openapi.digest}"',
        }
        return web.Response(body=openapi.document, content_type="application/json", headers=headers)

    app.router.add_get("/api", api)
    app.router.add_get("/api/", api)
    app.router.add_get("/apis", apis)
    app.router.add_get("/apis/", apis)
    app.router.add_get("/api/v1", v1)
    app.router.add_get("/api/v1/", v1)
    app.router.add_get("/version", version)
    app.router.add_get("/version/", version)
    app.router.add_get("/openapi/v3", openapi_index)
    app.router.add_get("/openapi/v3/api/v1", openapi_v1)
