"""Helpers for tests that drive a Runtime directly (the process and podman runtime suites):
a ContainerConfig from a pod's spec, and running one container to its exit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from minikubelet.runtime.base import ContainerConfig, ContainerKind, PodSandboxConfig, Runtime


def config(pod: PodSandboxConfig, index: int = 0, *, restart_count: int = 0) -> ContainerConfig:
    """Container ``index`` of the pod as the worker would hand it over (env values only)."""
    c = pod.spec.containers[index]
    return ContainerConfig(
        container=c,
        kind=ContainerKind.REGULAR,
        command=tuple(c.command or ()),
        args=tuple(c.args or ()),
        env=tuple((e.name, e.value or "") for e in c.env or []),
        restart_count=restart_count,
    )


async def read_all(it: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in it])


async def run_to_exit(
    rt: Runtime, pod: PodSandboxConfig, index: int = 0, *, restart_count: int = 0
) -> tuple[int, bytes]:
    """Start container ``index``, wait for its exit (30 s at most), forget it: (code, output)."""
    started = await rt.start_container(pod, config(pod, index, restart_count=restart_count))
    async with asyncio.timeout(30):
        result = await rt.wait_container(started.container_id)
    name = pod.spec.containers[index].name
    output = await read_all(rt.logs(pod, name, restart_count=restart_count))
    await rt.remove_container(started.container_id)
    return result.exit_code, output
