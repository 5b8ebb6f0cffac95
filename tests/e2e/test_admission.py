"""Admission and QoS through the real daemon: a pod whose requests do not fit stays Pending
with the scheduler's reason, and runs as soon as room frees up. (No cgroup v2 needed.)"""

from __future__ import annotations

import os
import re

import psutil
import pytest

from tests.e2e.harness import Daemon

CPUS = os.cpu_count() or 1


def pod_yaml(name: str, *, cpu: str, memory: str = "16Mi", limits: bool = False) -> str:
    resources = f"requests: {{cpu: {cpu}, memory: {memory}}}"
    if limits:
        resources += f"\n      limits: {{cpu: {cpu}, memory: {memory}}}"
    return f"""\
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    command: [sleep, "3600"]
    resources:
      {resources}
"""


def test_pod_that_does_not_fit_stays_pending_then_runs_when_room_frees(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    big = f"{CPUS * 1000 - 300}m"  # leaves 300m of the node's CPU
    d.write_manifest("hog", pod_yaml("hog", cpu=big, limits=True))
    d.wait_for_phase("hog", "Running")
    assert d.pod("hog")["status"]["qosClass"] == "Guaranteed"

    d.write_manifest("waiter", pod_yaml("waiter", cpu="500m"))
    pod = d.wait_for_pod(
        "waiter",
        lambda p: any(
            c["type"] == "PodScheduled" and c["status"] == "False"
            for c in p["status"].get("conditions", [])
        ),
    )
    scheduled = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert scheduled["reason"] == "Unschedulable"
    assert scheduled["message"] == "0/1 nodes are available: 1 Insufficient cpu."
    assert pod["status"]["phase"] == "Pending"
    assert pod["status"]["qosClass"] == "Burstable"
    assert not pod["status"].get("containerStatuses")
    event = d.wait_for(
        lambda: next((e for e in d.events("waiter") if e["reason"] == "FailedScheduling"), None)
    )
    assert event["type"] == "Warning"
    assert event["message"] == "0/1 nodes are available: 1 Insufficient cpu."
    assert event["source"]["component"] == "default-scheduler"
    table = d.cli("get", "pods").stdout
    assert any(
        line.split()[:3] == ["waiter-testnode", "0/1", "Pending"] for line in table.splitlines()
    )

    # Room frees up: the waiting pod starts without anything else changing.
    d.remove_manifest("hog")
    d.wait_for_phase("waiter", "Running", timeout=30)
    conditions = {c["type"]: c["status"] for c in d.pod("waiter")["status"]["conditions"]}
    assert conditions["PodScheduled"] == "True"


def test_memory_that_no_node_has_is_reported_by_name(minikubelet_daemon: Daemon) -> None:
    d = minikubelet_daemon
    too_much = f"{psutil.virtual_memory().total // 2**30 + 64}Gi"
    d.write_manifest("huge", pod_yaml("huge", cpu="10m", memory=too_much))
    d.wait_for(lambda: any(e["reason"] == "FailedScheduling" for e in d.events("huge")), timeout=20)
    messages = {e["message"] for e in d.events("huge") if e["reason"] == "FailedScheduling"}
    assert messages == {"0/1 nodes are available: 1 Insufficient memory."}
    assert d.pod("huge")["status"]["phase"] == "Pending"
    assert d.pod("huge")["status"]["qosClass"] == "Burstable"


@pytest.mark.parametrize(
    ("resources", "qos"),
    [
        ("{}", "BestEffort"),
        ("{requests: {cpu: 10m}}", "Burstable"),
        ("{limits: {cpu: 10m, memory: 16Mi}}", "Guaranteed"),
    ],
)
def test_qos_class_follows_kubelets_rules(minikubelet_daemon: Daemon, resources, qos) -> None:
    d = minikubelet_daemon
    d.write_manifest(
        "q",
        f"""\
apiVersion: v1
kind: Pod
metadata: {{name: q}}
spec:
  containers:
  - {{name: app, command: [sleep, "3600"], resources: {resources}}}
""",
    )
    d.wait_for_phase("q", "Running")
    assert d.pod("q")["status"]["qosClass"] == qos
    described = d.cli("describe", "pod", "q-testnode").stdout
    assert re.search(rf"^QoS Class:\s+{qos}$", described, re.MULTILINE), described


def test_a_runtime_class_the_daemon_cannot_serve_waits_without_disturbing_others(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    d.write_manifest("ok", pod_yaml("ok", cpu="10m"))
    d.write_manifest(
        "elsewhere",
        """\
apiVersion: v1
kind: Pod
metadata: {name: elsewhere}
spec:
  runtimeClassName: containerd
  containers:
  - {name: app, image: busybox, command: [sleep, "3600"]}
""",
    )
    d.wait_for_phase("ok", "Running")
    event = d.wait_for(
        lambda: next(
            (e for e in d.events("elsewhere") if e["reason"] == "FailedCreatePodSandBox"), None
        )
    )
    assert event["message"].startswith('Failed to create pod sandbox: no runtime for "containerd"')
    assert d.pod("elsewhere")["status"]["phase"] == "Pending"
    assert d.pod("ok")["status"]["phase"] == "Running"
    assert d.cli("get", "pods").returncode == 0
