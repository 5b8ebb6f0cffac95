"""On a host without cgroup v2 controllers, the daemon runs every pod and says, once, that limits
are not enforced: a log warning with detect()'s reason, a Warning event on the Node, and a
non-failing ``/healthz?verbose`` line (issue 4, "Hosts without cgroup v2 controllers").

These need such a host (this project's machines and CI: cgroup v1 hybrid); where cgroup v2 can
enforce limits they skip, and the VM tier (tests/vm) covers the other side.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from minikubelet.cgroups import detect
from tests.e2e.harness import Daemon, HarnessError

SUPPORT = detect()
CGROUP_ANNOTATION = "minikubelet.io/cgroup"

pytestmark = pytest.mark.skipif(
    SUPPORT.available, reason=f"cgroup v2 enforces limits here: {SUPPORT.reason}"
)


def limited_pod(name: str) -> str:
    limits = {"cpu": "200m", "memory": "32Mi"}
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "command": ["sleep", "1000"],
                    "resources": {"limits": limits, "requests": limits},
                }
            ],
        },
    }
    return yaml.safe_dump(manifest)


def node_events(d: Daemon, reason: str) -> list[dict[str, Any]]:
    return [
        e
        for e in d.events()
        if e["involvedObject"].get("kind") == "Node" and e.get("reason") == reason
    ]


def test_without_cgroup_v2_pods_run_and_the_daemon_says_limits_are_not_enforced(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    d.write_manifest("limited", limited_pod("limited"))
    pod = d.wait_for_phase("limited", "Running")
    assert pod["status"]["qosClass"] == "Guaranteed"
    assert CGROUP_ANNOTATION not in (pod["metadata"].get("annotations") or {})

    # The log: one warning, with detect()'s reason.
    warnings = [
        line for line in d.log_text().splitlines() if "pods run WITHOUT resource limits" in line
    ]
    assert len(warnings) == 1, warnings
    assert SUPPORT.reason in warnings[0]
    assert "WARNING" in warnings[0]

    # The node event.
    events = node_events(d, "CgroupsUnavailable")
    assert len(events) == 1, d.events()
    event = events[0]
    assert event["type"] == "Warning"
    assert event["involvedObject"]["name"] == d.node_name
    assert event["message"] == SUPPORT.reason
    assert event["message"].endswith("CPU and memory limits are not enforced")

    # healthz: still ok, with the warning in the verbose listing.
    assert d.get("/healthz").strip() == "ok"
    verbose = d.get("/healthz?verbose").splitlines()
    assert f"[+]cgroups warning: {SUPPORT.reason}" in verbose
    assert verbose[-1] == "healthz check passed"


@pytest.mark.daemon_config({"cgroups": {"enabled": False}})
def test_cgroups_disabled_in_config_is_reported_the_same_way(minikubelet_daemon: Daemon) -> None:
    d = minikubelet_daemon
    reason = "cgroups.enabled is false in the config: CPU and memory limits are not enforced"
    assert [e["message"] for e in node_events(d, "CgroupsUnavailable")] == [reason]
    assert f"[+]cgroups warning: {reason}" in d.get("/healthz?verbose").splitlines()


def test_cgroups_required_but_unavailable_refuses_to_start(daemon_factory: Any) -> None:
    d = daemon_factory(start=False, config={"cgroups": {"enabled": True}})
    with pytest.raises(HarnessError):
        d.start()
    assert f"cgroups.enabled is true, but {SUPPORT.reason}" in d.log_text()


def test_unknown_cgroups_setting_is_a_config_error(daemon_factory: Any) -> None:
    d = daemon_factory(start=False, config={"cgroups": {"pidLimit": 10}})
    with pytest.raises(HarnessError):
        d.start()
    assert "cgroups.pidLimit: unknown setting" in d.log_text()
