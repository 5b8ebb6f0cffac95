"""The manifests directory end to end: changes, removals, bad files, leftovers; and what a
container sees (env, volumes, /tmp). Issue 2, "Done means".

Assertions go through the HTTP API and what a user can check on the host: files a hostPath
volume shares, and processes (psutil), found by a unique marker in their command line.
"""

from __future__ import annotations

import functools
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.e2e.harness import Daemon, free_port, write_atomically
from tests.e2e.pods import (
    container,
    pod_yaml,
    process_group_members,
    processes_with,
    status_of,
    unique_marker,
)

# fileCheckFrequency is 1 s under FAST_CONFIG: this is long enough for two full resyncs.
RESYNCS = 2.5


def looping(marker: str) -> str:
    """A script that runs until killed, with ``marker`` in its command line (sh stays alive)."""
    return f": {marker}; while true; do sleep 1; done"


def all_running(pod: dict[str, Any]) -> bool:
    statuses = pod["status"].get("containerStatuses") or []
    return pod["status"]["phase"] == "Running" and all("running" in cs["state"] for cs in statuses)


def one_process(marker: str) -> psutil.Process:
    """The container process that carries ``marker`` (the outermost, if several do)."""
    procs = processes_with(marker)
    assert procs, f"no process with {marker!r}"
    pids = {p.pid for p in procs}
    outer = [p for p in procs if p.ppid() not in pids]
    assert len(outer) == 1, [" ".join(p.cmdline()) for p in procs]
    return outer[0]


def failed_validation(d: Daemon, path: Path) -> list[dict[str, Any]]:
    return [
        e
        for e in d.events()
        if e["reason"] == "FailedValidation" and str(path) in e.get("message", "")
    ]


# --- changes and removals --------------------------------------------------------------------


