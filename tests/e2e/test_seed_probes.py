"""The seed's three liveness exercises (seed notes sections 1-3), run as host processes.

The probe settings are the seed's, word for word; only the images' programs are replaced by host
equivalents: ``sh`` for rockylinux, probe_servers.py ``http-liveness`` for agnhost ``liveness``,
probe_servers.py ``tcp`` for goproxy. The three pods run concurrently in one daemon (the exec
one needs ~40 s before its first restart, the tcp one ~36 s).

The timeline is checked against kubelet's arithmetic: a probe worker probes every periodSeconds
once initialDelaySeconds have passed since the container started, and the kill comes with the
failureThreshold-th consecutive failure, so the first Killing lands at about
``first failing tick + period x (failureThreshold - 1)``. Event timestamps have whole-second
precision, hence the slack on top of one period.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Daemon, free_port
from tests.e2e.probe_support import (
    describe_events,
    event_count,
    find_events,
    host_dir_volume,
    mount_same_path,
    parse_time,
    pod_yaml,
    read_lines,
    server,
    two_free_ports,
)

pytestmark = pytest.mark.slow

SLACK = 3.0  # seconds on top of one period: second-precision timestamps, a busy 2-core box

# Seed section 1, with the container's dnf step dropped (coreutils are on the host).
EXEC_LIVENESS = """\
apiVersion: v1
kind: Pod
metadata:
  name: exec-liveness
spec:
  containers:
  - name: liveness
    image: docker.io/library/rockylinux:9.2
    args:
    - /bin/sh
    - -c
    - "touch /tmp/healthy; sleep 15; rm -f /tmp/healthy; sleep 300"
    livenessProbe:
      exec:
        command:
        - cat
        - /tmp/healthy
      periodSeconds: 3
      initialDelaySeconds: 30
      timeoutSeconds: 1
      successThreshold: 1
      failureThreshold: 3
"""


def http_liveness_yaml(port: int, record_dir: Path) -> str:
    """Seed section 2: agnhost liveness, replaced by probe_servers.py http-liveness."""
    return pod_yaml(
        "http-liveness",
        [
            {
                "name": "liveness",
                "image": "registry.k8s.io/e2e-test-images/agnhost:2.40",
                "command": server("http-liveness", port, record_dir / "headers"),
                "livenessProbe": {
                    "httpGet": {
                        "path": "/healthz",
                        "port": port,
                        "httpHeaders": [{"name": "Custom-Header", "value": "Awesome"}],
                    },
                    "periodSeconds": 3,
                },
                "volumeMounts": [mount_same_path("record", record_dir)],
            }
        ],
        volumes=[host_dir_volume("record", record_dir)],
    )


def tcp_liveness_yaml(port: int) -> str:
    """Seed section 3: goproxy listens on 8080; liveness dials 8081, where nothing listens."""
    return pod_yaml(
        "tcp-liveness",
        [
            {
                "name": "goproxy",
                "image": "registry.k8s.io/goproxy:0.1",
                "command": server("tcp", port),
                "ports": [{"containerPort": port}],
                "readinessProbe": {
                    "tcpSocket": {"port": port},
                    "initialDelaySeconds": 15,
                    "periodSeconds": 10,
                },
                "livenessProbe": {
                    "tcpSocket": {"port": port + 1},
                    "initialDelaySeconds": 15,
                    "timeoutSeconds": 1,
                    "periodSeconds": 10,
                    "successThreshold": 1,
                    "failureThreshold": 3,
                },
            }
        ],
    )


def first_start(d: Daemon, pod: str, container: str) -> float:
    """When the container's first instance started (epoch seconds): the aggregated Created
    event's firstTimestamp (the status only remembers the last two instances)."""
    (created,) = find_events(d, pod, "Created", f"Created container: {container}")
    return parse_time(created["firstTimestamp"]).timestamp()


def first_kill(d: Daemon, pod: str, container: str) -> dict[str, Any]:
    message = f"Container {container} failed liveness probe, will be restarted"
    (killing,) = find_events(d, pod, "Killing", message)
    return killing


def seconds_after(event: dict[str, Any], start: float, key: str = "firstTimestamp") -> float:
    return parse_time(event[key]).timestamp() - start


