"""Pod phase and conditions from container statuses: kubelet's getPhase and status/generate.go.

Pure functions of the spec and the container statuses the pod worker keeps, so that each rule
can be tested on its own and the worker stays a state machine, not a report writer.
Sources: kubernetes pkg/kubelet/kubelet_pods.go (getPhase), pkg/kubelet/status/generate.go.
"""

from __future__ import annotations

from datetime import datetime

from minikubelet.api.model import (
    ConditionStatus,
    ContainerStatus,
    PodCondition,
    PodPhase,
    PodSpec,
)


def _by_name(statuses: list[ContainerStatus]) -> dict[str, ContainerStatus]:
    return {s.name: s for s in statuses}


def _ready(status: ContainerStatus | None) -> bool:
    return status is not None and status.ready


def has_any_regular_container_started(spec: PodSpec, statuses: list[ContainerStatus]) -> bool:
    by_name = _by_name(statuses)
    for c in spec.containers:
        s = by_name.get(c.name)
        if s is not None and (
            s.state.running is not None
            or s.state.terminated is not None
            or s.last_state.terminated is not None
        ):
            return True
    return False


def get_phase(
    spec: PodSpec,
    init_statuses: list[ContainerStatus],
    statuses: list[ContainerStatus],
) -> PodPhase:
    """kubelet's getPhase, sidecar-aware (podIsTerminal=false: static pods never get it)."""
    inits = _by_name(init_statuses)
    pending_regular_init = 0
    pending_restartable_init = 0
    failed_initialization = 0

    for c in spec.init_containers or []:
        if c.is_sidecar:
            continue
        s = inits.get(c.name)
        if s is None or s.state.running is not None:
            pending_regular_init += 1
        elif s.state.terminated is not None:
            if s.state.terminated.exit_code != 0:
                failed_initialization += 1
        elif s.state.waiting is not None:
            if s.last_state.terminated is not None:
                if s.last_state.terminated.exit_code != 0:
                    failed_initialization += 1
            else:
                pending_regular_init += 1
        else:
            pending_regular_init += 1

    unknown = running = waiting = stopped = succeeded = 0
    for c in spec.init_containers or []:
        if not c.is_sidecar:
            continue
        s = inits.get(c.name)
        if s is None:
            unknown += 1
        elif s.state.running is not None:
            if not s.started:
                pending_restartable_init += 1
            running += 1
        elif s.state.terminated is not None:
            pass  # terminated sidecars do not count towards the phase
        elif s.state.waiting is not None:
            if s.last_state.terminated is None:
                pending_restartable_init += 1
            waiting += 1
        else:
            pending_restartable_init += 1
            unknown += 1

    regular = _by_name(statuses)
    for c in spec.containers:
        s = regular.get(c.name)
        if s is None:
            unknown += 1
        elif s.state.running is not None:
            running += 1
        elif s.state.terminated is not None:
            stopped += 1
            if s.state.terminated.exit_code == 0:
                succeeded += 1
        elif s.state.waiting is not None:
            if s.last_state.terminated is not None:
                stopped += 1
            else:
                waiting += 1
        else:
            unknown += 1

    if failed_initialization > 0 and spec.restart_policy == "Never":
        return "Failed"
    if (
        pending_regular_init > 0
        or (pending_restartable_init > 0 and not has_any_regular_container_started(spec, statuses))
        or waiting > 0
    ):
        return "Pending"
    if running > 0 and unknown == 0:
        return "Running"
    if running == 0 and stopped > 0 and unknown == 0:
        if spec.restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if spec.restart_policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _condition(
    type_: str,
    ok: bool,
    *,
    previous: dict[str, PodCondition],
    now: datetime,
    reason: str | None = None,
    message: str | None = None,
) -> PodCondition:
    status: ConditionStatus = "True" if ok else "False"
    old = previous.get(type_)
    since = old.last_transition_time if old is not None and old.status == status else now
    return PodCondition(
        type=type_,
        status=status,
        last_transition_time=since,
        reason=None if ok else reason,
        message=None if ok else message,
    )


def get_conditions(
    *,
    spec: PodSpec,
    phase: PodPhase,
    init_statuses: list[ContainerStatus],
    statuses: list[ContainerStatus],
    sandbox_ready: bool,
    scheduled: tuple[bool, str | None, str | None] = (True, None, None),
    previous: list[PodCondition],
    now: datetime,
) -> list[PodCondition]:
    """PodReadyToStartContainers, Initialized, Ready, ContainersReady, PodScheduled; a
    condition's lastTransitionTime only moves when its status changes."""
    prev = {c.type: c for c in previous}
    inits = _by_name(init_statuses)

    incomplete_init = []
    for c in spec.init_containers or []:
        s = inits.get(c.name)
        if c.is_sidecar:
            done = s is not None and s.state.running is not None and bool(s.started)
            done = done or has_any_regular_container_started(spec, statuses)
        else:
            done = (
                s is not None
                and s.state.terminated is not None
                and (s.state.terminated.exit_code == 0)
            )
            done = done or has_any_regular_container_started(spec, statuses)
        if not done:
            incomplete_init.append(c.name)
    initialized = not incomplete_init

    regular = _by_name(statuses)
    unready = [
        c.name for c in spec.init_containers or [] if c.is_sidecar and not _ready(inits.get(c.name))
    ]
    unready += [c.name for c in spec.containers if not _ready(regular.get(c.name))]
    completed = phase == "Succeeded"
    ready = not unready and not completed and phase != "Failed"
    not_ready_reason = "PodCompleted" if completed else "ContainersNotReady"
    not_ready_message = (
        None if completed else f"containers with unready status: [{' '.join(unready)}]"
    )

    scheduled_ok, sched_reason, sched_message = scheduled
    return [
        _condition("PodReadyToStartContainers", sandbox_ready, previous=prev, now=now),
        _condition(
            "Initialized",
            initialized,
            previous=prev,
            now=now,
            reason="ContainersNotInitialized",
            message=f"containers with incomplete status: [{' '.join(incomplete_init)}]",
        ),
        _condition(
            "Ready",
            ready,
            previous=prev,
            now=now,
            reason=not_ready_reason,
            message=not_ready_message,
        ),
        _condition(
            "ContainersReady",
            ready,
            previous=prev,
            now=now,
            reason=not_ready_reason,
            message=not_ready_message,
        ),
        _condition(
            "PodScheduled",
            scheduled_ok,
            previous=prev,
            now=now,
            reason=sched_reason,
            message=sched_message,
        ),
    ]
