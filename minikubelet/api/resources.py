"""Resource math: QoS class, CPU shares/weight/quota, memory limits and oom_score_adj of a pod.

This module owns the *numbers* kubelet derives from a PodSpec's ``resources``, and nothing
else: no file is read or written here, so every formula is unit-tested on its own and the cgroup
driver (``minikubelet.cgroups``), the status writer (``status.qosClass``) and admission all read
the same values. The integer arithmetic is ported from kubelet, in kubelet's operation order,
because rounding is part of the behaviour users compare against a cluster:

- ``pkg/apis/core/v1/helper/qos/qos.go`` GetPodQOS (init containers count);
- ``pkg/kubelet/cm/helpers_linux.go`` MilliCPUToShares, MilliCPUToQuota, ResourceConfigForPod;
- ``pkg/kubelet/cm/util`` CPUSharesToCPUWeight (v2 weight for kubelet-managed cgroups);
- ``pkg/kubelet/kuberuntime/kuberuntime_container_linux.go`` (a container's own shares use its
  limit when its request is zero);
- ``k8s.io/component-helpers/resource`` PodRequests/PodLimits (sidecars add up, plain init
  containers take the max);
- ``pkg/kubelet/qos/policy.go`` GetContainerOOMScoreAdjust.

Quantities are exact Decimals from ``api.quantity``; CPU is handled in millicores and memory in
bytes, both rounded up as apimachinery's ``MilliValue()``/``Value()`` do. A request that is not
written defaults to the limit (``SetDefaults_Pod``), so callers may pass raw manifests.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from minikubelet.api.model import Container, PodSpec
from minikubelet.api.quantity import milli_value, parse_quantity
from minikubelet.api.quantity import value as int_value

CPU = "cpu"
MEMORY = "memory"

# kubelet cm/helpers_linux.go (limits from the kernel's sched.h)
MIN_SHARES = 2
MAX_SHARES = 262144
SHARES_PER_CPU = 1024
MILLI_CPU_TO_CPU = 1000
QUOTA_PERIOD = 100000  # µs: cpu.max period
MIN_QUOTA_PERIOD = 1000  # µs: the smallest quota the kernel accepts

# kubelet qos/policy.go
GUARANTEED_OOM_SCORE_ADJ = -997
BESTEFFORT_OOM_SCORE_ADJ = 1000

ResourceList = dict[str, Decimal]
"""Resource name -> exact quantity (cores for cpu, bytes for memory)."""


class QOSClass(enum.Enum):
    """status.qosClass; the value is the API string."""

    GUARANTEED = "Guaranteed"
    BURSTABLE = "Burstable"
    BEST_EFFORT = "BestEffort"


# --- quantities ----------------------------------------------------------------------------------


def _parse_list(raw: Mapping[str, object] | None) -> ResourceList:
    return {name: parse_quantity(value) for name, value in (raw or {}).items()}


def container_limits(container: Container) -> ResourceList:
    """The container's limits as quantities."""
    res = container.resources
    return _parse_list(res.limits if res else None)


def container_requests(container: Container) -> ResourceList:
    """The container's requests, each missing one defaulted to its limit (SetDefaults_Pod)."""
    res = container.resources
    if res is None:
        return {}
    requests = _parse_list(res.requests)
    for name, limit in container_limits(container).items():
        requests.setdefault(name, limit)
    return requests


# --- QoS -----------------------------------------------------------------------------------------

_QOS_RESOURCES = (CPU, MEMORY)


