"""The one fake the project allows: a Runtime that records calls and lets a test end a
container with any exit code. It runs no process; pod-worker unit tests use it to watch the
worker's decisions (what it starts, when, and what status it reports).

``faults`` makes an operation raise an exception a real runtime is not supposed to raise (a
TypeError, an OSError...), to test that such a failure stays with its pod: the key is the
operation (``start_pod``, ``stop_pod``, ``start_container``, ``wait_container``,
``stop_container``, ``remove_container``, ``exec_in_container``), optionally with
``:<container name>``; each call raises a fresh copy until the test removes the key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from minikubelet.api.errors import ContainerConfigError, StartFailure
from minikubelet.runtime.base import (
    ContainerConfig,
    ContainerExit,
    ContainerID,
    ContainerKind,
    ExecResult,
    ExitReason,
    PodSandbox,
    PodSandboxConfig,
    RecoveredContainer,
    Runtime,
    StartedContainer,
)


@dataclass
class FakeContainer:
    id: ContainerID
    config: ContainerConfig
    started_at: datetime
    exited: asyncio.Future[ContainerExit]
    stop_grace: float | None = None


@dataclass
class FakeRuntime:
    calls: list[tuple[str, str]] = field(default_factory=list)  # (operation, container name)
    containers: dict[ContainerID, FakeContainer] = field(default_factory=dict)
    fail_config: dict[str, str] = field(default_factory=dict)  # name -> ContainerConfigError
    fail_start: dict[str, str] = field(default_factory=dict)  # name -> StartFailure
    exit_on_stop: int = 143  # what a stopped container exits with (SIGTERM)
    exec_exit: dict[str, int] = field(default_factory=dict)  # name -> exit code of any exec
    execs: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    pods_started: int = 0
    pods_stopped: int = 0
    recovered: dict[str, list[RecoveredContainer]] = field(default_factory=dict)  # by pod UID
    cleaned_up: list[set[str]] = field(default_factory=list)  # the keep sets clean_up_pods got
    faults: dict[str, BaseException] = field(default_factory=dict)  # see the module docstring
    faulted: list[str] = field(default_factory=list)  # operations that raised a fault

    def _fault(self, operation: str, name: str | None = None) -> None:
        for key in (f"{operation}:{name}", operation):
            exc = self.faults.get(key)
            if exc is not None:
                self.faulted.append(key)
                raise type(exc)(*exc.args)

    @property
    def name(self) -> str:
        return "fake"

    async def start_pod(self, pod: PodSandboxConfig) -> PodSandbox:
        self._fault("start_pod")
        self.pods_started += 1
        return PodSandbox(pod_ip="127.0.0.1")

    async def stop_pod(self, pod: PodSandboxConfig) -> None:
        self.pods_stopped += 1
        # What a real runtime's stop_pod does: nothing of the pod runs after it.
        for c in self.containers.values():
            if c.id.startswith(f"fake://{pod.uid}/") and not c.exited.done():
                self._end(c, 137)
        self._fault("stop_pod")

    async def start_container(
        self, pod: PodSandboxConfig, config: ContainerConfig
    ) -> StartedContainer:
        name = config.container.name
        self.calls.append(("start", name))
        self._fault("start_container", name)
        if name in self.fail_config:
            raise ContainerConfigError(self.fail_config[name])
        if name in self.fail_start:
            raise StartFailure(self.fail_start[name])
        cid = ContainerID(f"fake://{pod.uid}/{name}/{config.restart_count}")
        stamp = datetime.now(UTC)
        self.containers[cid] = FakeContainer(
            cid, config, stamp, asyncio.get_running_loop().create_future()
        )
        self.started.set()
        return StartedContainer(cid, stamp)

    def running(self, name: str) -> FakeContainer | None:
        for c in self.containers.values():
            if c.config.container.name == name and not c.exited.done():
                return c
        return None

    def starts(self, name: str) -> int:
        return sum(1 for op, n in self.calls if op == "start" and n == name)

    def exit(self, name: str, code: int, *, reason: ExitReason | None = None) -> None:
        """End the running instance of ``name`` with ``code``."""
        c = self.running(name)
        assert c is not None, f"{name} is not running"
        self._end(c, code, reason=reason)

    def _end(self, c: FakeContainer, code: int, *, reason: ExitReason | None = None) -> None:
        c.exited.set_result(
            ContainerExit(
                exit_code=code,
                signal=None,
                reason=reason or (ExitReason.COMPLETED if code == 0 else ExitReason.ERROR),
                message=None,
                started_at=c.started_at,
                finished_at=datetime.now(UTC),
            )
        )

    async def wait_container(self, container_id: ContainerID) -> ContainerExit:
        self._fault("wait_container", self.containers[container_id].config.container.name)
        return await asyncio.shield(self.containers[container_id].exited)

    async def stop_container(self, container_id: ContainerID, *, grace_seconds: float) -> None:
        c = self.containers[container_id]
        self.calls.append(("stop", c.config.container.name))
        self._fault("stop_container", c.config.container.name)
        c.stop_grace = grace_seconds
        if not c.exited.done():
            self._end(c, self.exit_on_stop)

    async def remove_container(self, container_id: ContainerID) -> None:
        known = self.containers.get(container_id)
        if known is None:  # an unknown one (ended before it was recovered): nothing to do
            return
        name = known.config.container.name
        self.calls.append(("remove", name))
        self._fault("remove_container", name)

    async def exec_in_container(
        self,
        container_id: ContainerID,
        command: Sequence[str],
        *,
        timeout: float,
        output_limit: int = 10 * 1024,
    ) -> ExecResult:
        name = self.containers[container_id].config.container.name
        self.execs.append((name, tuple(command)))
        self._fault("exec_in_container", name)
        code = self.exec_exit.get(name, 0)
        return ExecResult(exit_code=code, output=b"" if code == 0 else f"exit {code}".encode())

    async def recover_pod(self, pod: PodSandboxConfig) -> Sequence[RecoveredContainer]:
        """What ``recovered`` holds for this pod (a test puts instances there), claimed once.
        A running one (no exit) is adopted: ``exit(name, code)`` ends it."""
        found = self.recovered.pop(pod.uid, [])
        for rc in found:
            if rc.exit is None:
                config = ContainerConfig(
                    container=next(c for c in pod.spec.all_containers() if c.name == rc.name),
                    kind=ContainerKind.REGULAR,
                    command=(),
                    args=(),
                    env=(),
                    restart_count=rc.restart_count,
                )
                self.containers[rc.container_id] = FakeContainer(
                    rc.container_id,
                    config,
                    rc.started_at,
                    asyncio.get_running_loop().create_future(),
                )
        return found

    async def clean_up_pods(self, keep: Collection[str]) -> None:
        self.cleaned_up.append(set(keep))

    async def _no_logs(self) -> AsyncIterator[bytes]:
        if False:
            yield b""

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
        return self._no_logs()


_: Runtime = FakeRuntime()
