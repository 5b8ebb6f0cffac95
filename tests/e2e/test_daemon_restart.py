"""A daemon restart is invisible to its pods (docs/recovery.md).

After SIGKILL of the daemon, the next daemon on the same state dir adopts every running
container (the same processes, none started twice), carries restart counts, last states,
back-off, readiness and events on, reports a container that exited meanwhile with its real
code, stops the pods whose manifests went away meanwhile, and serves logs with no line lost.
A clean stop (SIGTERM) still stops every pod; the next daemon starts them afresh.
"""

from __future__ import annotations

import calendar
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import psutil
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

WRITER = """\
apiVersion: v1
kind: Pod
metadata: {name: writer}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: count
    command: [sh, -c, 'i=0; while :; do echo $i; i=$((i+1)); sleep 0.02; done']
"""

CRASHER = """\
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: crash, command: [sh, -c, "exit 1"]}
"""

PROBED = """\
apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    command: [sleep, "3600"]
    readinessProbe:
      exec: {command: ["true"]}
      periodSeconds: 1
"""

INIT = """\
apiVersion: v1
kind: Pod
metadata: {name: init}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - {name: prepare, command: [sh, -c, "echo prepared"]}
  containers:
  - {name: main, command: [sleep, "3600"]}
"""

SIDECAR = """\
apiVersion: v1
kind: Pod
metadata: {name: sidecar}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - {name: helper, restartPolicy: Always, command: [sleep, "3600"]}
  containers:
  - {name: main, command: [sleep, "3600"]}
"""

# Its first instance exits 3 while the daemon is down; the second one stays.
ONFAIL = """\
apiVersion: v1
kind: Pod
metadata: {name: onfail}
spec:
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 1
  containers:
  - name: job
    command: [sh, -c, "[ -e /tmp/ran ] && exec sleep 3600; touch /tmp/ran; sleep 4; exit 3"]
"""

# Succeeds while the daemon is down: OnFailure must not run it again.
SUCCEEDS = """\
apiVersion: v1
kind: Pod
metadata: {name: succeeds}
spec:
  restartPolicy: OnFailure
  containers:
  - {name: job, command: [sh, -c, "sleep 4; exit 0"]}
"""


def changed(text: str) -> str:
    return text.replace('sleep, "3600"]}', 'sleep, "3601"]}')


def recorders(d: Daemon) -> dict[tuple[str, str], list[int]]:
    """Every container's exit recorders alive on the host, by (pod UID, container): found by
    the exit file their arguments name, so a container started twice shows twice."""
    pods_dir = str(d.state_dir / "process" / "pods") + "/"
    found: dict[tuple[str, str], list[int]] = {}
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            for arg in proc.info["cmdline"] or []:
                if arg.startswith(pods_dir) and arg.endswith(".exit"):
                    uid, _, name = arg[len(pods_dir) :].partition("/containers/")
                    container = name.removesuffix(".exit").rpartition("-")[0]
                    if proc.info["cmdline"][0].endswith("sh"):
                        found.setdefault((uid, container), []).append(proc.info["pid"])
                    break
    return found


def restarts(d: Daemon) -> dict[tuple[str, str], int]:
    counts = {}
    for pod in d.pods():
        status = pod.get("status", {})
        for key in ("initContainerStatuses", "containerStatuses"):
            for cs in status.get(key) or []:
                counts[pod["metadata"]["name"], cs["name"]] = cs["restartCount"]
    return counts


class Follower(threading.Thread):
    """``logs -f`` in a thread: the numbers it has read so far, until the stream ends."""

    def __init__(self, d: Daemon, pod: str, container: str) -> None:
        super().__init__(daemon=True)
        self.d = d
        self.path = d.logs_path(pod, container, follow=True)
        self.numbers: list[int] = []
        self.ended = threading.Event()
        self.response: Any = None

    def run(self) -> None:
        try:
            with self.d.open(self.path, timeout=60) as response:
                self.response = response
                for line in response:
                    text = line.decode().strip()
                    if text.isdigit():
                        self.numbers.append(int(text))
        except (OSError, ValueError, AttributeError):
            pass  # the daemon went away, or close() cut the stream: it ends
        finally:
            self.ended.set()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.response is not None:
                self.response.close()
        self.join(timeout=5)


