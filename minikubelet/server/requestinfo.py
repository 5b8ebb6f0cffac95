"""What a Kubernetes API request asks for, read from its method and path.

The API server's ``RequestInfoFactory`` in small: ``/api/v1/namespaces/default/pods/web/log``
is verb ``get`` on resource ``pods``, subresource ``log``, name ``web`` in namespace
``default``. The write switch and the audit log speak in these terms (who did which verb to
which object), whichever route serves the request, or none.
"""

from __future__ import annotations

from dataclasses import dataclass

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
EXEC_SUBRESOURCES = frozenset({"exec", "attach"})
"""Subresources that run or attach to something in a container: as dangerous as a write."""
GUARDED_RESOURCES = frozenset({"pods", "events", "nodes"})
"""The resources this node serves; a request for any other answers 404 like an API server's."""
UNSERVED_SUBRESOURCES = frozenset({"portforward", "proxy"})


@dataclass(frozen=True, slots=True)
class RequestInfo:
    api: bool  # under /api or /apis (a Kubernetes API request)
    verb: str  # get, list, watch, create, update, patch, delete, deletecollection
    group: str = ""  # "" for the core group
    version: str = ""
    namespace: str = ""
    resource: str = ""
    name: str = ""
    subresource: str = ""

    @property
    def changes_something(self) -> bool:
        """A write, or a session inside a container: what ``api.writes`` switches."""
        if not self.api or self.resource not in GUARDED_RESOURCES:
            return False
        if self.subresource in UNSERVED_SUBRESOURCES:
            return False
        return self.verb in WRITE_VERBS or self.subresource in EXEC_SUBRESOURCES

    @property
    def what(self) -> str:
        """``pods/log default/web`` (resource[/subresource] [namespace/]name)."""
        resource = self.resource + (f"/{self.subresource}" if self.subresource else "")
        if self.group:
            resource += f".{self.group}"
        target = f"{self.namespace}/{self.name}" if self.namespace else self.name
        if not self.name and self.namespace:
            target = f"in namespace {self.namespace}"
        return f"{resource} {target}".strip()


_METHOD_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def request_info(method: str, path: str, query: dict[str, str] | None = None) -> RequestInfo:
    parts = [p for p in path.split("/") if p]
    query = query or {}
    method = method.upper()
    if not parts or parts[0] not in ("api", "apis"):
        return RequestInfo(api=False, verb=method.lower())
    if parts[0] == "api":
        group, rest = "", parts[1:]
        version, rest = (rest[0], rest[1:]) if rest else ("", [])
    else:
        rest = parts[1:]
        group, version, rest = (rest[0], rest[1], rest[2:]) if len(rest) >= 2 else ("", "", [])
    namespace = ""
    if len(rest) > 2 and rest[0] == "namespaces":
        # Past /namespaces/{ns}: a namespaced resource. /namespaces/{ns} alone is the namespace.
        namespace, rest = rest[1], rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""

    if method in ("GET", "HEAD"):
        watch = query.get("watch") in ("1", "true")
        verb = "watch" if watch else ("get" if name else "list")
    else:
        verb = _METHOD_VERBS.get(method, method.lower())
        if verb == "delete" and not name:
            verb = "deletecollection"
    return RequestInfo(
        api=True,
        verb=verb,
        group=group,
        version=version,
        namespace=namespace,
        resource=resource,
        name=name,
        subresource=subresource,
    )
