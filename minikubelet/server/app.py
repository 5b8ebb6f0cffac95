"""The HTTP API: kubelet's read-only endpoints and the Kubernetes API subset kubectl uses.

``make_app`` assembles one aiohttp application from a module per concern:

- ``kubelet_routes``: ``/healthz``, ``/pods``, ``/events``, ``/containerLogs`` (kubelet's port);
- ``discovery``: ``/api``, ``/api/v1``, ``/apis``, ``/version``, ``/openapi/v3``;
- ``core_pods``, ``core_events``, ``node``: pods (list, get, watch, log), events and the Node,
  as JSON or as server-side printed Tables (``tables``).

Every request passes the same layers, outermost first: errors become v1 Status objects
(``errors``); a bearer token is required everywhere but ``/healthz`` and names the caller
(``auth``); bodies over 3 MiB are refused; writes and exec sessions are refused unless
``api.writes`` is on, and audited either way (``policy``, ``audit``). Long-running requests
count against per-client limits (``limits``); the connection limit and TLS are the
listener's (``listener``).

Routes that change something (the write verbs and ``pods/exec``) plug in here: their module
gets the feed, the settings and the audit hook from the ``app[...]`` keys below, and registers
its routes; the write switch in front of them already applies.

Handlers read the status store, the event recorder and a log source the daemon wires to the
right runtime; nothing here decides anything about pods.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from minikubelet.server import core_events, core_pods, discovery, kubelet_routes, node
from minikubelet.server.auth import Authenticator, auth_middleware
from minikubelet.server.errors import MAX_BODY_BYTES, status_errors
from minikubelet.server.feed import PodFeed
from minikubelet.server.kubelet_routes import HealthCheck, health_report
from minikubelet.server.limits import PerClientLimit
from minikubelet.server.listener import IDLE_TIMEOUT, MAX_CONNECTIONS, Server, serve, tls_context
from minikubelet.server.logstream import LogSource
from minikubelet.server.policy import body_limit_middleware, writes_middleware
from minikubelet.status.events import EventRecorder
from minikubelet.status.store import StatusStore

__all__ = [
    "IDLE_TIMEOUT",
    "MAX_CONNECTIONS",
    "ApiSettings",
    "HealthCheck",
    "LogSource",
    "Server",
    "make_app",
    "serve",
    "tls_context",
]

MAX_FOLLOWS_PER_CLIENT = 100  # follow=true log streams per peer address (api.maxFollowsPerClient)
MAX_WATCHES_PER_CLIENT = 100  # watches per peer address (api.maxWatchesPerClient)


@dataclass(frozen=True, slots=True)
class ApiSettings:
    writes: bool = False  # api.writes: the write verbs and exec are served
    max_follows_per_client: int = MAX_FOLLOWS_PER_CLIENT
    max_watches_per_client: int = MAX_WATCHES_PER_CLIENT
    max_body_bytes: int = MAX_BODY_BYTES


SETTINGS = web.AppKey("settings", ApiSettings)
FEED = web.AppKey("feed", PodFeed)
STORE = web.AppKey("store", StatusStore)
EVENTS = web.AppKey("events", EventRecorder)


def make_app(
    *,
    store: StatusStore,
    events: EventRecorder,
    logs: LogSource,
    tokens: Mapping[str, str],
    health: Callable[[], list[HealthCheck]] | None = None,
    node_info: node.NodeInfo | None = None,
    settings: ApiSettings | None = None,
) -> web.Application:
    """The aiohttp application. ``tokens`` maps each accepted bearer token to its name."""
    settings = settings or ApiSettings()
    checks: Callable[[], list[HealthCheck]] = health or (lambda: [])
    app = web.Application(
        middlewares=[
            status_errors,
            auth_middleware(Authenticator(tokens)),
            body_limit_middleware(settings.max_body_bytes),
            writes_middleware(writes=settings.writes),
        ],
        client_max_size=settings.max_body_bytes,
    )
    feed = PodFeed(store)
    app[SETTINGS] = settings
    app[FEED] = feed
    app[STORE] = store
    app[EVENTS] = events
    follows = PerClientLimit(
        what="follow=true streams",
        limit=settings.max_follows_per_client,
        setting="api.maxFollowsPerClient",
    )
    watches = PerClientLimit(
        what="watches", limit=settings.max_watches_per_client, setting="api.maxWatchesPerClient"
    )

    def rv() -> int:
        return feed.resource_version

    kubelet_routes.add_routes(
        app, store=store, events=events, logs=logs, health=checks, follows=follows
    )
    discovery.add_routes(
        app,
        resources_=discovery.core_resources(writes=settings.writes),
        openapi=discovery.OpenAPI.load(),
    )
    core_pods.add_routes(app, feed=feed, logs=logs, watches=watches, follows=follows)
    core_events.add_routes(app, events=events, resource_version=rv)
    if node_info is not None:

        def node_health() -> tuple[bool, str]:
            ok, text = health_report(checks())
            failing = "; ".join(line[3:] for line in text.splitlines() if line.startswith("[-]"))
            return ok, failing

        node.add_routes(app, node=node_info, health=node_health, resource_version=rv)
    return app
