"""What an authenticated client may do: the write switch and the request body limit.

Writes are opt-in (``api.writes``, off by default): a node whose API only reads cannot be
talked into running anything, even by a stolen token. With writes off, every Kubernetes API
request that would change something this node serves (POST, PUT, PATCH or DELETE on pods,
events or the node; the exec and attach subresources) is refused with the API server's 403
Forbidden Status before any route sees it, and the refusal goes to the audit log. With writes
on, such requests reach their routes, which audit what they do. Requests for what this node
does not serve at all (Deployments, port-forward) are answered by routing, 404 or 405, as an
API server answers for a resource it does not have.

Bodies: at most ``MAX_BODY_BYTES`` (3 MiB, the API server's limit). A declared
``Content-Length`` above it is answered 413 at once; a chunked body is cut off by aiohttp's
``client_max_size`` when a route reads it (``read_body``), and answered the same way.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Middleware

from minikubelet.server.audit import audit
from minikubelet.server.auth import IDENTITY
from minikubelet.server.errors import MAX_BODY_BYTES, ApiError, Handler, status_response
from minikubelet.server.requestinfo import request_info

WRITES_DISABLED = "writes are disabled on this node (api.writes is false)"


def body_limit_middleware(limit: int = MAX_BODY_BYTES) -> Middleware:
    @web.middleware
    async def body_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        length = request.content_length
        if length is not None and length > limit:
            return status_response(413, f"Request entity too large: limit is {limit}")
        return await handler(request)

    return body_limit


async def read_body(request: web.Request) -> bytes:
    """The request body, at most the app's ``client_max_size``; 413 Status beyond it."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, f"Request entity too large: limit is {MAX_BODY_BYTES}") from None


def writes_middleware(*, writes: bool) -> Middleware:
    @web.middleware
    async def write_switch(request: web.Request, handler: Handler) -> web.StreamResponse:
        info = request_info(request.method, request.path, dict(request.query))
        if writes or not info.changes_something:
            return await handler(request)
        identity = request.get(IDENTITY)
        user = identity.name if identity is not None else "system:anonymous"
        resource = info.resource + (f"/{info.subresource}" if info.subresource else "")
        verb = "create" if info.subresource in ("exec", "attach") else info.verb
        target = f'{info.resource} "{info.name}"' if info.name else info.resource
        where = f' in the namespace "{info.namespace}"' if info.namespace else ""
        message = (
            f'{target} is forbidden: User "{user}" cannot {verb} resource "{resource}" in API '
            f'group "{info.group}"{where}: {WRITES_DISABLED}'
        )
        audit(request, allowed=False, detail=WRITES_DISABLED, info=info)
        details: dict[str, object] = {"kind": info.resource}
        if info.name:
            details["name"] = info.name
        if info.group:
            details["group"] = info.group
        return status_response(403, message, details=details)

    return write_switch