def qos_class(spec: PodSpec) -> QOSClass:
    """GetPodQOS: Guaranteed iff every container, init containers included, has cpu and memory
    limits equal to its requests; BestEffort iff no container has any cpu/memory request or
    limit; Burstable otherwise. Zero quantities count as unset."""
    requests: ResourceList = {}
    limits: ResourceList = {}
    guaranteed = True
    for container in [*spec.containers, *(spec.init_containers or [])]:
        for name, quantity in container_requests(container).items():
            if name in _QOS_RESOURCES and quantity > 0:
                requests[name] = requests.get(name, Decimal(0)) + quantity
        found: set[str] = set()
        for name, quantity in container_limits(container).items():
            if name in _QOS_RESOURCES and quantity > 0:
                found.add(name)
                limits[name] = limits.get(name, Decimal(0)) + quantity
        if not found.issuperset(_QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return QOSClass.BEST_EFFORT
    matching = all(limits.get(name) == req for name, req in requests.items())
    if guaranteed and matching and len(requests) == len(limits):
        return QOSClass.GUARANTEED
    return QOSClass.BURSTABLE


# --- CPU -----------------------------------------------------------------------------------------


def milli_cpu_to_shares(milli_cpu: int) -> int:
    """MilliCPUToShares: cgroup v1 cpu.shares for a CPU request (0 -> 2; capped at 262144)."""
    if milli_cpu == 0:
        return MIN_SHARES
    shares = (milli_cpu * SHARES_PER_CPU) // MILLI_CPU_TO_CPU
    return max(MIN_SHARES, min(shares, MAX_SHARES))


def milli_cpu_to_quota(milli_cpu: int, period: int = QUOTA_PERIOD) -> int:
    """MilliCPUToQuota: CFS quota in µs per ``period`` (0 means no limit; else >= 1000 µs)."""
    if milli_cpu == 0:
        return 0
    quota = (milli_cpu * period) // MILLI_CPU_TO_CPU
    return max(quota, MIN_QUOTA_PERIOD)


def shares_to_weight(shares: int) -> int:
    """CPUSharesToCPUWeight: cgroup v2 cpu.weight (1..10000) for v1 shares (2..262144)."""
    shares = max(MIN_SHARES, min(shares, MAX_SHARES))
    return ((shares - 2) * 9999) // 262142 + 1


def cpu_max(quota: int | None, period: int = QUOTA_PERIOD) -> str:
    """The cpu.max line: ``"<quota> <period>"``, or ``"max <period>"`` without a limit."""
    return f"{quota} {period}" if quota else f"max {period}"


def memory_max(limit_bytes: int | None) -> str:
    """The memory.max line: bytes, or ``"max"`` without a limit."""
    return str(limit_bytes) if limit_bytes else "max"


# --- per container -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContainerResources:
    """What one container's own cgroup gets, and the figures it came from."""

    cpu_request_milli: int  # requests.cpu (defaulted to the limit); 0 when unset
    cpu_limit_milli: int | None  # limits.cpu; None when unset (no throttling)
    memory_request: int  # requests.memory in bytes; 0 when unset
    memory_limit: int | None  # limits.memory in bytes; None when unset
    cpu_shares: int  # cgroup v1 shares: from the request, or the limit when the request is 0
    cpu_weight: int  # cgroup v2 cpu.weight from cpu_shares (kubelet's formula)
    cpu_quota: int | None  # µs per cpu_period; None when there is no cpu limit
    cpu_period: int  # µs; always 100000

    @property
    def cpu_max(self) -> str:
        return cpu_max(self.cpu_quota, self.cpu_period)

    @property
    def memory_max(self) -> str:
        return memory_max(self.memory_limit)


def _positive(quantity: Decimal | None, convert: Callable[[Decimal], int]) -> int | None:
    if quantity is None or quantity <= 0:
        return None
    return convert(quantity)


def container_resources(container: Container) -> ContainerResources:
    requests = container_requests(container)
    limits = container_limits(container)
    cpu_request = _positive(requests.get(CPU), milli_value) or 0
    cpu_limit = _positive(limits.get(CPU), milli_value)
    # kuberuntime_container_linux.go: a zero request with a limit takes its shares from the limit
    shares = milli_cpu_to_shares(cpu_limit if cpu_request == 0 and cpu_limit else cpu_request)
    quota = milli_cpu_to_quota(cpu_limit) if cpu_limit else None
    return ContainerResources(
        cpu_request_milli=cpu_request,
        cpu_limit_milli=cpu_limit,
        memory_request=_positive(requests.get(MEMORY), int_value) or 0,
        memory_limit=_positive(limits.get(MEMORY), int_value),
        cpu_shares=shares,
        cpu_weight=shares_to_weight(shares),
        cpu_quota=quota,
        cpu_period=QUOTA_PERIOD,
    )


def oom_score_adj(spec: PodSpec, container: Container, *, node_memory: int) -> int:
    """GetContainerOOMScoreAdjust: Guaranteed -997, BestEffort 1000, Burstable
    ``1000 - 1000*memRequest/nodeMemory`` clamped to [3, 999]; a sidecar gets no more than the
    regular container with the smallest memory request."""
    qos = qos_class(spec)
    if qos is QOSClass.GUARANTEED:
        return GUARANTEED_OOM_SCORE_ADJ
    if qos is QOSClass.BEST_EFFORT:
        return BESTEFFORT_OOM_SCORE_ADJ
    if node_memory <= 0:
        raise ValueError(f"node_memory must be positive, got {node_memory}")

    def request_bytes(c: Container) -> int:
        return _positive(container_requests(c).get(MEMORY), int_value) or 0

    adjust = 1000 - (1000 * request_bytes(container)) // node_memory
    is_sidecar = container.is_sidecar and any(
        c.name == container.name for c in spec.init_containers or []
    )
    if is_sidecar and spec.containers:
        smallest = min(request_bytes(c) for c in spec.containers)
        adjust = min(adjust, 1000 - (1000 * smallest) // node_memory)
    if adjust < 1000 + GUARANTEED_OOM_SCORE_ADJ:
        return 1000 + GUARANTEED_OOM_SCORE_ADJ
    if adjust == BESTEFFORT_OOM_SCORE_ADJ:
        return adjust - 1
    return adjust


# --- per pod -------------------------------------------------------------------------------------


def _add(total: ResourceList, more: Mapping[str, Decimal]) -> None:
    for name, quantity in more.items():
        total[name] = total.get(name, Decimal(0)) + quantity


def _max(total: ResourceList, more: Mapping[str, Decimal]) -> None:
    for name, quantity in more.items():
        if name not in total or quantity > total[name]:
            total[name] = quantity


def _aggregate(
    spec: PodSpec,
    per_container: Callable[[Container], ResourceList],
    visit: Callable[[ResourceList], None] | None = None,
) -> ResourceList:
    """component-helpers aggregateContainerResources: regular containers and sidecars add up;
    each plain init container runs beside the sidecars declared before it, and the pod needs the
    largest of those moments. ``visit`` sees each container's effective list (kubelet's
    ContainerFn), which ResourceConfigForPod uses to spot a container without a limit."""
    result: ResourceList = {}
    for container in spec.containers:
        own = per_container(container)
        if visit:
            visit(own)
        _add(result, own)
    sidecars: ResourceList = {}
    init_peak: ResourceList = {}
    for container in spec.init_containers or []:
        own = per_container(container)
        if container.is_sidecar:
            _add(result, own)
            _add(sidecars, own)
            effective = dict(sidecars)
        else:
            effective = dict(own)
            _add(effective, sidecars)
        if visit:
            visit(effective)
        _max(init_peak, effective)
    _max(result, init_peak)
    return result


def pod_requests(spec: PodSpec) -> ResourceList:
    """PodRequests: what admission must find free on the node (no pod-level resources here)."""
    return _aggregate(spec, container_requests)


def pod_limits(spec: PodSpec) -> ResourceList:
    """PodLimits: the pod's aggregated limits (a resource is absent when nobody limits it)."""
    return _aggregate(spec, container_limits)


@dataclass(frozen=True, slots=True)
class PodResourceConfig:
    """ResourceConfigForPod: what the pod's cgroup gets. None = leave the kernel default."""

    qos: QOSClass
    cpu_shares: int  # cgroup v1 shares from the summed requests (BestEffort: 2)
    cpu_quota: int | None  # µs per cpu_period; None = no pod-level CPU limit
    cpu_period: int | None  # µs; set together with cpu_quota
    memory_limit: int | None  # bytes; None = no pod-level memory limit

    @property
    def cpu_weight(self) -> int:
        return shares_to_weight(self.cpu_shares)

    @property
    def cpu_max(self) -> str | None:
        """The cpu.max line, or None when the pod gets no CPU limit line at all."""
        if self.cpu_period is None:
            return None
        return cpu_max(self.cpu_quota, self.cpu_period)

    @property
    def memory_max(self) -> str | None:
        """The memory.max line, or None when the pod gets no memory limit line at all."""
        if self.memory_limit is None:
            return None
        return memory_max(self.memory_limit)


def resource_config_for_pod(spec: PodSpec) -> PodResourceConfig:
    """Guaranteed: shares + quota + memory. Burstable: shares, plus the quota (memory) only if
    every container sets a cpu (memory) limit. BestEffort: shares 2."""
    declared = {CPU: True, MEMORY: True}

    def visit(limits: ResourceList) -> None:
        for name in declared:
            if limits.get(name, Decimal(0)) == 0:
                declared[name] = False

    requests = pod_requests(spec)
    limits = _aggregate(spec, container_limits, visit)
    cpu_request = milli_value(requests[CPU]) if CPU in requests else 0
    cpu_limit = milli_value(limits[CPU]) if CPU in limits else 0
    memory_limit = int_value(limits[MEMORY]) if MEMORY in limits else 0
    shares = milli_cpu_to_shares(cpu_request)
    quota = milli_cpu_to_quota(cpu_limit)

    qos = qos_class(spec)
    if qos is QOSClass.GUARANTEED:
        return PodResourceConfig(qos, shares, quota or None, QUOTA_PERIOD, memory_limit or None)
    if qos is QOSClass.BURSTABLE:
        cpu_declared = declared[CPU]
        return PodResourceConfig(
            qos,
            shares,
            (quota or None) if cpu_declared else None,
            QUOTA_PERIOD if cpu_declared else None,
            (memory_limit or None) if declared[MEMORY] else None,
        )
    return PodResourceConfig(qos, MIN_SHARES, None, None, None)
