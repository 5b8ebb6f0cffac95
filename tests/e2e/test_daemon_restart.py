"""Status and events survive a daemon restart (restart *recovery* of running containers is a
later issue: today a stopping daemon stops its pods, and the next one starts them afresh)."""

from __future__ import annotations

import pytest

from tests.e2e.harness import Daemon

SLEEPER = """\
apiVersion: v1
kind: Pod
metadata: {name: sleeper}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: app, command: [sleep, "3600"]}
"""

JOB = """\
apiVersion: v1
kind: Pod
metadata: {name: job}
spec:
  restartPolicy: Never
  containers:
  - {name: once, command: [sh, -c, "echo done"]}
"""


@pytest.mark.root
def test_status_and_events_carry_over_a_daemon_restart(minikubelet_daemon: Daemon) -> None:
    d = minikubelet_daemon
    d.write_manifest("sleeper", SLEEPER)
    d.write_manifest("job", JOB)
    d.wait_for_phase("sleeper", "Running")
    d.wait_for_phase("job", "Succeeded")
    uid = d.pod("sleeper")["metadata"]["uid"]
    job_finished = d.container_status("job", "once")["state"]["terminated"]["finishedAt"]
    events_before = {(e["reason"], e["message"]) for e in d.events("sleeper")}

    d.restart()

    # The running pod was stopped with the daemon and started afresh by the new one: the same
    # pod (UID), one more restart, and the stop as its last state.
    status = d.wait_for(
        lambda: (s := d.container_status("sleeper", "app")).get("state", {}).get("running") and s
    )
    assert d.pod("sleeper")["metadata"]["uid"] == uid
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 143
    # The finished job is not run again.
    job = d.pod("job")
    assert job["status"]["phase"] == "Succeeded"
    assert d.container_status("job", "once")["state"]["terminated"]["finishedAt"] == job_finished
    assert sum(1 for e in d.events("job") if e["reason"] == "Started") == 1
    # Events of the previous daemon are still served, counted on from where they were.
    events_after = {(e["reason"], e["message"]) for e in d.events("sleeper")}
    assert events_before <= events_after
    started = next(e for e in d.events("sleeper") if e["reason"] == "Started")
    assert started["count"] == 2


@pytest.mark.root
def test_a_pod_whose_file_went_away_while_the_daemon_was_down_is_gone(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    d.write_manifest("sleeper", SLEEPER)
    d.wait_for_phase("sleeper", "Running")
    d.stop()
    d.remove_manifest("sleeper")
    d.start()
    d.wait_for_gone("sleeper", timeout=20)
