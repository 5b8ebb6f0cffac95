"""Errors as the Kubernetes API server writes them: a v1 ``Status`` object.

Every failure the API answers (a bad query, an unknown path, a missing token, a refused write)
is a ``kind: Status`` body with the HTTP code, a ``reason`` from apimachinery's
``StatusReason`` list and, where the API server gives them, ``details`` naming the object. That
is what lets kubectl print ``Error from server (NotFound): pods "x" not found`` or ``error: You
must be logged in to the server (Unauthorized)`` exactly as it does against a cluster.

Handlers raise ``ApiError``; the ``status_errors`` middleware turns it, and aiohttp's own
404/405/413, into the Status response.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiohttp import web

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "AlreadyExists",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}


def status_object(
    code: int,
    message: str,
    *,
    reason: str | None = None,
    details: dict[str, object] | None = None,
) -> dict[str, object]:
    """A v1 Status with ``status: Failure``."""
    body: dict[str, object] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason or REASONS.get(code, "Unknown"),
    }
    if details:
        body["details"] = details
    body["code"] = code
    return body


def status_response(
    code: int,
    message: str,
    *,
    reason: str | None = None,
    details: dict[str, object] | None = None,
) -> web.Response:
    """The Status as a response; 429 carries ``Retry-After`` as the API server's does."""
    headers = {"Retry-After": "1"} if code == 429 else None
    return web.Response(
        status=code,
        text=json.dumps(status_object(code, message, reason=reason, details=details)) + "\n",
        content_type="application/json",
        headers=headers,
    )


class ApiError(Exception):
    """Raised by a handler: answered as a v1 Status with this code, message and details."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.details = details

    def response(self) -> web.Response:
        return status_response(self.code, self.message, reason=self.reason, details=self.details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(resource: str, name: str, *, group: str = "") -> ApiError:
    """``pods "x" not found``, with the details kubectl reads."""
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(
        404,
        f'{qualified} "{name}" not found',
        details={"name": name, "kind": resource, **({"group": group} if group else {})},
    )


MAX_BODY_BYTES = 3 * 1024 * 1024  # the API server's limit on a request body

NOT_FOUND_MESSAGE = "the server could not find the requested resource"
METHOD_NOT_ALLOWED_MESSAGE = "the server does not allow this method on the requested resource"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def status_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """ApiError, and aiohttp's plain-text 404/405/413, become v1 Status objects."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPNotFound:
        return status_response(404, NOT_FOUND_MESSAGE)
    except web.HTTPMethodNotAllowed:
        return status_response(405, METHOD_NOT_ALLOWED_MESSAGE)
    except web.HTTPRequestEntityTooLarge:
        return status_response(413, f"Request entity too large: limit is {MAX_BODY_BYTES}")
