"""A runtime class this daemon cannot serve (containerd before its runtime exists, or any name
the daemon was not set up for): every pod on it waits in ContainerCreating with kubelet's
FailedCreatePodSandBox event and the reason, and is retried with backoff. Nothing else is
disturbed, which a KeyError in the daemon would do."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence

from minikubelet.api.errors import RuntimeFailure
from minikubelet.runtime.base import (
    ContainerConfig,
    ContainerExit,
    ContainerID,
    ExecResult,
    PodSandbox,
    PodSandboxConfig,
    RecoveredContainer,
    Runtime,
    StartedContainer,
)


class UnavailableRuntime:
    def __init__(self, name: str, *, reason: str) -> None:
        self._name = name
        self._reason = reason

    @property
    def name(self) -> str:
        return self._name

    def _fail(self) -> RuntimeFailure:
        return RuntimeFailure(f'no runtime for "{self._name}" is configured: {self._reason}')

    async def start_pod(self, pod: PodSandboxConfig) -> PodSandbox:
        raise self._fail()

    async def stop_pod(self, pod: PodSandboxConfig) -> None:
        return None  # nothing was ever started

    async def start_container(
        self, pod: PodSandboxConfig, config: ContainerConfig
    ) -> StartedContainer:
        raise self._fail()

    async def wait_container(self, container_id: ContainerID) -> ContainerExit:
        raise self._fail()

    async def stop_container(self, container_id: ContainerID, *, grace_seconds: float) -> None:
        return None

    async def remove_container(self, container_id: ContainerID) -> None:
        return None

    async def exec_in_container(
        self,
        container_id: ContainerID,
        command: Sequence[str],
        *,
        timeout: float,
        output_limit: int = 10 * 1024,
    ) -> ExecResult:
        raise self._fail()

    async def recover_pod(self, pod: PodSandboxConfig) -> Sequence[RecoveredContainer]:
        return []

    async def clean_up_pods(self, keep: Collection[str]) -> None:
        return None

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
        raise LookupError(str(self._fail()))


_: Runtime = UnavailableRuntime("x", reason="conformance")
