"""Container lifecycle hooks: postStart and preStop, with exec, httpGet or sleep.

kubelet's lifecycle handler runner (pkg/kubelet/lifecycle/handlers.go), reduced to what a hook
needs: run the handler once, from the host, and return kubelet's failure message or None. exec
runs inside the container through the Runtime (its namespaces, env and user), httpGet goes from
the host to the pod IP with the prober's HTTP client, sleep just waits. tcpSocket is deprecated
for hooks and kubelet ignores it with a log line; so do we.

The caller bounds the hook: preStop by the termination grace period (its time is then taken off
the grace SIGTERM gets), postStart by the same period, since kubelet gives it no bound at all and
a hung hook would otherwise hold the container in ContainerCreating forever.

``run_hook`` never raises for a failed hook, whatever failed: a runtime that cannot exec, and
also an exception nobody foresaw (logged with its traceback, as a bug), come back as the
failure message, so that the pod worker treats them like any failed hook
(FailedPostStartHook, FailedPreStopHook). Only cancellation passes through.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from minikubelet.api.errors import MinikubeletError
from minikubelet.api.model import Container, LifecycleHandler
from minikubelet.probes.handlers import HTTPGetHandler, HTTPProber, ProbeResult
from minikubelet.runtime.base import ExecResult

log = logging.getLogger(__name__)

ExecFn = Callable[[Sequence[str], float], Awaitable[ExecResult]]


def _go_list(items: Sequence[str]) -> str:
    return "[" + " ".join(items) + "]"


async def run_hook(
    handler: LifecycleHandler,
    *,
    container: Container,
    pod: str,
    pod_ip: str,
    exec_fn: ExecFn,
    http: HTTPProber,
    timeout: float,
) -> str | None:
    """Run one hook; None on success, else kubelet's message (used as the event text).
    ``pod`` is kubelet's format.Pod: ``name_namespace(uid)``."""
    try:
        if handler.exec is not None:
            command = handler.exec.command or []
            try:
                result = await exec_fn(command, timeout)
            except TimeoutError:
                error, output = f"command '{' '.join(command)}' timed out", ""
            except MinikubeletError as exc:
                # The runtime could not exec (the container is gone, the engine refused).
                error, output = str(exc), ""
            else:
                if result.exit_code == 0:
                    return None
                output = result.output.decode(errors="replace")
                error = f"command '{' '.join(command)}' exited with {result.exit_code}: {output}"
            return (
                f"Exec lifecycle hook ({_go_list(command)}) for Container {container.name!r} "
                f"in Pod {pod!r} failed - error: {error}, message: {output!r}"
            ).replace("'", '"')
        if handler.http_get is not None:
            probe = HTTPGetHandler(
                handler.http_get, container=container, pod_ip=pod_ip, timeout=timeout, client=http
            )
            outcome = await probe.probe()
            if outcome.result in (ProbeResult.SUCCESS, ProbeResult.WARNING):
                return None
            return (
                f"HTTP lifecycle hook ({handler.http_get.path}) for Container "
                f'"{container.name}" in Pod "{pod}" failed - error: {outcome.output}'
            )
        if handler.sleep is not None:
            await asyncio.sleep(min(float(handler.sleep.seconds), timeout))
            return None
        if handler.tcp_socket is not None:
            log.warning(
                "container %s: tcpSocket lifecycle handlers are deprecated and not run",
                container.name,
            )
        return None
    except Exception as exc:
        # Not a hook that failed: the machinery around it did (a bug). The hook counts as failed.
        log.error(
            "%s: container %s: running its lifecycle hook failed (a bug)",
            pod,
            container.name,
            exc_info=exc,
        )
        return (
            f'Lifecycle hook for Container "{container.name}" in Pod "{pod}" failed - error: '
            f"internal error: {type(exc).__name__}: {exc}"
        )