def check_exec(d: Daemon) -> None:
    pod, c = "exec-liveness", "liveness"
    d.wait_for(lambda: d.container_status(pod, c)["restartCount"] >= 1, timeout=70)
    d.wait_for(lambda: d.container_status(pod, c).get("state", {}).get("running"), timeout=15)
    events = describe_events(d, pod)
    start = first_start(d, pod, c)

    # File removed at 15 s; probes from 30 s every 3 s fail: kill at 30 + 3 x (3 - 1) = 36 s.
    killed_at = seconds_after(first_kill(d, pod, c), start)
    assert 36 - 3 - SLACK <= killed_at <= 36 + 3 + SLACK, f"killed at {killed_at}s\n{events}"

    unhealthy = find_events(
        d, pod, "Unhealthy", "Liveness probe failed: cat: /tmp/healthy: No such file or directory"
    )
    assert len(unhealthy) == 1, events
    # The new instance is not probed before its own 30 s: the count is the first kill's 3.
    assert unhealthy[0]["count"] == 3, events
    assert unhealthy[0]["type"] == "Warning"
    first_failure = seconds_after(unhealthy[0], start)
    assert 30 - SLACK <= first_failure <= 30 + 3 + SLACK, f"first failure {first_failure}s"

    assert event_count(d, pod, "Created", f"Created container: {c}") == 2, events
    assert event_count(d, pod, "Started", f"Started container {c}") == 2, events
    cs = d.container_status(pod, c)
    assert cs["restartCount"] == 1
    # kubelet's Killing is Normal.
    assert first_kill(d, pod, c)["type"] == "Normal"


def check_http(d: Daemon, record: Path) -> None:
    pod, c = "http-liveness", "liveness"
    d.wait_for(lambda: d.container_status(pod, c)["restartCount"] >= 1, timeout=60)
    events = describe_events(d, pod)
    start = first_start(d, pod, c)

    message = "Liveness probe failed: HTTP probe failed with statuscode: 500"
    assert event_count(d, pod, "Unhealthy", message) >= 3, events
    # 200 until 10 s; ticks at 0, 3, 6, 9 pass, 12, 15, 18 fail: the kill comes at ~18 s.
    killed_at = seconds_after(first_kill(d, pod, c), start)
    assert 18 - 3 - SLACK <= killed_at <= 18 + 3 + SLACK, f"killed at {killed_at}s\n{events}"
    assert event_count(d, pod, "Started", f"Started container {c}") >= 2, events

    headers = read_lines(record / "headers")
    assert len(headers) >= 6, headers  # every probe is a request; each wrote its header
    assert set(headers) == {"Awesome"}, f"Custom-Header did not always arrive: {headers}"


def check_tcp(d: Daemon, port: int, ready_seen: float | None) -> None:
    pod, c = "tcp-liveness", "goproxy"
    d.wait_for(lambda: d.container_status(pod, c)["restartCount"] >= 1, timeout=60)
    events = describe_events(d, pod)
    start = first_start(d, pod, c)

    # Readiness passed at its first probe, 15 s after the start, not before.
    assert ready_seen is not None, "the Ready condition never became True"
    assert 15 - 1.5 <= ready_seen - start <= 15 + 10 + SLACK, f"ready at {ready_seen - start}s"

    message = f"Liveness probe failed: dial tcp 127.0.0.1:{port + 1}: connect: connection refused"
    (unhealthy,) = find_events(d, pod, "Unhealthy", message)
    assert unhealthy["count"] == 3, events  # the new instance waits its own 15 s
    # Ticks at 15, 25, 35 fail: the kill comes at 15 + 10 x (3 - 1) = 35 s.
    killed_at = seconds_after(first_kill(d, pod, c), start)
    assert 35 - 10 - SLACK <= killed_at <= 35 + 10 + SLACK, f"killed at {killed_at}s\n{events}"
    assert not find_events(d, pod, "Unhealthy", prefix="Readiness probe failed"), events


def test_seed_probe_exercises_restart_on_kubelets_timeline(
    minikubelet_daemon: Daemon, tmp_path: Path
) -> None:
    d = minikubelet_daemon
    http_port = free_port()
    tcp_port, _closed = two_free_ports()
    record = tmp_path / "http-record"
    record.mkdir()

    d.write_manifest("exec-liveness", EXEC_LIVENESS)
    d.write_manifest("http-liveness", http_liveness_yaml(http_port, record))
    d.write_manifest("tcp-liveness", tcp_liveness_yaml(tcp_port))

    # Watch the tcp pod's Ready condition while everything runs (it must flip at ~15 s).
    ready_seen: float | None = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and ready_seen is None:
        pod = d.pod_or_none("tcp-liveness")
        conditions = (pod or {}).get("status", {}).get("conditions") or []
        if any(x["type"] == "Ready" and x["status"] == "True" for x in conditions):
            ready_seen = time.time()
            cs = d.container_status("tcp-liveness", "goproxy")
            assert cs["ready"] is True
        time.sleep(0.2)

    failures = []
    checks: list[Callable[[], None]] = [
        lambda: check_exec(d),
        lambda: check_http(d, record),
        lambda: check_tcp(d, tcp_port, ready_seen),
    ]
    for check in checks:
        try:
            check()
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, "\n\n".join(failures)

    describe = d.cli("describe", "pod", "exec-liveness-testnode", check=True).stdout
    assert "Container liveness failed liveness probe, will be restarted" in describe
    assert "Liveness probe failed: cat: /tmp/healthy: No such file or directory" in describe
