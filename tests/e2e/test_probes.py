"""Probes, lifecycle hooks and sidecars against the real daemon, with 1 s periods.

Everything is observed as a user would: ``/pods`` (conditions, containerStatuses), ``/events``
(kubelet's reasons and messages) and ``describe pod``. Ordering questions (preStop before
SIGTERM, sidecar start and stop order) are answered by the order of lines the containers append
to a file in a hostPath directory, mounted at the same path it has on the host (pods have a
private /tmp, and pytest's tmp_path lives under /tmp).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from tests.e2e.harness import Daemon, free_port
from tests.e2e.probe_support import (
    IDLE,
    describe_events,
    event_count,
    find_events,
    host_dir_volume,
    mount_same_path,
    pod_yaml,
    read_lines,
    server,
)


def shared_dir(tmp_path: Path) -> Path:
    path = tmp_path / "shared"
    path.mkdir(exist_ok=True)
    return path


def with_shared(container: dict[str, Any], shared: Path) -> dict[str, Any]:
    return {**container, "volumeMounts": [mount_same_path("shared", shared)]}


def condition(pod: dict[str, Any], kind: str) -> str | None:
    for c in pod.get("status", {}).get("conditions") or []:
        if c.get("type") == kind:
            return str(c.get("status"))
    return None


def exec_probe(*command: str, **fields: Any) -> dict[str, Any]:
    return {"exec": {"command": list(command)}, "periodSeconds": 1, **fields}


def logged(name: str, log: Path, body: str = IDLE) -> str:
    """A shell script that logs ``start NAME``, runs body, and logs ``stop NAME`` on SIGTERM."""
    return (
        f'trap \'echo "stop {name}" >> {log}; exit 0\' TERM; echo "start {name}" >> {log}; {body}'
    )


# --- readiness, startup, liveness -------------------------------------------------------------


def test_readiness_flips_ready_both_ways_without_restart(
    minikubelet_daemon: Daemon, tmp_path: Path
) -> None:
    d = minikubelet_daemon
    shared = shared_dir(tmp_path)
    flag = shared / "ready"
    container = {
        "name": "app",
        "image": "busybox",
        "command": ["sh", "-c", IDLE],
        "readinessProbe": exec_probe("cat", str(flag), failureThreshold=1),
    }
    d.write_manifest(
        "ready",
        pod_yaml(
            "ready", [with_shared(container, shared)], volumes=[host_dir_volume("shared", shared)]
        ),
    )

    def ready_is(expected: bool) -> Any:
        def check(pod: dict[str, Any]) -> bool:
            (cs,) = pod["status"]["containerStatuses"]
            want = "True" if expected else "False"
            return (
                "running" in cs["state"]
                and cs["ready"] is expected
                and condition(pod, "Ready") == want
                and condition(pod, "ContainersReady") == want
            )

        return check

    d.wait_for_pod("ready", ready_is(False), timeout=20, describe="running, not ready")
    d.wait_for(lambda: find_events(d, "ready", "Unhealthy", prefix="Readiness probe failed: cat:"))
    for _ in range(2):
        flag.write_text("ok\n")
        d.wait_for_pod("ready", ready_is(True), timeout=10, describe="ready")
        flag.unlink()
        d.wait_for_pod("ready", ready_is(False), timeout=10, describe="not ready again")

    cs = d.container_status("ready", "app")
    assert cs["restartCount"] == 0
    assert not find_events(d, "ready", "Killing"), describe_events(d, "ready")
    assert event_count(d, "ready", "Started") == 1


def test_startup_probe_keeps_liveness_off_until_it_passes(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    # Liveness (failureThreshold 1) would kill the container at its first probe before 4 s;
    # the startup probe holds it back until /tmp/started appears, at the same time as
    # /tmp/alive.
    container = {
        "name": "slow",
        "image": "busybox",
        "command": ["sh", "-c", f"sleep 4; touch /tmp/started /tmp/alive; {IDLE}"],
        "startupProbe": exec_probe("cat", "/tmp/started", failureThreshold=30),
        "livenessProbe": exec_probe("cat", "/tmp/alive", failureThreshold=1),
    }
    d.write_manifest("slow", pod_yaml("slow", [container]))

    pod = d.wait_for_pod(
        "slow",
        lambda p: (p["status"].get("containerStatuses") or [{}])[0].get("state", {}).get("running"),
        timeout=20,
    )
    assert pod["status"]["containerStatuses"][0]["started"] is False
    d.wait_for(lambda: d.container_status("slow", "slow")["started"] is True, timeout=20)
    time.sleep(2.5)  # liveness runs now, every second, and passes

    events = describe_events(d, "slow")
    assert event_count(d, "slow", "Unhealthy", prefix="Startup probe failed: cat:") >= 2, events
    assert not find_events(d, "slow", "Unhealthy", prefix="Liveness"), events
    assert not find_events(d, "slow", "Killing"), events
    cs = d.container_status("slow", "slow")
    assert cs["restartCount"] == 0
    assert cs["ready"] is True  # no readiness probe: ready once started
    assert condition(d.pod("slow"), "Ready") == "True"


def test_startup_probe_failure_kills_and_restarts_the_container(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    container = {
        "name": "never",
        "image": "busybox",
        "command": ["sh", "-c", IDLE],
        "startupProbe": exec_probe("cat", "/tmp/never", failureThreshold=2),
    }
    d.write_manifest("never", pod_yaml("never", [container]))

    d.wait_for(lambda: d.container_status("never", "never")["restartCount"] >= 1, timeout=30)
    events = describe_events(d, "never")
    message = "Container never failed startup probe, will be restarted"
    (killing,) = find_events(d, "never", "Killing", message)
    assert killing["type"] == "Normal", events
    assert find_events(
        d, "never", "Unhealthy", "Startup probe failed: cat: /tmp/never: No such file or directory"
    ), events
    assert d.container_status("never", "never")["started"] is False


# --- handlers ---------------------------------------------------------------------------------


def test_probe_timeouts_read_like_kubelets_for_every_handler(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    http_port, tcp_port, grpc_port = free_port(), free_port(), free_port()

    def readiness(handler: dict[str, Any]) -> dict[str, Any]:
        return {**handler, "periodSeconds": 2, "timeoutSeconds": 1}

    containers = [
        {
            "name": "exec",
            "image": "busybox",
            "command": ["sh", "-c", IDLE],
            "readinessProbe": readiness({"exec": {"command": ["sleep", "5"]}}),
        },
        {
            "name": "http",
            "image": "agnhost",
            "command": server("http", http_port),
            "readinessProbe": readiness({"httpGet": {"path": "/slow", "port": http_port}}),
        },
        {
            # A listener whose accept queue is full: the kernel drops further SYNs, so a dial
            # neither succeeds nor is refused (no external address is needed for a timeout).
            "name": "tcp",
            "image": "agnhost",
            "command": server("tcp-full", tcp_port),
            "readinessProbe": readiness({"tcpSocket": {"port": tcp_port}}),
        },
        {
            "name": "grpc",
            "image": "agnhost",
            "command": server("grpc", grpc_port, "SERVING", 5),
            "readinessProbe": readiness({"grpc": {"port": grpc_port}}),
        },
    ]
    d.write_manifest("timeouts", pod_yaml("timeouts", containers))

    expected = {
        "exec": 'Readiness probe failed: command "sleep 5" timed out',
        "http": f'Readiness probe failed: Get "http://127.0.0.1:{http_port}/slow": context '
        "deadline exceeded (Client.Timeout exceeded while awaiting headers)",
        "tcp": f"Readiness probe failed: dial tcp 127.0.0.1:{tcp_port}: i/o timeout",
        "grpc": "Readiness probe failed: timeout: health rpc did not complete within 1s",
    }

    def all_timed_out() -> bool:
        return all(
            find_events(d, "timeouts", "Unhealthy", message) for message in expected.values()
        )

    d.wait_for(all_timed_out, timeout=30, describe=lambda: describe_events(d, "timeouts"))
    pod = d.pod("timeouts")
    for cs in pod["status"]["containerStatuses"]:
        assert cs["ready"] is False, cs
        assert cs["restartCount"] == 0, cs
    # No probe errored: a timeout is a failure, not an unknown result.
    assert not find_events(d, "timeouts", "Unhealthy", prefix="Readiness probe errored")


def test_http_probe_resolves_a_named_port(minikubelet_daemon: Daemon) -> None:
    d = minikubelet_daemon
    port = free_port()
    container = {
        "name": "web",
        "image": "agnhost",
        "command": server("http", port),
        "ports": [{"name": "http", "containerPort": port}],
        "readinessProbe": {"httpGet": {"path": "/ok", "port": "http"}, "periodSeconds": 1},
        "livenessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1},
    }
    d.write_manifest("named", pod_yaml("named", [container]))

    d.wait_for_pod("named", lambda p: condition(p, "Ready") == "True", timeout=20)
    time.sleep(2)
    events = describe_events(d, "named")
    assert not find_events(d, "named", "Unhealthy", prefix="Liveness"), events
    assert not find_events(d, "named", "Unhealthy", prefix="Readiness probe errored"), events
    assert d.container_status("named", "web")["restartCount"] == 0


def test_redirect_to_another_host_is_a_probe_warning_and_same_host_is_followed(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    port = free_port()
    container = {
        "name": "web",
        "image": "agnhost",
        "command": server("http", port),
        # The probe dials 127.0.0.1; the redirect points at localhost: another host for
        # kubelet's redirect checker, so the 302 itself is the answer (success + warning).
        "livenessProbe": {
            "httpGet": {"path": "/redirect-other", "port": port},
            "initialDelaySeconds": 2,  # the server's start: a refused dial is no warning
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
        # Same host: followed to /ok, a plain success.
        "readinessProbe": {"httpGet": {"path": "/redirect-same", "port": port}, "periodSeconds": 1},
    }
    d.write_manifest("redirect", pod_yaml("redirect", [container]))

    message = "Liveness probe warning: Probe terminated redirects, Response body: moved away"
    d.wait_for(
        lambda: event_count(d, "redirect", "ProbeWarning", message) >= 2,
        timeout=20,
        describe=lambda: describe_events(d, "redirect"),
    )
    d.wait_for_pod("redirect", lambda p: condition(p, "Ready") == "True", timeout=10)
    events = describe_events(d, "redirect")
    (warning,) = find_events(d, "redirect", "ProbeWarning")
    assert warning["type"] == "Warning", events
    # Only the readiness probe triggered at the container's start may have found no listener.
    for event in find_events(d, "redirect", "Unhealthy"):
        assert event["message"].startswith("Readiness probe failed: Get"), events
        assert event["message"].endswith("connect: connection refused"), events
    assert not find_events(d, "redirect", "Killing"), events
    assert d.container_status("redirect", "web")["restartCount"] == 0


def test_grpc_probe_serving_is_ready_and_not_serving_is_unhealthy(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    ok_port, bad_port = free_port(), free_port()
    containers = [
        {
            "name": "serving",
            "image": "agnhost",
            "command": server("grpc", ok_port, "SERVING"),
            "readinessProbe": {"grpc": {"port": ok_port}, "periodSeconds": 1},
        },
        {
            "name": "not-serving",
            "image": "agnhost",
            "command": server("grpc", bad_port, "NOT_SERVING"),
            "readinessProbe": {"grpc": {"port": bad_port}, "periodSeconds": 1},
        },
    ]
    d.write_manifest("grpc", pod_yaml("grpc", containers))

    message = 'Readiness probe failed: service unhealthy (responded with "NOT_SERVING")'
    d.wait_for(
        lambda: event_count(d, "grpc", "Unhealthy", message) >= 2,
        timeout=20,
        describe=lambda: describe_events(d, "grpc"),
    )
    d.wait_for(lambda: d.container_status("grpc", "serving")["ready"] is True, timeout=10)
    assert d.container_status("grpc", "not-serving")["ready"] is False
    assert condition(d.pod("grpc"), "Ready") == "False"
    assert not find_events(
        d, "grpc", "Unhealthy", prefix="Readiness probe failed: service", container="serving"
    )


# --- lifecycle hooks --------------------------------------------------------------------------


def test_prestop_runs_before_sigterm(minikubelet_daemon: Daemon, tmp_path: Path) -> None:
    d = minikubelet_daemon
    shared = shared_dir(tmp_path)
    log = shared / "log"
    container = {
        "name": "app",
        "image": "busybox",
        "command": ["sh", "-c", f"trap 'echo TERM >> {log}; exit 0' TERM; {IDLE}"],
        "lifecycle": {
            "preStop": {"exec": {"command": ["sh", "-c", f"sleep 1; echo preStop >> {log}"]}}
        },
    }
    d.write_manifest(
        "prestop",
        pod_yaml(
            "prestop",
            [with_shared(container, shared)],
            terminationGracePeriodSeconds=10,
            volumes=[host_dir_volume("shared", shared)],
        ),
    )
    d.wait_for_phase("prestop", "Running", timeout=20)

    removed = time.monotonic()
    d.remove_manifest("prestop")
    d.wait_for_gone("prestop", timeout=20)
    assert time.monotonic() - removed < 8, "the stop took longer than preStop plus a prompt exit"
    assert read_lines(log) == ["preStop", "TERM"]


def test_prestop_longer_than_the_grace_period_is_cut_off_by_sigkill(
    minikubelet_daemon: Daemon, tmp_path: Path
) -> None:
    d = minikubelet_daemon
    shared = shared_dir(tmp_path)
    log = shared / "log"
    grace = 3
    # Ignores SIGTERM (the trap only writes it down); says it is alive every 0.2 s.
    body = (
        f"trap 'echo \"TERM $(date +%s.%N)\" >> {log}' TERM; "
        f'while :; do echo "alive $(date +%s.%N)" >> {log}; sleep 0.2 & wait $!; done'
    )
    container = {
        "name": "stubborn",
        "image": "busybox",
        "command": ["sh", "-c", body],
        # An exec preStop: a sleep action longer than the grace period fails validation.
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "20"]}}},
    }
    d.write_manifest(
        "stubborn",
        pod_yaml(
            "stubborn",
            [with_shared(container, shared)],
            terminationGracePeriodSeconds=grace,
            volumes=[host_dir_volume("shared", shared)],
        ),
    )
    d.wait_for(lambda: len(read_lines(log)) >= 3, timeout=20)

    removed = time.time()
    d.remove_manifest("stubborn")
    d.wait_for_gone("stubborn", timeout=20)
    lines = read_lines(log)
    terms = [float(line.split()[1]) - removed for line in lines if line.startswith("TERM ")]
    alive = [float(line.split()[1]) - removed for line in lines if line.startswith("alive ")]
    # preStop used the whole grace: SIGTERM at ~grace, then kubelet's minimum of 2 s
    # before SIGKILL (killContainer: grace - preStop time, floored at minimumGracePeriod).
    assert len(terms) == 1, lines
    assert grace - 0.5 <= terms[0] <= grace + 2, f"SIGTERM {terms[0]:.1f}s after the removal"
    last = max(alive)
    assert grace + 1 <= last <= grace + 2 + 1.5, f"last alive {last:.1f}s after the removal"
    assert last < 20, "the preStop sleep was not cut off by the grace period"


def test_failed_poststart_hook_is_reported_and_the_container_restarted(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    container = {
        "name": "app",
        "image": "busybox",
        "command": ["sh", "-c", IDLE],
        "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "echo nope; exit 3"]}}},
    }
    d.write_manifest("poststart", pod_yaml("poststart", [container]))

    d.wait_for(lambda: d.container_status("poststart", "app")["restartCount"] >= 1, timeout=30)
    events = describe_events(d, "poststart")
    (failed,) = find_events(d, "poststart", "FailedPostStartHook")
    assert failed["type"] == "Warning", events
    assert "sh -c echo nope; exit 3" in failed["message"], events
    assert "exited with 3" in failed["message"], events
    assert find_events(d, "poststart", "Killing", "FailedPostStartHook"), events
    assert not find_events(d, "poststart", "Started"), events  # never reported started


# --- sidecars ---------------------------------------------------------------------------------


def test_sidecars_start_in_order_and_stop_after_the_main_container_in_reverse(
    minikubelet_daemon: Daemon, tmp_path: Path
) -> None:
    d = minikubelet_daemon
    shared = shared_dir(tmp_path)
    log = shared / "log"
    init_containers: list[dict[str, Any]] = [
        {
            "name": "init",
            "image": "busybox",
            "command": ["sh", "-c", f"echo 'start init' >> {log}"],
        },
        {
            "name": "sidecar1",
            "image": "busybox",
            "restartPolicy": "Always",
            "command": [
                "sh",
                "-c",
                logged(
                    "sidecar1",
                    log,
                    f"sleep 2; touch /tmp/sidecar1-up; echo 'up sidecar1' >> {log}; {IDLE}",
                ),
            ],
            "startupProbe": exec_probe("cat", "/tmp/sidecar1-up", failureThreshold=30),
        },
        {
            "name": "sidecar2",
            "image": "busybox",
            "restartPolicy": "Always",
            "command": ["sh", "-c", logged("sidecar2", log)],
        },
    ]
    main = {"name": "main", "image": "busybox", "command": ["sh", "-c", logged("main", log)]}
    d.write_manifest(
        "sidecars",
        pod_yaml(
            "sidecars",
            [with_shared(main, shared)],
            initContainers=[with_shared(c, shared) for c in init_containers],
            volumes=[host_dir_volume("shared", shared)],
        ),
    )

    d.wait_for(lambda: "start main" in read_lines(log), timeout=30)
    d.wait_for_pod("sidecars", lambda p: condition(p, "Ready") == "True", timeout=10)
    assert read_lines(log) == [
        "start init",
        "start sidecar1",
        "up sidecar1",  # sidecar2 waits for sidecar1's startup probe
        "start sidecar2",
        "start main",
    ]
    pod = d.pod("sidecars")
    assert pod["status"]["phase"] == "Running"
    sidecars = {cs["name"]: cs for cs in pod["status"]["initContainerStatuses"]}
    assert sidecars["sidecar1"]["started"] is True
    assert "running" in sidecars["sidecar2"]["state"]

    d.remove_manifest("sidecars")
    d.wait_for_gone("sidecars", timeout=30)
    assert read_lines(log)[5:] == ["stop main", "stop sidecar2", "stop sidecar1"]


def test_sidecar_failing_liveness_is_restarted_with_kubelets_init_container_message(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    sidecar = {
        "name": "helper",
        "image": "busybox",
        "restartPolicy": "Always",
        "command": ["sh", "-c", IDLE],
        "livenessProbe": exec_probe("cat", "/tmp/missing", failureThreshold=2),
    }
    main = {"name": "main", "image": "busybox", "command": ["sh", "-c", IDLE]}
    # restartPolicy Never: a sidecar is restarted anyway.
    d.write_manifest(
        "sidecar-live",
        pod_yaml("sidecar-live", [main], initContainers=[sidecar], restartPolicy="Never"),
    )

    d.wait_for(
        lambda: d.container_status("sidecar-live", "helper")["restartCount"] >= 1, timeout=30
    )
    events = describe_events(d, "sidecar-live")
    # kuberuntime_manager.go computeInitContainerActions: no ", will be restarted" suffix.
    (killing,) = find_events(d, "sidecar-live", "Killing", container="helper")
    assert killing["message"] == "Init container helper failed liveness probe", events
    assert killing["involvedObject"]["fieldPath"] == "spec.initContainers{helper}", events
    assert d.container_status("sidecar-live", "main")["restartCount"] == 0
    assert d.pod("sidecar-live")["status"]["phase"] == "Running"


def test_job_like_pod_with_a_sidecar_succeeds_when_its_main_container_exits(
    minikubelet_daemon: Daemon, tmp_path: Path
) -> None:
    d = minikubelet_daemon
    shared = shared_dir(tmp_path)
    log = shared / "log"
    sidecar = {
        "name": "logger",
        "image": "busybox",
        "restartPolicy": "Always",
        "command": ["sh", "-c", logged("logger", log)],
    }
    job = {
        "name": "job",
        "image": "busybox",
        "command": ["sh", "-c", f"sleep 1; echo 'job done' >> {log}"],
    }
    d.write_manifest(
        "job",
        pod_yaml(
            "job",
            [with_shared(job, shared)],
            restartPolicy="Never",
            initContainers=[with_shared(sidecar, shared)],
            volumes=[host_dir_volume("shared", shared)],
        ),
    )

    pod = d.wait_for_phase("job", "Succeeded", timeout=30)
    (main,) = pod["status"]["containerStatuses"]
    assert main["state"]["terminated"]["exitCode"] == 0
    assert main["state"]["terminated"]["reason"] == "Completed"
    d.wait_for(lambda: "stop logger" in read_lines(log), timeout=10)
    # The sidecar ran alongside the job and was stopped only after it had finished.
    assert read_lines(log) == ["start logger", "job done", "stop logger"]
    (logger,) = d.pod("job")["status"]["initContainerStatuses"]
    assert "terminated" in logger["state"], logger
    assert logger["restartCount"] == 0
    assert d.pod("job")["status"]["phase"] == "Succeeded"


# --- describe ---------------------------------------------------------------------------------


def test_describe_pod_shows_probes_as_kubectl_does(minikubelet_daemon: Daemon) -> None:
    d = minikubelet_daemon
    port = free_port()
    container = {
        "name": "liveness",
        "image": "busybox",
        "command": ["sh", "-c", IDLE],
        "livenessProbe": {
            "exec": {"command": ["cat", "/tmp/healthy"]},
            "periodSeconds": 3,
            "initialDelaySeconds": 30,
            "timeoutSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": "/healthz", "port": port},
            "initialDelaySeconds": 60,
        },
        "startupProbe": {"tcpSocket": {"port": port}, "periodSeconds": 5, "failureThreshold": 60},
    }
    d.write_manifest("describe", pod_yaml("describe", [container]))
    d.wait_for_phase("describe", "Running", timeout=20)

    text = d.cli("describe", "pod", "describe-testnode", check=True).stdout
    expected = [
        r"Liveness:\s+exec \[cat /tmp/healthy\] delay=30s timeout=1s period=3s "
        r"#success=1 #failure=3",
        rf"Readiness:\s+http-get http://:{port}/healthz delay=60s timeout=1s period=10s "
        r"#success=1 #failure=3",
        rf"Startup:\s+tcp-socket :{port} delay=0s timeout=1s period=5s #success=1 #failure=60",
    ]
    for pattern in expected:
        assert re.search(pattern, text), f"{pattern!r} not in:\n{text}"
    # kubectl's alignment: the value column starts where the other container fields' does.
    line = next(x for x in text.splitlines() if "Liveness:" in x)
    assert line.startswith("    Liveness:"), line
