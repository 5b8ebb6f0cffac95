"""Fixtures for end-to-end tests: a real daemon per test (tests/e2e/harness.py).

    def test_pod_runs(minikubelet_daemon):
        minikubelet_daemon.write_manifest("web", WEB_YAML)
        minikubelet_daemon.wait_for_phase("web", "Running")

    @pytest.mark.daemon_config({"crashLoopBackOff": {"maxContainerRestartPeriod": "2s"}})
    def test_backoff(minikubelet_daemon): ...

    def test_two_nodes(daemon_factory):
        a = daemon_factory(node_name="a")
        b = daemon_factory(node_name="b", config={"eventLimit": 10})

Daemons are function-scoped: each test gets fresh directories, and the teardown's leftover check
covers exactly what that test started.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import FAST_CONFIG, Daemon


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "daemon_config(dict): settings merged over harness.FAST_CONFIG for minikubelet_daemon",
    )


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


DaemonFactory = Callable[..., Daemon]


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[DaemonFactory]:
    """``daemon_factory(**Daemon kwargs, start=True)``: a started Daemon, stopped and checked at
    teardown. ``config`` is merged over FAST_CONFIG; pass ``fast=False`` to use it as is."""
    daemons: list[Daemon] = []

    def make(*, start: bool = True, fast: bool = True, **kwargs: Any) -> Daemon:
        config = kwargs.pop("config", None)
        if fast:
            config = _merge(FAST_CONFIG, config or {})
        workdir = kwargs.pop("workdir", tmp_path / f"daemon{len(daemons)}")
        daemon = Daemon(workdir, config=config, **kwargs)
        daemons.append(daemon)
        if start:
            daemon.start()
        return daemon

    yield make

    errors = []
    for daemon in reversed(daemons):
        try:
            daemon.close()
        except AssertionError as exc:
            errors.append(str(exc))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def minikubelet_daemon(request: pytest.FixtureRequest, daemon_factory: DaemonFactory) -> Daemon:
    """A running daemon on node "testnode" with FAST_CONFIG (+ ``@pytest.mark.daemon_config``)."""
    marker = request.node.get_closest_marker("daemon_config")
    override = dict(marker.args[0]) if marker and marker.args else {}
    return daemon_factory(config=override)