def test_changed_manifest_recreates_the_pod_with_a_new_uid_and_fresh_restart_counts(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    marker = unique_marker()
    d.write_manifest(
        "web",
        pod_yaml(
            "web", [container("main", looping(marker)), container("flap", "sleep 0.2; exit 1")]
        ),
    )
    old = d.wait_for_pod(
        "web",
        lambda p: (
            "running" in status_of(p, "main")["state"] and status_of(p, "flap")["restartCount"] >= 1
        ),
        describe="main running and flap restarted",
    )
    old_uid = old["metadata"]["uid"]
    old_proc = one_process(marker)

    d.write_manifest(
        "web",
        pod_yaml("web", [container("main", looping(marker)), container("flap", "exec sleep 1000")]),
    )
    new = d.wait_for_pod(
        "web",
        lambda p: p["metadata"]["uid"] != old_uid and all_running(p),
        describe="the pod recreated with a new uid, all containers running",
    )
    assert new["metadata"]["annotations"]["kubernetes.io/config.hash"] == new["metadata"]["uid"]
    assert [cs["restartCount"] for cs in new["status"]["containerStatuses"]] == [0, 0]
    assert not old_proc.is_running(), "the old pod's process survived its replacement"
    new_proc = one_process(marker)
    assert new_proc.pid != old_proc.pid
    assert [p["metadata"]["name"] for p in d.pods()] == [d.full_name("web")]


GRACE = 2  # terminationGracePeriodSeconds of the pod that ignores SIGTERM


@pytest.mark.root  # volumes and the private /tmp need mount namespaces
def test_removed_manifest_sends_sigterm_then_sigkill_after_the_grace_period(
    minikubelet_daemon: Daemon, tmp_path: Path
) -> None:
    d = minikubelet_daemon
    out = tmp_path / "out"
    out.mkdir()
    marker = unique_marker()
    script = (
        f": {marker}; trap 'echo got TERM >> /out/term.txt' TERM; "
        "echo ready > /out/ready; while true; do sleep 0.1; done"
    )
    d.write_manifest(
        "stubborn",
        pod_yaml(
            "stubborn",
            [container("c", script, volumeMounts=[{"name": "out", "mountPath": "/out"}])],
            volumes=[{"name": "out", "hostPath": {"path": str(out)}}],
            grace=GRACE,
        ),
    )
    d.wait_for_phase("stubborn", "Running")
    d.wait_for(lambda: (out / "ready").exists())
    proc = one_process(marker)
    pgid = os.getpgid(proc.pid)  # the container's process group: sh and its sleep
    assert process_group_members(pgid)

    removed_at = time.monotonic()
    d.remove_manifest("stubborn")
    d.wait_for(lambda: "got TERM" in (out / "term.txt").read_text(), timeout=GRACE + 5)
    term_seen = time.monotonic() - removed_at
    if term_seen < GRACE - 0.5:  # still inside the grace period: TERM alone did not kill it
        assert proc.is_running(), "the container died before its grace period was over"

    d.wait_for_gone("stubborn", timeout=GRACE + 20)
    gone_after = time.monotonic() - removed_at
    assert gone_after >= GRACE - 0.5, f"the pod was gone {gone_after:.2f}s after the removal"
    assert gone_after <= GRACE + 10, f"the pod took {gone_after:.2f}s to go"

    assert (out / "term.txt").read_text() == "got TERM\n"
    d.wait_for(lambda: not processes_with(marker) and not process_group_members(pgid), timeout=5)
    assert not proc.is_running()

    killing = [e for e in d.events("stubborn") if e["reason"] == "Killing"]
    assert killing and killing[0]["message"] == "Stopping container c"


# --- bad files --------------------------------------------------------------------------------


BAD_POD = pod_yaml(
    "bad",
    [
        container(
            "c",
            "exec sleep 1000",
            ports=[{"containerPort": 70000}],
            livenessProbe={"exec": {"command": ["true"]}, "periodSecond": 5},
        )
    ],
)


def test_bad_manifest_yields_an_error_event_and_leaves_other_pods_untouched(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    markers = {name: unique_marker() for name in ("good-a", "good-b")}
    for name, marker in markers.items():
        d.write_manifest(
            name,
            pod_yaml(name, [container("main", looping(marker)), container("flap", "exit 1")]),
        )
    for name in markers:
        d.wait_for_pod(name, lambda p: status_of(p, "flap")["restartCount"] >= 1)
    before = {name: d.pod(name) for name in markers}
    procs = {name: one_process(marker) for name, marker in markers.items()}

    path = d.write_manifest("bad", BAD_POD)
    event = d.wait_for(lambda: failed_validation(d, path), timeout=20)[0]
    assert event["type"] == "Warning"
    assert event["involvedObject"]["name"] == d.full_name("bad")
    message = event["message"]
    assert str(path) in message
    assert "spec.containers[0].ports[0].containerPort: Invalid value: 70000" in message
    assert "spec.containers[0].livenessProbe" in message and '"periodSecond"' in message

    # A pod written after the bad file runs: the source went on past it.
    d.write_manifest("later", pod_yaml("later", [container("c", "exec sleep 1000")]))
    d.wait_for_phase("later", "Running")
    time.sleep(RESYNCS)  # let full resyncs see the bad file too; nothing may change
    assert d.pod_or_none("bad") is None
    for name in markers:
        pod = d.pod(name)
        assert pod["metadata"]["uid"] == before[name]["metadata"]["uid"]
        assert pod["status"]["phase"] == "Running"
        main = status_of(pod, "main")
        assert "running" in main["state"] and main["restartCount"] == 0
        assert procs[name].is_running()
    assert len(failed_validation(d, path)) == 1
    assert failed_validation(d, path)[0]["count"] == 1  # reported once, not at every resync


def test_running_pod_whose_file_turns_invalid_keeps_running_until_the_file_is_fixed(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    marker = unique_marker()
    path = d.write_manifest("edited", pod_yaml("edited", [container("c", looping(marker))]))
    old = d.wait_for_pod("edited", all_running)
    old_uid = old["metadata"]["uid"]
    proc = one_process(marker)

    broken = pod_yaml(
        "edited",
        [
            container(
                "c",
                looping(marker),
                livenessProbe={"exec": {"command": ["true"]}, "periodSecond": 5},
            )
        ],
    )
    d.write_manifest("edited", broken)
    event = d.wait_for(lambda: failed_validation(d, path), timeout=20)[0]
    assert event["involvedObject"]["uid"] == old_uid
    assert "periodSecond" in event["message"]
    assert event["message"].endswith("the pod keeps running its last valid spec")
    time.sleep(RESYNCS)  # full resyncs must not drop it either (reconciler.py's choice)
    pod = d.pod("edited")
    assert pod["metadata"]["uid"] == old_uid and all_running(pod)
    assert proc.is_running()

    fixed = pod_yaml("edited", [container("c", looping(marker), env=[{"name": "V", "value": "2"}])])
    d.write_manifest("edited", fixed)
    new = d.wait_for_pod(
        "edited", lambda p: p["metadata"]["uid"] != old_uid and all_running(p), timeout=30
    )
    assert status_of(new, "c")["restartCount"] == 0
    d.wait_for(lambda: not proc.is_running(), timeout=10)


SWAP_NAMES = [
    ".web.yaml.swp",
    "web.yaml~",
    "web.yaml.bak",
    "web.yaml.dpkg-old",
    "web.yaml.orig",
    "web.yaml.rpmnew",
]


def test_editor_and_package_manager_leftovers_are_ignored(minikubelet_daemon: Daemon) -> None:
    d = minikubelet_daemon
    for i, name in enumerate(SWAP_NAMES):
        # Half are valid pods (they must not run), half are garbage (they must not complain).
        text = (
            pod_yaml(f"leftover{i}", [container("c", "exec sleep 1000")])
            if i % 2
            else "\x00\x01 not: [a pod\n"
        )
        write_atomically(d.manifests_dir / name, text)
    d.write_manifest("web", pod_yaml("web", [container("c", "exec sleep 1000")]))
    d.wait_for_phase("web", "Running")
    time.sleep(RESYNCS)  # the leftovers also go through full resyncs
    assert [p["metadata"]["name"] for p in d.pods()] == [d.full_name("web")]
    about_pods = [e for e in d.events() if e["involvedObject"]["kind"] == "Pod"]
    assert [e for e in about_pods if e["type"] == "Warning"] == []
    assert {e["involvedObject"]["name"] for e in about_pods} == {d.full_name("web")}


# --- what a container sees ----------------------------------------------------------------------


def test_env_expands_references_and_resolves_field_and_resource_refs(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon

    def field(path: str) -> dict[str, Any]:
        return {"fieldRef": {"fieldPath": path}}

    def resource(name: str, divisor: str | None = None) -> dict[str, Any]:
        ref: dict[str, Any] = {"resource": name}
        if divisor:
            ref["divisor"] = divisor
        return {"resourceFieldRef": ref}

    env = [
        {"name": "A", "value": "alpha"},
        {"name": "B", "value": "$(A)-beta"},
        {"name": "ESCAPED", "value": "$$(A)"},
        {"name": "UNDEFINED", "value": "$(NO_SUCH_VAR)"},
        {"name": "POD_NAME", "valueFrom": field("metadata.name")},
        {"name": "POD_NAMESPACE", "valueFrom": field("metadata.namespace")},
        {"name": "POD_UID", "valueFrom": field("metadata.uid")},
        {"name": "NODE_NAME", "valueFrom": field("spec.nodeName")},
        {"name": "POD_IP", "valueFrom": field("status.podIP")},
        {"name": "HOST_IP", "valueFrom": field("status.hostIP")},
        {"name": "TIER", "valueFrom": field("metadata.labels['tier']")},
        {"name": "TEAM", "valueFrom": field("metadata.annotations['team']")},
        {"name": "MEM_MI", "valueFrom": resource("limits.memory", "1Mi")},
        {"name": "CPU_MILLI", "valueFrom": resource("requests.cpu", "1m")},
        {"name": "CPU_CORES", "valueFrom": resource("limits.cpu")},
        {"name": "GREETING", "value": "hi from $(POD_NAME) on $(NODE_NAME)"},
    ]
    d.write_manifest(
        "envy",
        pod_yaml(
            "envy",
            [
                {
                    "name": "printer",
                    "image": "busybox:1.36",
                    "command": ["sh", "-c", 'env; printf "arg=%s\\n" "$@"; exec sleep 1000', "sh"],
                    "args": ["$(B)", "$$(A)", "$(POD_NAME)"],
                    "env": env,
                    "resources": {
                        "requests": {"cpu": "250m", "memory": "32Mi"},
                        "limits": {"cpu": "500m", "memory": "64Mi"},
                    },
                }
            ],
            labels={"tier": "backend"},
            annotations={"team": "platform"},
        ),
    )
    pod = d.wait_for_phase("envy", "Running")

    def printed() -> str | None:
        text = d.logs("envy", "printer")
        return text if text.count("arg=") == 3 else None

    log = d.wait_for(printed)
    values = dict(
        line.split("=", 1)
        for line in log.splitlines()
        if "=" in line and not line.startswith("arg=")
    )
    args = [line.removeprefix("arg=") for line in log.splitlines() if line.startswith("arg=")]

    status = pod["status"]
    expected = {
        "A": "alpha",
        "B": "alpha-beta",
        "ESCAPED": "$(A)",
        "UNDEFINED": "$(NO_SUCH_VAR)",
        "POD_NAME": d.full_name("envy"),
        "POD_NAMESPACE": "default",
        "POD_UID": pod["metadata"]["uid"],
        "NODE_NAME": d.node_name,
        "POD_IP": status["podIP"],
        "HOST_IP": status["hostIP"],
        "TIER": "backend",
        "TEAM": "platform",
        "MEM_MI": "64",
        "CPU_MILLI": "250",
        "CPU_CORES": "1",  # 500m rounded up to whole cores
        "GREETING": f"hi from {d.full_name('envy')} on {d.node_name}",
    }
    assert {k: values.get(k) for k in expected} == expected
    assert status["podIP"] and status["hostIP"]
    assert args == ["alpha-beta", "$(A)", d.full_name("envy")]


def _http_text(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as exc:
        exc.close()
        return ""


@pytest.mark.root  # volumes and the private /tmp need mount namespaces
def test_sidecar_serves_what_the_app_appends_to_a_shared_emptydir(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    tag = unique_marker()
    port = free_port()
    app_dir, web_dir, reader_dir = f"/var/log/{tag}", f"/srv/{tag}", f"/data-{tag}"
    volume = [{"name": "shared", "emptyDir": {}}]
    d.write_manifest(
        "sidecar",
        pod_yaml(
            "sidecar",
            [
                container(
                    "app",
                    f'i=0; while true; do i=$((i+1)); echo "line $i" >> {app_dir}/app.log; '
                    "sleep 0.2; done",
                    volumeMounts=[{"name": "shared", "mountPath": app_dir}],
                ),
                {
                    "name": "web",
                    "image": "python:3.12-alpine",
                    "command": ["python3", "-m", "http.server", str(port)],
                    "args": ["--bind", "127.0.0.1", "--directory", web_dir],
                    "volumeMounts": [{"name": "shared", "mountPath": web_dir}],
                },
                container(
                    "reader",
                    f"while [ $(wc -l < {reader_dir}/app.log) -lt 3 ]; do sleep 0.2; done; "
                    f"cat {reader_dir}/app.log; exec sleep 1000",
                    volumeMounts=[{"name": "shared", "mountPath": reader_dir, "readOnly": True}],
                ),
            ],
            volumes=volume,
        ),
    )
    d.wait_for_pod("sidecar", all_running)

    def three_lines_served() -> str | None:
        text = _http_text(f"http://127.0.0.1:{port}/app.log")
        return text if text.count("\n") >= 3 else None

    served = d.wait_for(three_lines_served, timeout=30)
    lines = served.splitlines()
    assert lines == [f"line {i}" for i in range(1, len(lines) + 1)]

    read = d.wait_for(lambda: d.logs("sidecar", "reader"), timeout=20).splitlines()
    assert len(read) >= 3 and read == [f"line {i}" for i in range(1, len(read) + 1)]

    # The volume shows at three paths in three containers, at none of them on the host.
    for path in (app_dir, web_dir, reader_dir):
        host = Path(path)
        assert not host.exists() or not any(host.iterdir()), f"{path} on the host has files"


@pytest.mark.root  # volumes and the private /tmp need mount namespaces
def test_emptydir_content_never_appears_at_the_mount_path_on_the_host(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    tag = unique_marker()
    mount_path = Path(f"/var/log/{tag}")
    d.write_manifest(
        "private",
        pod_yaml(
            "private",
            [
                container(
                    "c",
                    f"echo secret > {mount_path}/data.txt; ls {mount_path}; exec sleep 1000",
                    volumeMounts=[{"name": "scratch", "mountPath": str(mount_path)}],
                )
            ],
            volumes=[{"name": "scratch", "emptyDir": {}}],
        ),
    )
    d.wait_for_phase("private", "Running")
    assert d.wait_for(lambda: d.logs("private", "c")) == "data.txt\n"  # there, inside
    assert not mount_path.exists() or list(mount_path.iterdir()) == []

    d.remove_manifest("private")
    d.wait_for_gone("private")
    d.wait_for(lambda: not mount_path.exists(), timeout=10)


@pytest.mark.root  # volumes and the private /tmp need mount namespaces
def test_each_pod_has_a_private_tmp(minikubelet_daemon: Daemon) -> None:
    d = minikubelet_daemon
    tag = unique_marker()
    host_file = Path("/tmp/healthy")
    host_before = host_file.read_text() if host_file.exists() else None
    for name in ("tmp-a", "tmp-b"):
        d.write_manifest(
            name,
            pod_yaml(
                name,
                [
                    # Both write before either reads: each must read back its own.
                    container(
                        "c",
                        f"echo {name}-{tag} > /tmp/healthy; sleep 1.5; cat /tmp/healthy; "
                        "exec sleep 1000",
                    )
                ],
            ),
        )
    for name in ("tmp-a", "tmp-b"):
        assert d.wait_for(functools.partial(d.logs, name, "c"), timeout=20) == f"{name}-{tag}\n"
    host_after = host_file.read_text() if host_file.exists() else None
    assert tag not in (host_after or "")
    if host_before is None:
        assert host_after is None
