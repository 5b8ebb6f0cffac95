"""Who is asking: a bearer token on every request but ``/healthz``.

The API is the node's root (it serves every pod's env, secrets included, and with writes on it
runs commands), so it answers nobody without a token. The daemon makes one on first start: 32
random bytes, URL-safe, in ``<state dir>/token`` (mode 0600; see ``private_files``). Clients
send ``Authorization: Bearer <token>``, as kubectl does with the token of its kubeconfig.

Each token has a name: the identity that the audit log records as "who". The generated token is
``admin``; ``Authenticator`` takes any number of them, so that more (a read-only one, one per
operator) can be added without touching the routes.

A missing or wrong token is answered 401 with the API server's Status (``Unauthorized``), and
the check is the same work whatever was presented: every known token is compared with
``hmac.compare_digest``, with no early exit. Refused requests are logged at most once a minute
per client address, so that a scanner cannot flood the log.
"""

from __future__ import annotations

import base64
import hmac
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from minikubelet.server.errors import Handler, status_response
from minikubelet.server.private_files import PrivateFileError, read_private, write_private
from minikubelet.server.quiet import QuietLog

log = logging.getLogger(__name__)

TOKEN_FILE = "token"  # under the state dir
ADMIN = "admin"  # the name of the generated token
MIN_TOKEN_LENGTH = 32
OPEN_PATHS = frozenset({"/healthz"})  # answered without a token


@dataclass(frozen=True, slots=True)
class Identity:
    """The authenticated caller of one request."""

    name: str  # the token's name: "who" in the audit log
    remote: str  # the client's address


IDENTITY = web.RequestKey("identity", Identity)
"""``request[IDENTITY]``: set on every authenticated request."""


def new_token() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def load_or_create_token(state_dir: Path) -> str:
    """The token in ``<state_dir>/token``, made on first start. Raises PrivateFileError when
    the file is not private to the daemon's user, or holds no usable token."""
    path = state_dir / TOKEN_FILE
    raw = read_private(path)
    if raw is None:
        token = new_token()
        write_private(path, (token + "\n").encode())
        log.info("API token generated in %s", path)
        return token
    token = raw.decode(errors="replace").strip()
    if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
        raise PrivateFileError(
            f"{path}: must hold one token of at least {MIN_TOKEN_LENGTH} characters with no "
            "spaces; delete it to have a new one made"
        )
    return token


def read_token(state_dir: Path) -> str | None:
    """The token for a client on this host: None when the file is absent or not readable."""
    try:
        raw = (state_dir / TOKEN_FILE).read_bytes()
    except OSError:
        return None
    return raw.decode(errors="replace").strip() or None


class Authenticator:
    """Maps a presented bearer token to its name, in constant time."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        """``tokens``: token -> name."""
        if not tokens:
            raise ValueError("an Authenticator needs at least one token")
        self._tokens = [(token.encode(), name) for token, name in tokens.items()]

    def identify(self, authorization: str | None) -> str | None:
        """The token's name for an ``Authorization`` header value, or None."""
        scheme, _, presented = (authorization or "").partition(" ")
        candidate = presented.strip().encode() if scheme.lower() == "bearer" else b""
        found: str | None = None
        for token, name in self._tokens:
            # No early exit: the time taken does not depend on which token (if any) matched.
            if hmac.compare_digest(candidate, token) and found is None:
                found = name
        return found


UNAUTHORIZED = "Unauthorized"


def auth_middleware(authenticator: Authenticator) -> Middleware:
    quiet = QuietLog(60.0, logger=log)

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        remote = request.remote or "unknown"
        if request.path in OPEN_PATHS:
            return await handler(request)
        name = authenticator.identify(request.headers.get("Authorization"))
        if name is None:
            quiet.say(
                f"401 {remote}",
                f"API: refused {request.method} {request.path} from {remote}: no valid token",
            )
            return status_response(401, UNAUTHORIZED)
        request[IDENTITY] = Identity(name=name, remote=remote)
        return await handler(request)

    return authenticate
