"""Node admission: a pod runs only if its requests fit in what the node has left.

On a cluster the scheduler does this (NodeResourcesFit) and kubelet checks it again on admit.
With one node and no scheduler, minikubelet does both here: allocatable is the node's capacity
minus the configured reservations, and a pod whose requests (kubelet's PodRequests: the larger
of the biggest init container and the sum of the regular containers and sidecars) do not fit
beside the pods already admitted stays Pending, with the scheduler's words:
``0/1 nodes are available: 1 Insufficient cpu.`` It is admitted, in arrival order, as soon as
a pod that holds resources stops or finishes (waiters are woken in arrival order and each
takes what fits).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal

from minikubelet.api.model import PodSpec
from minikubelet.api.resources import pod_requests

ADMITTED_RESOURCES = ("cpu", "memory")


def unschedulable_message(missing: list[str]) -> str:
    """The scheduler's FailedScheduling text for a one-node cluster."""
    reasons = ", ".join(f"1 Insufficient {name}" for name in sorted(missing))
    return f"0/1 nodes are available: {reasons}."


class Admission:
    def __init__(self, allocatable: Mapping[str, Decimal]) -> None:
        self.allocatable = dict(allocatable)
        self._admitted: dict[str, dict[str, Decimal]] = {}  # uid -> its requests
        self._waiting: dict[str, Callable[[], None]] = {}  # uid -> wake-up, in arrival order

    def in_use(self) -> dict[str, Decimal]:
        used = dict.fromkeys(ADMITTED_RESOURCES, Decimal(0))
        for requests in self._admitted.values():
            for name in ADMITTED_RESOURCES:
                used[name] += requests.get(name, Decimal(0))
        return used

    def try_admit(self, uid: str, spec: PodSpec, *, wake: Callable[[], None]) -> list[str]:
        """Admit the pod and return [], or return the resources it lacks and remember to
        ``wake`` it when something is released."""
        if uid in self._admitted:
            return []
        requests = pod_requests(spec)
        used = self.in_use()
        missing = [
            name
            for name in ADMITTED_RESOURCES
            if requests.get(name, Decimal(0)) > 0
            and used[name] + requests[name] > self.allocatable.get(name, Decimal(0))
        ]
        if missing:
            self._waiting.setdefault(uid, wake)
            return missing
        self._waiting.pop(uid, None)
        self._admitted[uid] = {k: requests.get(k, Decimal(0)) for k in ADMITTED_RESOURCES}
        return []

    def release(self, uid: str) -> None:
        """The pod stopped or finished: its requests are free again."""
        self._waiting.pop(uid, None)
        if self._admitted.pop(uid, None) is None:
            return
        for wake in list(self._waiting.values()):
            wake()
