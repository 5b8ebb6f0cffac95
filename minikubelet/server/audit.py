"""The audit log: every write and every session in a container, allowed or refused.

One line per request on the ``minikubelet.audit`` logger (the daemon's log, journald under
systemd), in a fixed shape that greps well::

    audit: admin@127.0.0.1 create pods default/web: allowed
    audit: admin@127.0.0.1 create pods/exec default/web-node1: denied: writes are disabled ...

Who is the token's name (``auth.Identity``), what is the verb and the object as the API
server's request info reads them, when is the log line's own time (and ``AuditRecord.when``).
Routes that change something call ``audit()`` once they know the outcome; the write switch
(``policy``) calls it for every write it refuses, so that probing a read-only node leaves a
trace too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from minikubelet.server.auth import IDENTITY
from minikubelet.server.requestinfo import RequestInfo, request_info

log = logging.getLogger("minikubelet.audit")


@dataclass(frozen=True, slots=True)
class AuditRecord:
    when: datetime  # UTC, when the outcome was known
    who: str  # the token's name ("-" if the request had none)
    remote: str  # the client's address
    verb: str  # create, update, patch, delete, ...; exec sessions are "create"
    what: str  # resource[/subresource] namespace/name
    allowed: bool
    detail: str  # why it was refused, or what was done

    def line(self) -> str:
        outcome = "allowed" if self.allowed else "denied"
        detail = f": {self.detail}" if self.detail else ""
        return f"audit: {self.who}@{self.remote} {self.verb} {self.what}: {outcome}{detail}"


def audit(
    request: web.Request,
    *,
    allowed: bool,
    detail: str = "",
    info: RequestInfo | None = None,
) -> AuditRecord:
    """Log one audited request and return the record."""
    if info is None:
        info = request_info(request.method, request.path, dict(request.query))
    identity = request.get(IDENTITY)
    record = AuditRecord(
        when=datetime.now(UTC),
        who=identity.name if identity is not None else "-",
        remote=identity.remote if identity is not None else (request.remote or "unknown"),
        verb="create" if info.subresource in ("exec", "attach") else info.verb,
        what=info.what,
        allowed=allowed,
        detail=detail,
    )
    log.log(logging.INFO if allowed else logging.WARNING, "%s", record.line())
    return record
