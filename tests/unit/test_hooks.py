"""Lifecycle hooks: whatever the exec fails with is the hook's failure, in kubelet's words."""

from __future__ import annotations

from minikubelet.api.errors import RuntimeFailure
from minikubelet.api.model import Container, LifecycleHandler
from minikubelet.pods.hooks import run_hook
from minikubelet.probes.handlers import HTTPProber
from minikubelet.runtime.base import ExecResult


async def test_an_exec_hook_on_a_container_that_is_gone_is_a_failed_hook() -> None:
    async def exec_fn(command: list[str], timeout: float) -> ExecResult:
        raise RuntimeFailure("container process://abc-app-0 is not running")

    http = HTTPProber()
    try:
        message = await run_hook(
            LifecycleHandler.model_validate({"exec": {"command": ["true"]}}),
            container=Container(name="app"),
            pod="web_default(uid)",
            pod_ip="127.0.0.1",
            exec_fn=exec_fn,
            http=http,
            timeout=1.0,
        )
    finally:
        await http.aclose()
    assert message == (
        'Exec lifecycle hook ([true]) for Container "app" in Pod "web_default(uid)" failed - '
        'error: container process://abc-app-0 is not running, message: ""'
    )
