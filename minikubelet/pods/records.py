"""What the pod worker knows about each container, and how that reads as a v1 ContainerStatus.

A ContainerRecord spans all instances of one container of one pod: the current instance (or the
last one), the exit before it (status.lastState), the restart count, and why it waits. The worker
changes records; this module only turns them into API status and back (a status left by a
previous daemon seeds the records of the next one), so both directions live side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from minikubelet.api.model import (
    Container,
    ContainerState,
    ContainerStateRunning,
    ContainerStateTerminated,
    ContainerStateWaiting,
    ContainerStatus,
)
from minikubelet.runtime.base import (
    UNKNOWN_EXIT_CODE,
    UNKNOWN_MESSAGE,
    ContainerExit,
    ContainerID,
    ContainerKind,
    ExitReason,
    RecoveredContainer,
)


@dataclass(slots=True)
class ContainerRecord:
    """What the worker knows about one container of the pod (all its instances)."""

    spec: Container
    kind: ContainerKind
    field_path: str  # for events: spec.containers{name} / spec.initContainers{name}
    instances: int = 0  # instances started so far; restartCount = instances - 1
    container_id: ContainerID | None = None  # the current or most recent instance
    running: bool = False  # the current instance is alive
    started_at: datetime | None = None  # when the current instance started
    exit: ContainerExit | None = None  # the current instance's exit, once it ended
    last_exit: ContainerExit | None = None  # the instance before that (status.lastState)
    attempt_at: float | None = None  # loop time of the last failed attempt or exit (backoff)
    waiting_reason: str | None = None  # why it is not running: CrashLoopBackOff, ...
    waiting_message: str | None = None
    backoff_reported: bool = False  # the BackOff event for the current wait was recorded
    ready: bool = False  # readiness (no probe: ready while running)
    started: bool = False  # startup passed (no probe: started while running)
    killing: bool = False  # a stop of the current instance is in flight

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def restart_count(self) -> int:
        return max(0, self.instances - 1)

    @property
    def succeeded(self) -> bool:
        return self.exit is not None and self.exit.exit_code == 0 and not self.running


def should_restart(policy: str, exit_code: int) -> bool:
    """kubelet's ShouldContainerBeRestarted for a container that has run and exited."""
    if policy == "Never":
        return False
    return not (policy == "OnFailure" and exit_code == 0)


def _terminated(exit: ContainerExit, container_id: str | None) -> ContainerStateTerminated:
    return ContainerStateTerminated(
        exit_code=exit.exit_code,
        signal=exit.signal,
        reason=exit.reason.value,
        message=exit.message,
        started_at=exit.started_at.replace(microsecond=0),
        finished_at=exit.finished_at.replace(microsecond=0),
        container_id=container_id,
    )


def container_status(rec: ContainerRecord, *, restarting: bool) -> ContainerStatus:
    """The record as kubelet reports it. ``restarting``: it exited and will run again, so it
    shows as Waiting (with the exit as lastState) rather than Terminated."""
    cid = rec.container_id
    last = ContainerState()
    if rec.running:
        state = ContainerState(running=ContainerStateRunning(started_at=rec.started_at))
        if rec.last_exit is not None:
            last = ContainerState(terminated=_terminated(rec.last_exit, None))
    elif rec.waiting_reason is not None or restarting:
        state = ContainerState(
            waiting=ContainerStateWaiting(
                reason=rec.waiting_reason or "ContainerCreating",
                message=rec.waiting_message,
            )
        )
        if rec.exit is not None:
            last = ContainerState(terminated=_terminated(rec.exit, cid))
    elif rec.exit is not None:
        state = ContainerState(terminated=_terminated(rec.exit, cid))
        if rec.last_exit is not None:
            last = ContainerState(terminated=_terminated(rec.last_exit, None))
    else:
        state = ContainerState(waiting=ContainerStateWaiting(reason="ContainerCreating"))
    return ContainerStatus(
        name=rec.name,
        state=state,
        last_state=last,
        ready=rec.ready and rec.running,
        restart_count=rec.restart_count,
        image=rec.spec.image or "",
        image_id="",
        container_id=cid,
        started=rec.started and rec.running,
    )


def _exit_reason(reason: str | None) -> ExitReason:
    for candidate in ExitReason:
        if candidate.value == reason:
            return candidate
    return ExitReason.ERROR


def restore_record(rec: ContainerRecord, status: ContainerStatus, *, finished: bool) -> None:
    """Seed a record from the status a previous daemon left. Its instances were stopped with
    that daemon: the count carries on, and the final exit becomes lastState (or, for a pod that
    had ``finished``, stays the container's state)."""
    final = status.state.terminated or status.last_state.terminated
    if status.state.running is None and final is None:
        return  # it never ran
    rec.instances = status.restart_count + 1
    if final is None or final.finished_at is None:
        return
    exit = ContainerExit(
        exit_code=final.exit_code,
        signal=final.signal,
        reason=_exit_reason(final.reason),
        message=final.message,
        started_at=final.started_at or final.finished_at,
        finished_at=final.finished_at,
    )
    if finished:
        rec.exit = exit
        rec.waiting_reason = None
    else:
        rec.last_exit = exit


def adopt_record(
    rec: ContainerRecord, latest: RecoveredContainer, previous: RecoveredContainer | None
) -> None:
    """Carry a record on from the instances the runtime recovered (they are more recent than
    any status a previous daemon persisted): the latest is running (adopted) or has ended;
    the exit of the one before it is lastState. The restart count never goes back."""
    rec.instances = max(rec.instances, latest.restart_count + 1)
    rec.container_id = latest.container_id
    rec.started_at = latest.started_at
    if previous is not None and previous.exit is not None:
        rec.last_exit = previous.exit
    rec.waiting_reason = rec.waiting_message = None
    rec.killing = False
    if latest.exit is None:
        # Running, adopted: the same process as before the restart.
        rec.running = True
        rec.exit = None
    else:
        rec.running = False
        rec.exit = latest.exit


def vanished(started_at: datetime | None, now: datetime) -> ContainerExit:
    """kubelet's lastState for a container that was running and of which nothing is left."""
    return ContainerExit(
        exit_code=UNKNOWN_EXIT_CODE,
        signal=None,
        reason=ExitReason.UNKNOWN,
        message=UNKNOWN_MESSAGE,
        started_at=started_at or now,
        finished_at=now,
    )
