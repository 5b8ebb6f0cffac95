"""Limits enforced end to end: the real daemon, real pods, a real cgroup v2 kernel.

Runs inside the VM (``tests/vm/run-in-vm.sh``, driven by ``test_vm_tier.py``); anywhere without
cgroup v2 cpu and memory it skips with detect()'s reason. One daemon serves the whole module:

- without systemd as PID 1: ``python -m minikubelet run`` as a subprocess (tests/e2e/harness);
  its subtree is ``/sys/fs/cgroup/kubepods``, as kubelet's cgroupfs driver has it;
- with systemd as PID 1: the unit from ``systemd/minikubelet.service`` (Delegate=yes,
  KillMode=process), installed in /run/systemd/system with a drop-in that points ExecStart at
  this checkout; the daemon moves itself into ``<unit cgroup>/daemon`` and puts the pods in
  ``<unit cgroup>/kubepods``.

Everything is observed the way an operator would: the HTTP API (``/pods``, ``/events``), the
``minikubelet.io/cgroup`` annotation, and the cgroup files it names. Each test removes its pods
and checks that their cgroups are gone. Figures (CPU share, OOM -> restart) are printed and
appended to ``$MINIKUBELET_VM_RESULTS`` for the host-side test.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from minikubelet.api.resources import milli_cpu_to_shares, shares_to_weight
from minikubelet.cgroups import detect
from tests.e2e.harness import FAST_CONFIG, Daemon, HarnessError
from tests.vm.throttle import check_throttled_to, throttling

SUPPORT = detect()
ROOT = Path(__file__).resolve().parents[2]
UNIT_FILE = ROOT / "systemd" / "minikubelet.service"
UNIT = "minikubelet.service"
CGROUP_ANNOTATION = "minikubelet.io/cgroup"
MOUNT = Path("/sys/fs/cgroup")
# Timeouts, not timed assertions: under QEMU's emulation (tests/vm/run-in-vm.sh) on a busy
# 2-core host, importing the package takes about a minute and the daemon took up to 85 s to
# answer; under user-mode Linux, under 10 s.
STARTUP = 300.0
TEST_TIMEOUT = 600  # per test, the module's daemon start included for the first one
WAIT = 120.0  # for a pod to reach a state

pytestmark = [
    pytest.mark.skipif(
        not SUPPORT.available,
        reason=f"needs cgroup v2 with cpu and memory (run tests/vm/run-in-vm.sh): {SUPPORT.reason}",
    ),
    pytest.mark.timeout(TEST_TIMEOUT),
]


def record(name: str, **figures: object) -> None:
    line = json.dumps({"test": name, **figures})
    print(f"\nFIGURES {line}")
    target = os.environ.get("MINIKUBELET_VM_RESULTS")
    if target:
        with open(target, "a") as f:
            f.write(line + "\n")


# --- the daemon under systemd -----------------------------------------------------------------


class UnitDaemon(Daemon):
    """The daemon as systemd runs it: ``systemd/minikubelet.service`` plus a drop-in."""

    def _start_once(self) -> bool:
        self.starts += 1
        unit_dir = Path("/run/systemd/system")
        (unit_dir / f"{UNIT}.d").mkdir(parents=True, exist_ok=True)
        shutil.copy(UNIT_FILE, unit_dir / UNIT)
        exec_start = " ".join(shlex.quote(a) for a in self.argv())
        (unit_dir / f"{UNIT}.d" / "test.conf").write_text(
            "[Service]\n"
            "ExecStart=\n"
            f"ExecStart={exec_start}\n"
            f"WorkingDirectory={self.workdir}\n"
            f"StandardOutput=append:{self.log_path}\n"
            f"StandardError=append:{self.log_path}\n"
        )
        subprocess.run(["systemctl", "daemon-reload"], check=True)
        subprocess.run(["systemctl", "start", UNIT], check=True)
        self._stopped = False
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if not self.running:
                return False
            try:
                status, body = self.request("/healthz", timeout=1.0)
                if status == 200 and body.strip() == "ok":
                    return True
            except (OSError, HarnessError):
                pass
            time.sleep(0.1)
        return False

    @property
    def running(self) -> bool:
        state = subprocess.run(
            ["systemctl", "is-active", UNIT], capture_output=True, text=True, check=False
        )
        return state.stdout.strip() in ("active", "activating")

    def unit_cgroup(self) -> Path:
        out = subprocess.run(
            ["systemctl", "show", "-P", "ControlGroup", UNIT],
            capture_output=True,
            text=True,
            check=True,
        )
        return MOUNT / out.stdout.strip().lstrip("/")

    def stop(self, *, check: bool = True, **_: Any) -> int | None:
        if self._stopped:
            return self.returncode
        self._stopped = True
        cgroup = self.unit_cgroup() if self.running else None
        subprocess.run(["systemctl", "stop", UNIT], check=False, timeout=self.stop_timeout + 30)
        result = subprocess.run(
            ["systemctl", "show", "-P", "Result", UNIT], capture_output=True, text=True
        ).stdout.strip()
        self.returncode = 0 if result == "success" else 1
        problems = []
        if result != "success":
            problems.append(f"systemd says the unit's result is {result!r}")
        # KillMode=process: systemd signals only the daemon, which must stop its pods itself.
        if cgroup is not None and cgroup.exists() and (cgroup / "cgroup.procs").exists():
            events = (cgroup / "cgroup.events").read_text()
            if "populated 1" in events:
                problems.append(f"processes left in the unit's cgroup {cgroup}")
        subprocess.run(["systemctl", "reset-failed", UNIT], check=False, capture_output=True)
        if check and problems:
            raise HarnessError("\n".join(problems) + f"\n{self.log_tail()}")
        return self.returncode


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    workdir = tmp_path_factory.mktemp("daemon")
    config = {**FAST_CONFIG, "cgroups": {"pidsLimit": 256}}
    kind = UnitDaemon if SUPPORT.systemd else Daemon
    d = kind(workdir, config=config, startup_timeout=STARTUP)
    t0 = time.monotonic()
    d.start()
    record("daemon", systemd=SUPPORT.systemd, seconds_to_healthy=round(time.monotonic() - t0, 1))
    if isinstance(d, UnitDaemon):
        _SUBTREE[:] = [d.unit_cgroup() / "kubepods"]
    else:
        assert SUPPORT.root is not None
        _SUBTREE[:] = [SUPPORT.root / "kubepods"]
    try:
        yield d
    finally:
        d.close()


# --- manifests and cgroup reading ---------------------------------------------------------------


def manifest(
    name: str,
    containers: list[dict[str, Any]],
    *,
    restart_policy: str = "Always",
    volumes: list[dict[str, Any]] | None = None,
) -> str:
    spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": 1,
        "restartPolicy": restart_policy,
        "containers": containers,
    }
    if volumes:
        spec["volumes"] = volumes
    return yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
    )


def box(name: str, script: str, **resources: dict[str, str]) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "image": "none", "command": ["/bin/sh", "-c", script]}
    if resources:
        c["resources"] = resources
    return c


def pod_cgroup(d: Daemon, name: str) -> Path:
    """The pod's cgroup directory, from its annotation once it is Running."""
    pod = d.wait_for_phase(name, "Running", timeout=WAIT)
    path = Path((pod["metadata"].get("annotations") or {})[CGROUP_ANNOTATION])
    assert path.is_dir(), path
    return path


