"""Init containers, restart policies and CrashLoopBackOff, end to end (issue 2, "Done means").

Every check goes through the HTTP API (or a file a hostPath volume shares with the host). The
daemon runs with FAST_CONFIG: backoff 1 s doubling to 4 s, so a crash loop shows in seconds.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Daemon
from tests.e2e.pods import container, pod_yaml, status_of, terminated


@pytest.mark.root  # volumes and the private /tmp need mount namespaces
def test_init_containers_run_one_at_a_time_in_order_before_the_app(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    mount = [{"name": "work", "mountPath": "/work"}]
    # The first one is the slowest: were they started together, "second" would come first.
    d.write_manifest(
        "init-order",
        pod_yaml(
            "init-order",
            init_containers=[
                container("first", "sleep 0.6; echo first >> /work/order.txt", volumeMounts=mount),
                container(
                    "second", "sleep 0.3; echo second >> /work/order.txt", volumeMounts=mount
                ),
                container("third", "echo third >> /work/order.txt", volumeMounts=mount),
            ],
            containers=[
                container("app", "cat /work/order.txt; exec sleep 1000", volumeMounts=mount),
            ],
            volumes=[{"name": "work", "emptyDir": {}}],
        ),
    )
    pod = d.wait_for_phase("init-order", "Running")
    log = d.wait_for(lambda: d.logs("init-order", "app").strip(), timeout=20)
    assert log.splitlines() == ["first", "second", "third"]

    for name in ("first", "second", "third"):
        done = terminated(status_of(pod, name))
        assert done is not None and done["exitCode"] == 0 and done["reason"] == "Completed", name
        assert status_of(pod, name)["restartCount"] == 0
    app = status_of(pod, "app")
    assert "running" in app["state"] and app["restartCount"] == 0
    assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Initialized"] == "True"


# (policy, exit code) -> what the pod settles to. None: the container keeps being restarted.
POLICY_CASES: dict[tuple[str, int], tuple[str, str | None]] = {
    ("Always", 0): ("Running", None),
    ("Always", 1): ("Running", None),
    ("OnFailure", 0): ("Succeeded", "Completed"),
    ("OnFailure", 1): ("Running", None),
    ("Never", 0): ("Succeeded", "Completed"),
    ("Never", 1): ("Failed", "Error"),
}


def _policy_pod(policy: str, code: int) -> str:
    return f"rp-{policy.lower()}-{code}"


def test_restart_policies_always_onfailure_never_with_exit_0_and_1(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    for policy, code in POLICY_CASES:
        name = _policy_pod(policy, code)
        d.write_manifest(
            name,
            pod_yaml(name, [container("c", f"sleep 0.2; exit {code}")], restart_policy=policy),
        )

    def settled() -> dict[str, dict[str, Any]] | None:
        pods = {p["metadata"]["name"]: p for p in d.pods()}
        for (policy, code), (phase, _) in POLICY_CASES.items():
            pod = pods[d.full_name(_policy_pod(policy, code))]
            cs = status_of(pod, "c")
            if pod["status"]["phase"] != phase:
                return None
            restarts_forever = POLICY_CASES[policy, code][1] is None
            if restarts_forever and (cs["restartCount"] < 2 or not terminated(cs, last=True)):
                return None
            if not restarts_forever and not terminated(cs):
                return None
        return pods

    # Two restarts of the restarted ones take >= 1.4 s (0 s, then 1 s backoff, 0.2 s runs):
    # long enough for a wrongly restarted terminal pod to show it.
    pods = d.wait_for(settled, timeout=40)

    for (policy, code), (phase, reason) in POLICY_CASES.items():
        what = f"restartPolicy {policy}, exit {code}"
        pod = pods[d.full_name(_policy_pod(policy, code))]
        cs = status_of(pod, "c")
        assert pod["status"]["phase"] == phase, what
        if reason is None:  # restarted after every exit, 0 or not
            last = terminated(cs, last=True)
            assert last is not None, what
            assert last["exitCode"] == code, what
            assert last["reason"] == ("Completed" if code == 0 else "Error"), what
            assert cs["restartCount"] >= 2, what
        else:  # ran once, and stays terminated
            now = terminated(cs)
            assert now is not None, what
            assert (now["exitCode"], now["reason"]) == (code, reason), what
            assert cs["restartCount"] == 0, what
            assert not cs.get("lastState"), what
            assert cs["ready"] is False, what


def test_failed_init_container_fails_the_pod_under_never_and_is_retried_under_always(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    for policy in ("Never", "Always"):
        name = f"init-fails-{policy.lower()}"
        d.write_manifest(
            name,
            pod_yaml(
                name,
                init_containers=[container("setup", "sleep 0.2; echo setup failed; exit 3")],
                containers=[container("app", "exec sleep 1000")],
                restart_policy=policy,
            ),
        )

    never = d.wait_for_phase("init-fails-never", "Failed")
    setup = status_of(never, "setup")
    done = terminated(setup)
    assert done is not None and (done["exitCode"], done["reason"]) == (3, "Error")
    assert setup["restartCount"] == 0
    assert "running" not in status_of(never, "app")["state"]

    always = d.wait_for_pod(
        "init-fails-always",
        lambda p: status_of(p, "setup")["restartCount"] >= 2,
        timeout=30,
        describe="init container setup to be restarted twice",
    )
    assert always["status"]["phase"] == "Pending"
    last = terminated(status_of(always, "setup"), last=True)
    assert last is not None and last["exitCode"] == 3
    app = status_of(always, "app")
    assert app["state"].get("waiting", {}).get("reason") == "PodInitializing"
    assert app["restartCount"] == 0
    for name in ("init-fails-never", "init-fails-always"):
        started = [
            e
            for e in d.events(name)
            if e["reason"] == "Started" and "{app}" in e["involvedObject"].get("fieldPath", "")
        ]
        assert started == [], f"{name}: the app started although an init container failed"
    assert d.logs("init-fails-never", "setup") == "setup failed\n"


# FAST_CONFIG: crashLoopBackOff initialDelay 1s, maxContainerRestartPeriod 4s.
EXPECTED_DELAYS = [0.0, 1.0, 2.0, 4.0, 4.0]  # between an exit and the next start
RUN_TIME = 0.2  # each run sleeps this long, then exits 1
SLACK = 1.5  # generous: the machine is shared and has two cores


@pytest.mark.root  # volumes and the private /tmp need mount namespaces
def test_crash_loop_backs_off_exponentially_up_to_the_cap(
    minikubelet_daemon: Daemon, tmp_path: Path
) -> None:
    d = minikubelet_daemon
    out = tmp_path / "out"
    out.mkdir()
    starts_file = out / "starts"
    d.write_manifest(
        "crashy",
        pod_yaml(
            "crashy",
            [
                container(
                    "c",
                    f"date +%s.%N >> /out/starts; sleep {RUN_TIME}; exit 1",
                    volumeMounts=[{"name": "out", "mountPath": "/out"}],
                )
            ],
            volumes=[{"name": "out", "hostPath": {"path": str(out), "type": "Directory"}}],
        ),
    )

    def starts() -> list[float]:
        try:
            return [float(line) for line in starts_file.read_text().split()]
        except FileNotFoundError:
            return []

    # Watch the API while the loop runs: every back-off message shown along the way.
    messages: set[str] = set()

    def enough_starts() -> list[float] | None:
        cs = d.container_status("crashy", "c")
        waiting = cs["state"].get("waiting") or {}
        if waiting.get("reason") == "CrashLoopBackOff":
            messages.add(waiting.get("message", ""))
        seen = starts()
        return seen if len(seen) >= len(EXPECTED_DELAYS) + 1 else None

    times = d.wait_for(enough_starts, timeout=60, interval=0.1)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    for i, (gap, delay) in enumerate(zip(gaps, EXPECTED_DELAYS, strict=False)):
        # The run takes RUN_TIME; the delay counts from its exit.
        assert delay + RUN_TIME - 0.05 <= gap <= delay + RUN_TIME + SLACK, (
            f"start {i + 1} came {gap:.2f}s after start {i}, expected about "
            f"{delay + RUN_TIME:.1f}s; all gaps: {[round(g, 2) for g in gaps]}"
        )

    pod = d.pod("crashy")
    uid = pod["metadata"]["uid"]
    full = d.full_name("crashy")
    for shown in ("1s", "2s", "4s"):
        expected = f"back-off {shown} restarting failed container=c pod={full}_default({uid})"
        assert expected in messages, f"{expected!r} never shown; saw {sorted(messages)}"
    assert pod["status"]["phase"] == "Running"  # Always: restarting counts as running

    backoff = [e for e in d.events("crashy") if e["reason"] == "BackOff"]
    assert len(backoff) == 1, backoff  # one aggregated event
    event = backoff[0]
    assert event["type"] == "Warning"
    assert (
        event["message"] == f"Back-off restarting failed container c in pod {full}_default({uid})"
    )
    assert event["count"] > 1
    assert event["involvedObject"]["fieldPath"] == "spec.containers{c}"
    assert event["involvedObject"]["uid"] == uid
    assert event["source"] == {"component": "kubelet", "host": d.node_name}


def test_crash_loop_waiting_state_carries_last_exit_code_and_restart_count(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    d.write_manifest("flaky", pod_yaml("flaky", [container("c", "echo run; sleep 0.2; exit 7")]))
    cs = d.wait_for(
        lambda: (
            (c := d.container_status("flaky", "c"))["restartCount"] >= 2
            and c["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff"
            and c
        ),
        timeout=30,
    )
    last = terminated(cs, last=True)
    assert last is not None
    assert (last["exitCode"], last["reason"]) == (7, "Error")
    assert last["startedAt"] <= last["finishedAt"]
    assert cs["ready"] is False and cs["started"] is False