@contextlib.contextmanager
def following(d: Daemon, pod: str, container: str) -> Iterator[Follower]:
    follower = Follower(d, pod, container)
    follower.start()
    try:
        yield follower
    finally:
        follower.close()


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.daemon_config(
    {"crashLoopBackOff": {"initialDelay": "10s", "maxContainerRestartPeriod": "40s"}}
)
def test_sigkill_of_the_daemon_is_invisible_to_its_pods(minikubelet_daemon: Daemon) -> None:
    d = minikubelet_daemon
    for name, text in (
        ("writer", WRITER),
        ("sleeper", SLEEPER),
        ("crasher", CRASHER),
        ("probed", PROBED),
        ("init", INIT),
        ("sidecar", SIDECAR),
        ("gone", SLEEPER.replace("sleeper", "gone")),
        ("changed", SLEEPER.replace("sleeper", "changed")),
    ):
        d.write_manifest(name, text)
    for name in ("writer", "sleeper", "init", "sidecar", "gone", "changed"):
        d.wait_for_phase(name, "Running")
    d.wait_for(lambda: d.container_status("probed", "web")["ready"])
    # The crasher: restarted once at once, then held back 10 s.
    crash = d.wait_for(
        lambda: (
            (s := d.container_status("crasher", "crash")).get("state", {}).get("waiting", {})
            and "back-off 10s" in s["state"]["waiting"].get("message", "")
            and s
        )
    )
    d.write_manifest("onfail", ONFAIL)
    d.write_manifest("succeeds", SUCCEEDS)
    d.wait_for(lambda: d.container_status("onfail", "job")["state"].get("running"))
    d.wait_for(lambda: d.container_status("succeeds", "job")["state"].get("running"))
    uids = {p["metadata"]["name"].rsplit("-", 1)[0]: p["metadata"]["uid"] for p in d.pods()}

    with following(d, "writer", "count") as before:
        d.wait_for(lambda: len(before.numbers) > 20)
        time.sleep(0.5)  # the status flusher has written what the API shows
        pids_before = recorders(d)
        counts_before = restarts(d)
        events_before = {(e["reason"], e["message"]) for e in d.events()}
        crash = d.container_status("crasher", "crash")

        d.kill()  # SIGKILL, as a crash
        assert before.ended.wait(10)

    d.remove_manifest("gone")
    d.write_manifest("changed", changed(SLEEPER.replace("sleeper", "changed")))
    time.sleep(5)  # meanwhile onfail's first instance exits 3, and succeeds exits 0

    d.start()

    # Every container that was running is the same process, adopted; none started twice.
    kept = {
        key: pids
        for key, pids in pids_before.items()
        if key[0] not in (uids["gone"], uids["changed"], uids["onfail"], uids["succeeds"])
    }
    assert all(len(pids) == 1 for pids in pids_before.values()), pids_before
    now = d.wait_for(
        lambda: (r := recorders(d)) and all(r.get(k) == v for k, v in kept.items()) and r
    )
    assert all(len(pids) == 1 for pids in now.values()), now
    # The removed pod is stopped, the changed one recreated (a new UID, new processes).
    d.wait_for_gone("gone")
    d.wait_for(lambda: not any(k[0] == uids["gone"] for k in recorders(d)))
    d.wait_for(lambda: d.pod("changed")["metadata"]["uid"] != uids["changed"])
    d.wait_for_phase("changed", "Running")
    d.wait_for(lambda: not any(k[0] == uids["changed"] for k in recorders(d)))
    assert not (d.state_dir / "process" / "pods" / uids["gone"]).exists()

    # Ready stays ready: no flap while the new daemon takes over.
    for _ in range(20):
        assert d.container_status("probed", "web")["ready"] is True
        time.sleep(0.1)
    # Init containers are not run again; the sidecar and the main container are adopted.
    assert d.container_status("init", "prepare")["state"]["terminated"]["exitCode"] == 0
    assert d.logs("init", "prepare") == "prepared\n"
    started = [e for e in d.events("init") if e["reason"] == "Started"]
    assert sorted(e["count"] for e in started) == [1, 1]

    # Exited while the daemon was down: the real exit code, then restarted per policy.
    onfail = d.wait_for(
        lambda: (
            (s := d.container_status("onfail", "job"))["restartCount"] == 1
            and s["state"].get("running")
            and s
        )
    )
    assert onfail["lastState"]["terminated"]["exitCode"] == 3
    assert onfail["lastState"]["terminated"]["reason"] == "Error"
    succeeds = d.wait_for_phase("succeeds", "Succeeded")
    (job,) = succeeds["status"]["containerStatuses"]
    assert (job["restartCount"], job["state"]["terminated"]["exitCode"]) == (0, 0)

    # Restart counts never go back; the crasher's back-off carries on.
    after = restarts(d)
    for key, count in counts_before.items():
        if key[0].startswith(("gone", "changed")):
            continue
        assert after.get(key, -1) >= count, (key, count, after.get(key))
    # Its next start comes no sooner than its back-off allows, and the delay goes on doubling
    # (10 s, then 20 s) instead of starting over.
    finished = crash["lastState"]["terminated"]["finishedAt"]
    finished_at = calendar.timegm(time.strptime(finished, "%Y-%m-%dT%H:%M:%SZ"))
    restarted = d.wait_for(
        lambda: (
            d.container_status("crasher", "crash")["restartCount"] > crash["restartCount"]
            and time.time()
        ),
        timeout=40,
    )
    assert restarted >= finished_at + 10 - 1.5, restarted - finished_at
    d.wait_for(
        lambda: (
            "back-off 20s"
            in d.container_status("crasher", "crash")["state"].get("waiting", {}).get("message", "")
        )
    )

    # Events of the previous daemon are still served.
    assert events_before <= {(e["reason"], e["message"]) for e in d.events()}

    # logs -f after the restart: from the first line, through the downtime, no line lost.
    with following(d, "writer", "count") as after_restart:
        top = max(before.numbers)
        d.wait_for(lambda: len(after_restart.numbers) > top + 100)
        numbers = list(after_restart.numbers)
    assert numbers[: len(before.numbers)] == before.numbers
    assert numbers == list(range(len(numbers)))


@pytest.mark.root
def test_a_clean_stop_still_stops_the_pods_and_status_carries_over(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    d.write_manifest("sleeper", SLEEPER)
    d.write_manifest("job", JOB)
    d.wait_for_phase("sleeper", "Running")
    d.wait_for_phase("job", "Succeeded")
    uid = d.pod("sleeper")["metadata"]["uid"]
    job_finished = d.container_status("job", "once")["state"]["terminated"]["finishedAt"]
    events_before = {(e["reason"], e["message"]) for e in d.events("sleeper")}

    d.restart()  # SIGTERM: the daemon stops its pods first

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


@pytest.mark.root
def test_a_container_that_exited_unseen_without_a_status_is_status_unknown(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    d.write_manifest("sleeper", SLEEPER)
    d.wait_for_phase("sleeper", "Running")
    ((_, (pid,)),) = recorders(d).items()
    time.sleep(0.5)
    d.kill()
    # The whole container at once, recorder included: nothing records how it ended.
    container = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    for proc in container:
        proc.kill()
    psutil.wait_procs(container, timeout=5)
    d.start()
    status = d.wait_for(
        lambda: (
            (s := d.container_status("sleeper", "app"))["restartCount"] == 1
            and s["state"].get("running")
            and s
        )
    )
    last = status["lastState"]["terminated"]
    assert (last["reason"], last["exitCode"]) == ("ContainerStatusUnknown", 137)
    assert last["message"] == (
        "The container could not be located when the pod was deleted.  The container used to "
        "be Running"
    )
