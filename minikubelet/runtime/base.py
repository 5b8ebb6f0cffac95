"""The runtime seam: the one boundary between pod logic and a container engine.

The pod worker decides *what* should run and *when*; a Runtime only does it. Every
implementation is a real engine (host processes, podman, containerd); the only fake is
``tests/fakes.py:FakeRuntime``, for unit tests of the pod worker's decisions.

The shape follows the CRI loosely: a pod sandbox (shared volumes, /tmp, network identity) is
started once per pod UID, containers are started inside it one instance at a time, and each
instance is waited on, stopped, exec'd into and finally forgotten. Everything a runtime needs is
resolved before the call: env is expanded, ``$(VAR)`` is substituted in command and args, and the
restart count (which names the log file and the labels) is given.

Restart recovery: a daemon that dies leaves its containers running, and the next one
takes them over. A runtime finds what an earlier daemon left when it is entered; each pod
worker then calls ``recover_pod`` once, after ``start_pod``, and from then on the running
instances it got back are driven like the ones it starts (wait, stop, exec, logs). What nobody
claims is stopped and removed by ``clean_up_pods``, which the daemon calls once it knows the
wanted pods. What an engine must provide for it is in ``recover_pod``'s docstring and in
docs/recovery.md.

Errors: a runtime raises ``api.errors.RuntimeFailure`` subclasses and nothing else on purpose;
the worker turns them into status, an event and a backoff.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NewType, Protocol

from minikubelet.api.model import Container, PodSpec

ContainerID = NewType("ContainerID", str)
"""An engine's identifier for one container instance, as ``<runtime>://<id>`` in status."""


class ContainerKind(enum.Enum):
    INIT = "init"
    SIDECAR = "sidecar"  # an init container with restartPolicy: Always
    REGULAR = "regular"


@dataclass(frozen=True, slots=True)
class PodSandboxConfig:
    uid: str  # the static pod's UID (changes with the manifest's content)
    name: str  # the pod's full name: <metadata.name>-<node name>
    namespace: str
    spec: PodSpec  # defaulted and validated


@dataclass(frozen=True, slots=True)
class PodSandbox:
    pod_ip: str  # the address probes reach the pod on, and status.podIP
    cgroup_path: str | None = None  # the pod's cgroup directory, when limits are enforced


@dataclass(frozen=True, slots=True)
class ContainerConfig:
    container: Container  # the spec: image, ports, resources, mounts, securityContext
    kind: ContainerKind
    command: tuple[str, ...]  # spec command after $(VAR) expansion; empty if unset
    args: tuple[str, ...]  # spec args after $(VAR) expansion; empty if unset
    env: tuple[tuple[str, str], ...]  # resolved, in kubelet's order
    restart_count: int  # 0 for the first instance; names its log file and labels


@dataclass(frozen=True, slots=True)
class StartedContainer:
    container_id: ContainerID
    started_at: datetime


class ExitReason(enum.Enum):
    """The terminated reason a runtime reports (containerd's words)."""

    COMPLETED = "Completed"  # exit code 0
    ERROR = "Error"  # non-zero exit or killed by a signal
    OOM_KILLED = "OOMKilled"  # the kernel's OOM killer ended it
    START_ERROR = "StartError"  # the process never ran (exit code 128)
    UNKNOWN = "ContainerStatusUnknown"  # it is gone, and how it ended cannot be known (137)


UNKNOWN_EXIT_CODE = 137
UNKNOWN_MESSAGE = (
    "The container could not be located when the pod was deleted.  The container used to be Running"
)
"""kubelet's lastState for a container that was running and is gone without a trace
(kubelet_pods.go, convertToAPIContainerStatuses; the two spaces are kubelet's)."""


@dataclass(frozen=True, slots=True)
class ContainerExit:
    exit_code: int  # 128+N when killed by signal N, as a shell reports it
    signal: int | None  # the killing signal, if any
    reason: ExitReason
    message: str | None  # e.g. the start error's text
    started_at: datetime
    finished_at: datetime


@dataclass(frozen=True, slots=True)
class RecoveredContainer:
    """One container instance an earlier daemon left for a pod, as ``recover_pod`` finds it."""

    name: str  # the container's name in the spec
    container_id: ContainerID
    restart_count: int  # the instance's restart count (its index: 0 for the first one)
    started_at: datetime
    exit: ContainerExit | None  # None: running, and adopted; else how it ended


@dataclass(frozen=True, slots=True)
class ExecResult:
    exit_code: int
    output: bytes  # stdout and stderr interleaved, at most the caller's limit


class Runtime(Protocol):
    """A container engine, as the pod worker and the prober see it."""

    @property
    def name(self) -> str:
        """The runtimeClassName that selects this runtime: process, podman or containerd."""
        ...

    async def start_pod(self, pod: PodSandboxConfig) -> PodSandbox:
        """Create (or find) the pod's sandbox: volumes, private /tmp, network identity."""
        ...

    async def stop_pod(self, pod: PodSandboxConfig) -> None:
        """Remove everything the sandbox owns. Its containers have already been stopped."""
        ...

    async def start_container(
        self, pod: PodSandboxConfig, config: ContainerConfig
    ) -> StartedContainer:
        """Start one instance. Raises ContainerConfigError or StartFailure."""
        ...

    async def wait_container(self, container_id: ContainerID) -> ContainerExit:
        """Wait until the instance has exited and every process it left is gone."""
        ...

    async def stop_container(self, container_id: ContainerID, *, grace_seconds: float) -> None:
        """SIGTERM (to the whole container), then SIGKILL after grace_seconds; returns when dead."""
        ...

    async def remove_container(self, container_id: ContainerID) -> None:
        """Forget an exited instance. Its logs stay until the pod is stopped."""
        ...

    async def exec_in_container(
        self,
        container_id: ContainerID,
        command: Sequence[str],
        *,
        timeout: float,
        output_limit: int = 10 * 1024,
    ) -> ExecResult:
        """Run a command in the container's context. Raises TimeoutError after timeout."""
        ...

    async def recover_pod(self, pod: PodSandboxConfig) -> Sequence[RecoveredContainer]:
        """The instances that earlier daemons left for this pod (same UID), after ``start_pod``;
        the first call claims them, a later one returns nothing.

        What an engine must give back, per container of the pod: its latest instance, and the
        one before it when it knows it (its exit becomes ``lastState``), oldest first. A running
        instance is *adopted*: identified beyond doubt (never by a pid or name that could have
        been reused) and from then on served by ``wait_container`` (which reports its real
        exit when it ends), ``stop_container``, ``exec_in_container`` and ``logs``, exactly as
        an instance this runtime started; it is never started again. An instance that ended
        while no daemon watched reports its exit code and finish time where they can be known,
        else ``ExitReason.UNKNOWN`` with ``UNKNOWN_EXIT_CODE`` and ``UNKNOWN_MESSAGE``. An
        engine that keeps nothing across restarts returns []."""
        ...

    async def clean_up_pods(self, keep: Collection[str]) -> None:
        """Stop and remove what earlier daemons left for pods whose UID is not in ``keep``
        (removed or changed while no daemon ran): SIGTERM, SIGKILL after the pod's grace
        period, then everything the sandbox owned. Called once, when the wanted pods are
        known; pods being recovered are in ``keep``."""
        ...

    def logs(
        self,
        pod: PodSandboxConfig,
        container_name: str,
        *,
        restart_count: int,
        previous: bool = False,
        tail_lines: int | None = None,
        follow: bool = False,
    ) -> AsyncIterator[bytes]:
        """The instance's output (restart_count is the current one; previous means the one
        before). Raises LookupError when there is no such log."""
        ...