def read(path: Path) -> str:
    return path.read_text().strip()


def keyed(path: Path) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in path.read_text().splitlines())}


def remove_and_check_cgroups_gone(d: Daemon, *names_and_paths: tuple[str, Path]) -> float:
    t0 = time.monotonic()
    for name, _ in names_and_paths:
        d.remove_manifest(name)
    for name, path in names_and_paths:
        d.wait_for_gone(name, timeout=WAIT)
        assert not path.exists(), f"{path} is still there after {name} was removed"
    return time.monotonic() - t0


_SUBTREE: list[Path] = []  # set by the daemon fixture, while the daemon runs


def subtree() -> Path:
    """Where the daemon keeps its pods: kubepods under its own (delegated) cgroup."""
    return _SUBTREE[0]


# --- tests --------------------------------------------------------------------------------------


@pytest.mark.skipif(not SUPPORT.systemd, reason="only with systemd as PID 1 (run-in-vm --systemd)")
def test_under_systemd_the_daemon_moves_into_a_leaf_of_its_delegated_unit(daemon: Daemon) -> None:
    assert isinstance(daemon, UnitDaemon)
    unit = daemon.unit_cgroup()
    assert unit == MOUNT / "system.slice" / UNIT
    assert read(unit / "cgroup.procs") == ""  # nobody in the unit's own cgroup
    main_pid = subprocess.run(
        ["systemctl", "show", "-P", "MainPID", UNIT], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert read(unit / "daemon" / "cgroup.procs").split() == [main_pid]
    assert {"cpu", "memory", "pids"} <= set(
        read(unit / "kubepods" / "cgroup.subtree_control").split()
    )
    assert "[+]cgroups ok" in daemon.get("/healthz?verbose").splitlines()


def test_cpu_weight_of_pod_and_containers_follows_kubelet_formula(daemon: Daemon) -> None:
    requests = {"a": "10m", "b": "50m", "c": "100m", "d": "250m", "e": None}
    containers = [
        box(n, "exec sleep 1000", requests={"cpu": r}, limits={"memory": "64Mi"})
        if r
        else box(n, "exec sleep 1000")
        for n, r in requests.items()
    ]
    daemon.write_manifest("weights", manifest("weights", containers))
    path = pod_cgroup(daemon, "weights")
    assert path.parent == subtree() / "burstable"
    assert path.name == f"pod{daemon.pod('weights')['metadata']['uid']}"
    expected = {
        n: shares_to_weight(milli_cpu_to_shares(int(r[:-1]) if r else 0))
        for n, r in requests.items()
    }
    got = {n: int(read(path / n / "cpu.weight")) for n in requests}
    assert got == expected == {"a": 1, "b": 2, "c": 4, "d": 10, "e": 1}
    pod_weight = shares_to_weight(milli_cpu_to_shares(410))
    assert int(read(path / "cpu.weight")) == pod_weight
    assert read(path / "memory.max") == "max"  # "e" has no memory limit: no pod-level limit
    assert read(path / "a" / "memory.max") == str(64 * 2**20)
    assert read(path / "a" / "memory.oom.group") == "1"
    assert read(path / "a" / "pids.max") == read(path / "pids.max") == "256"
    # each container's processes (its exit recorder and the command) are inside its own cgroup
    for n in requests:
        pids = read(path / n / "cgroup.procs").split()
        assert len(pids) == 2, (n, pids)
        for pid in pids:
            assert Path(f"/proc/{pid}/cgroup").read_text().strip().endswith(f"/{n}")
    record(
        "daemon-weights",
        **{f"{r or 'none'}": expected[n] for n, r in requests.items()},
        pod=pod_weight,
    )
    remove_and_check_cgroups_gone(daemon, ("weights", path))


def test_cpu_limit_200m_throttles_busy_loop_to_a_fifth_of_a_core(daemon: Daemon) -> None:
    daemon.write_manifest(
        "burn", manifest("burn", [box("burn", "while :; do :; done", limits={"cpu": "200m"})])
    )
    path = pod_cgroup(daemon, "burn")
    cg = path / "burn"
    assert read(cg / "cpu.max") == "20000 100000"
    assert read(path / "cpu.max") == "20000 100000"  # every container limits cpu: pod too
    time.sleep(0.5)
    before, t0 = keyed(cg / "cpu.stat"), time.monotonic()
    time.sleep(3.0)
    after, t1 = keyed(cg / "cpu.stat"), time.monotonic()
    figures = throttling(before, after, wall_seconds=t1 - t0)
    record("daemon-cpu", limit="200m", **figures)
    check_throttled_to(0.2, figures)
    assert daemon.container_status("burn", "burn")["restartCount"] == 0  # throttled, not killed
    remove_and_check_cgroups_gone(daemon, ("burn", path))


def test_memory_limit_32mi_oom_kills_with_137_and_always_restarts(
    daemon: Daemon, tmp_path: Path
) -> None:
    starts = tmp_path / "starts"
    # Stamp the start, then one 64 MiB buffer filled from /dev/zero: the kernel's OOM killer
    # takes the container within milliseconds of the stamp.
    script = "date +%s.%N >> /data/starts; exec dd if=/dev/zero of=/dev/null bs=64M count=1"
    daemon.write_manifest(
        "hog",
        manifest(
            "hog",
            [
                {
                    **box("hog", script, limits={"memory": "32Mi"}),
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            volumes=[{"name": "data", "hostPath": {"path": str(tmp_path)}}],
        ),
    )
    pod = daemon.wait_for_pod(
        "hog",
        lambda p: any(
            (cs.get("lastState") or {}).get("terminated") and cs.get("restartCount", 0) >= 1
            for cs in p["status"].get("containerStatuses") or []
        ),
        timeout=WAIT,
        describe="the hog container to be restarted after its first exit",
    )
    cs = pod["status"]["containerStatuses"][0]
    last = cs["lastState"]["terminated"]
    assert last["reason"] == "OOMKilled", cs
    assert last["exitCode"] == 137, cs
    assert pod["status"]["qosClass"] == "Burstable"
    path = Path(pod["metadata"]["annotations"][CGROUP_ANNOTATION])
    assert read(path / "hog" / "memory.max") == str(32 * 2**20)
    assert read(path / "memory.max") == str(32 * 2**20)

    def two_starts() -> list[float] | None:
        stamps = [float(x) for x in starts.read_text().split()]
        return stamps if len(stamps) >= 2 else None

    stamps = daemon.wait_for(two_starts, timeout=WAIT)
    oom_to_restart = stamps[1] - stamps[0]
    backoff = FAST_CONFIG["crashLoopBackOff"]["initialDelay"]
    record(
        "daemon-memory",
        limit="32Mi",
        reason=last["reason"],
        exit_code=last["exitCode"],
        restarts_seen=cs["restartCount"],
        seconds_from_oom_to_restart=round(oom_to_restart, 3),
        crashloop_initial_delay=backoff,
    )
    remove_and_check_cgroups_gone(daemon, ("hog", path))


def test_qos_tiers_oom_score_adj_exec_in_cgroup_and_cleanup(daemon: Daemon) -> None:
    g = {"cpu": "100m", "memory": "64Mi"}
    daemon.write_manifest(
        "guaranteed",
        manifest("guaranteed", [box("g", "sleep 1000 & exec sleep 1000", requests=g, limits=g)]),
    )
    # An exec readiness probe that passes only inside the container's own cgroup.
    probed = box("probed", "exec sleep 1000")
    probed["readinessProbe"] = {
        "exec": {"command": ["/bin/sh", "-c", "grep -q '/probed$' /proc/self/cgroup"]},
        "periodSeconds": 1,
        "timeoutSeconds": 30,  # kubelet's 1 s default: too short for an exec under emulation
    }
    daemon.write_manifest("besteffort", manifest("besteffort", [probed]))
    gpath = pod_cgroup(daemon, "guaranteed")
    bpath = pod_cgroup(daemon, "besteffort")
    assert gpath.parent == subtree()
    assert bpath.parent == subtree() / "besteffort"
    assert daemon.pod("guaranteed")["status"]["qosClass"] == "Guaranteed"
    assert read(gpath / "cpu.max") == "10000 100000"
    assert read(gpath / "memory.max") == str(64 * 2**20)
    assert read(bpath / "cpu.weight") == "1"
    daemon.wait_for_pod(
        "besteffort",
        lambda p: (p["status"].get("containerStatuses") or [{}])[0].get("ready"),
        timeout=WAIT,
        describe="the exec readiness probe to pass inside the container's cgroup",
    )

    def wait_pids(cg: Path, count: int) -> list[str]:
        def enough() -> list[str] | None:
            pids = read(cg / "cgroup.procs").split()
            return pids if len(pids) >= count else None

        return daemon.wait_for(enough)

    gpids = wait_pids(gpath / "g", 2)
    bpids = wait_pids(bpath / "probed", 1)
    for pid in gpids:  # the background sleep too: children inherit the cgroup and the score
        assert read(Path(f"/proc/{pid}/oom_score_adj")) == "-997"
    assert read(Path(f"/proc/{bpids[0]}/oom_score_adj")) == "1000"

    seconds = remove_and_check_cgroups_gone(daemon, ("guaranteed", gpath), ("besteffort", bpath))
    for pid in [*gpids, *bpids]:  # killed and reaped (the daemon is their parent)
        assert not Path(f"/proc/{pid}").exists(), pid
    leftover = sorted(p.name for p in subtree().rglob("pod*") if p.is_dir())
    assert leftover == [], leftover
    record("daemon-cleanup", seconds_from_file_removal_to_cgroups_gone=round(seconds, 2), pods=2)


def test_an_oom_kill_while_the_daemon_is_down_is_reported_after_the_restart(
    daemon: Daemon, tmp_path: Path
) -> None:
    """The OOM group kill takes the container's exit recorder too: the next daemon reads the
    container cgroup's memory.events. Under systemd the unit's daemon is SIGKILLed and systemd
    restarts it (Restart=on-failure); without, a daemon of the test's own is killed and
    started again (the module's daemon stays: it is this process's child, and a test may leave
    none behind)."""
    data = tmp_path / "data"
    data.mkdir()
    script = "while [ ! -e /data/go ]; do sleep 0.1; done; exec dd if=/dev/zero of=/dev/null bs=64M"
    text = manifest(
        "late",
        [
            {
                **box("late", script, limits={"memory": "32Mi"}),
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }
        ],
        volumes=[{"name": "data", "hostPath": {"path": str(data)}}],
    )
    with contextlib.ExitStack() as stack:
        if isinstance(daemon, UnitDaemon):
            d: Daemon = daemon
        else:
            own = Daemon(tmp_path / "own", config=FAST_CONFIG, startup_timeout=STARTUP)
            d = stack.enter_context(own)
        d.write_manifest("late", text)
        path = pod_cgroup(d, "late") / "late"
        time.sleep(0.5)  # the status is flushed
        if isinstance(d, UnitDaemon):
            kill = ["systemctl", "kill", "--kill-whom=main", "-s", "SIGKILL", UNIT]
            subprocess.run(kill, check=True)
        else:
            d.kill()
        (data / "go").touch()
        deadline = time.monotonic() + 30
        while keyed(path / "memory.events").get("oom_kill", 0) < 1:
            assert time.monotonic() < deadline, "no OOM kill"
            time.sleep(0.1)
        if not isinstance(d, UnitDaemon):
            d.start()
        pod = d.wait_for_pod(
            "late",
            lambda p: (p["status"]["containerStatuses"][0].get("lastState") or {}).get(
                "terminated"
            ),
            timeout=60,
        )
        last = pod["status"]["containerStatuses"][0]["lastState"]["terminated"]
        if isinstance(d, UnitDaemon):
            # When the unit stops, systemd removes the empty cgroups below it, the OOM-killed
            # container's among them: how it ended can no longer be told (docs/recovery.md).
            assert (last["reason"], last["exitCode"]) == ("ContainerStatusUnknown", 137), last
        else:
            assert (last["reason"], last["exitCode"]) == ("OOMKilled", 137), last
        remove_and_check_cgroups_gone(d, ("late", path.parent))


def test_daemon_stop_leaves_no_container_and_no_pod_cgroup(daemon: Daemon) -> None:
    daemon.write_manifest("last", manifest("last", [box("c", "exec sleep 1000")]))
    path = pod_cgroup(daemon, "last")
    daemon.stop()  # checks that nothing is left running
    assert not path.exists()
    assert sorted(p.name for p in subtree().rglob("pod*")) == []
