"""The probe results cache: the last *decided* result per (container instance, probe kind).

Kubelet's ``prober/results`` manager, one per pod here. Probe workers write it; the pod worker
reads it (``ProbeManager.is_ready``/``is_started``/``failed_probe``) and learns of changes
through an update queue. A result is keyed by the container *instance* (its ID), never by the
container name: a restarted container starts again from its kind's initial result, and a late
result for an instance that is gone cannot be mistaken for the new one's.

Subscribers hear only about changes (kubelet's ``setInternal`` returns "changed"), so a queue
fed by a readiness probe that keeps succeeding stays empty. The first result set for a new
instance is a change. ``remove`` is silent, as kubelet's is.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass

from minikubelet.probes.handlers import ProbeResult

log = logging.getLogger(__name__)


class ProbeKind(enum.Enum):
    """The probe type; the value is kubelet's probeType.String(), as used in event messages."""

    LIVENESS = "Liveness"
    READINESS = "Readiness"
    STARTUP = "Startup"


@dataclass(frozen=True, slots=True)
class ProbeUpdate:
    container_name: str
    container_id: str  # the instance the result is about (runtime.base.ContainerID)
    kind: ProbeKind
    result: ProbeResult  # SUCCESS, FAILURE or UNKNOWN (startup's initial value); never WARNING


Listener = Callable[[ProbeUpdate], None]


class ResultsCache:
    """(container_id, kind) -> result; notifies listeners and subscribed queues on change."""

    def __init__(self) -> None:
        self._results: dict[tuple[str, ProbeKind], ProbeResult] = {}
        self._listeners: list[Listener] = []
        self._queues: list[asyncio.Queue[ProbeUpdate]] = []

    def get(self, container_id: str, kind: ProbeKind) -> ProbeResult | None:
        return self._results.get((container_id, kind))

    def set(
        self, *, container_name: str, container_id: str, kind: ProbeKind, result: ProbeResult
    ) -> bool:
        """Store result; notify and return True only if it differs from the stored one."""
        key = (container_id, kind)
        if self._results.get(key) is result:
            return False
        self._results[key] = result
        update = ProbeUpdate(container_name, container_id, kind, result)
        for queue in self._queues:
            queue.put_nowait(update)
        for listener in list(self._listeners):
            listener(update)
        return True

    def remove(self, container_id: str, kind: ProbeKind) -> None:
        self._results.pop((container_id, kind), None)

    def subscribe(self) -> asyncio.Queue[ProbeUpdate]:
        """A new unbounded queue that receives every later change (changes are rare)."""
        queue: asyncio.Queue[ProbeUpdate] = asyncio.Queue()
        self._queues.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[ProbeUpdate]) -> None:
        if queue in self._queues:
            self._queues.remove(queue)

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call listener synchronously on every change; returns the function that removes it."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove
