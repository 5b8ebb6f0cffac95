"""A fleet's manifests directory, replaced whole, through the real daemon: git-sync's symlink
swap, a directory renamed over, ``rm -rf`` and re-creation, and a swap while a pod crash-loops.

The daemon's resync (fileCheckFrequency) is a minute here, so everything a test sees within its
waits came from inotify. Pods are looping shells with a unique marker in their command line, so
"the same pod kept running" is checked on the host: the same process, by pid.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from tests.e2e.conftest import DaemonFactory
from tests.e2e.harness import Daemon
from tests.e2e.pods import container, pod_yaml, processes_with, status_of, unique_marker

QUIET = {"fileCheckFrequency": "60s"}  # no resync within a test: only inotify can explain it
SOON = 10.0  # seconds: a swap's pods must be running well before a resync could have happened


def looping_pod(name: str, marker: str) -> str:
    return pod_yaml(name, [container("c", f": {marker}; while true; do sleep 1; done")])


def crashing_pod(name: str, marker: str) -> str:
    return pod_yaml(name, [container("c", f": {marker}; sleep 0.2; exit 3")])


def one_pid(marker: str) -> int:
    """The pid of the container process that carries ``marker`` (the outermost)."""
    procs = processes_with(marker)
    pids = {p.pid for p in procs}
    outer = [p.pid for p in procs if p.ppid() not in pids]
    assert len(outer) == 1, [" ".join(p.cmdline()) for p in procs]
    return outer[0]


def revision(root: Path, name: str, manifests: dict[str, str]) -> Path:
    """A complete directory of manifests (file name -> content), as a checkout would be."""
    d = root / name
    d.mkdir()
    for file, text in manifests.items():
        (d / file).write_text(text)
    return d


def swap_link(link: Path, target: str) -> None:
    """git-sync's swap: ``ln -s TARGET tmp && mv -T tmp LINK``."""
    tmp = link.with_name(f".{link.name}.swap")
    os.symlink(target, tmp)
    os.rename(tmp, link)


def running(pod: dict[str, Any]) -> bool:
    statuses = pod["status"].get("containerStatuses") or []
    return pod["status"]["phase"] == "Running" and all("running" in cs["state"] for cs in statuses)


def manifest_warnings(d: Daemon) -> list[str]:
    """Reasons of the Warning events about manifests (the host's own, e.g. cgroups, left out)."""
    reasons = {"FailedValidation", "UntrustedManifests", "ManifestsUnavailable"}
    return [e["reason"] for e in d.events() if e["type"] == "Warning" and e["reason"] in reasons]


def manifests_health(d: Daemon) -> str:
    (line,) = [x for x in d.get("/healthz?verbose").splitlines() if x.startswith("[+]manifests")]
    return line


def git_sync_daemon(daemon_factory: DaemonFactory, rev1: dict[str, str]) -> tuple[Daemon, Path]:
    """A daemon on ``<workdir>/git/current -> rev1`` (the layout git-sync keeps)."""
    d = daemon_factory(start=False, config=QUIET)
    git = d.workdir / "git"
    git.mkdir()
    revision(git, "rev1", rev1)
    current = git / "current"
    os.symlink("rev1", current)
    d.manifests_dir = current
    d.start()
    return d, git


def test_a_git_sync_swap_changes_adds_and_removes_pods_and_leaves_the_unchanged_one_running(
    daemon_factory: DaemonFactory,
) -> None:
    m = {n: unique_marker() for n in ("same", "old", "new", "removed", "added")}
    same = looping_pod("same", m["same"])
    d, git = git_sync_daemon(
        daemon_factory,
        {
            "same.yaml": same,
            "changed.yaml": looping_pod("changed", m["old"]),
            "removed.yaml": looping_pod("removed", m["removed"]),
        },
    )
    for name in ("same", "changed", "removed"):
        d.wait_for_pod(name, running)
    before = {name: d.pod(name)["metadata"]["uid"] for name in ("same", "changed")}
    same_pid = one_pid(m["same"])

    revision(
        git,
        "rev2",
        {
            "same.yaml": same,
            "changed.yaml": looping_pod("changed", m["new"]),
            "added.yaml": looping_pod("added", m["added"]),
        },
    )
    swap_link(git / "current", "rev2")

    d.wait_for_pod("added", running, timeout=SOON)
    d.wait_for_pod("changed", lambda p: p["metadata"]["uid"] != before["changed"] and running(p))
    d.wait_for_gone("removed", timeout=SOON)
    d.wait_for(lambda: not processes_with(m["removed"]) and not processes_with(m["old"]))
    assert processes_with(m["new"]) and processes_with(m["added"])

    pod = d.pod("same")
    assert pod["metadata"]["uid"] == before["same"]
    assert status_of(pod, "c")["restartCount"] == 0
    assert one_pid(m["same"]) == same_pid  # not restarted: the very same process
    assert pod["metadata"]["annotations"]["minikubelet.io/config.file"] == str(
        git / "current" / "same.yaml"
    )
    assert manifest_warnings(d) == []
    # What the node runs, through the API: one Normal Node event per directory read.
    resolved = [
        (e["type"], e["involvedObject"]["kind"], e["message"])
        for e in d.events()
        if e["reason"] == "ManifestsResolved"
    ]
    assert resolved == [
        ("Normal", "Node", f"manifests are read from {git / rev} (through {git / 'current'})")
        for rev in ("rev1", "rev2")
    ]
    assert f"manifest directory {git / 'current'} leads to {git / 'rev2'}" in d.log_text()


def test_a_manifest_renamed_by_a_swap_keeps_its_pod_running(daemon_factory: DaemonFactory) -> None:
    marker = unique_marker()
    web = looping_pod("web", marker)
    d, git = git_sync_daemon(daemon_factory, {"web.yaml": web})
    uid = d.wait_for_pod("web", running)["metadata"]["uid"]
    pid = one_pid(marker)

    revision(git, "rev2", {"10-web.yaml": web})
    swap_link(git / "current", "rev2")
    file = str(git / "current" / "10-web.yaml")
    pod = d.wait_for_pod(
        "web",
        lambda p: p["metadata"]["annotations"]["minikubelet.io/config.file"] == file,
        timeout=SOON,
    )
    assert pod["metadata"]["uid"] == uid and running(pod)
    assert one_pid(marker) == pid
    assert manifest_warnings(d) == []


def test_a_directory_renamed_over_replaces_only_what_changed(
    daemon_factory: DaemonFactory,
) -> None:
    m = {n: unique_marker() for n in ("web", "web2", "db")}
    d = daemon_factory(config=QUIET)
    d.write_manifest("web", looping_pod("web", m["web"]))
    d.write_manifest("db", looping_pod("db", m["db"]))
    web_uid = d.wait_for_pod("web", running)["metadata"]["uid"]
    db_uid = d.wait_for_pod("db", running)["metadata"]["uid"]
    db_pid = one_pid(m["db"])

    # What a config-management tool does: fill a new directory, move the old one away and
    # the new one into its place.
    new = revision(
        d.workdir,
        ".manifests.new",
        {"web.yaml": looping_pod("web", m["web2"]), "db.yaml": d.manifest_path("db").read_text()},
    )
    os.rename(d.manifests_dir, d.workdir / ".manifests.old")
    os.rename(new, d.manifests_dir)

    d.wait_for_pod("web", lambda p: p["metadata"]["uid"] != web_uid and running(p), timeout=SOON)
    d.wait_for(lambda: not processes_with(m["web"]))
    assert d.pod("db")["metadata"]["uid"] == db_uid
    assert one_pid(m["db"]) == db_pid


def test_rm_rf_of_the_directory_keeps_the_pods_running_and_its_return_is_read_at_once(
    daemon_factory: DaemonFactory,
) -> None:
    m = {n: unique_marker() for n in ("web", "db", "new")}
    d = daemon_factory(config=QUIET)
    mdir = d.manifests_dir
    d.write_manifest("web", looping_pod("web", m["web"]))
    d.write_manifest("db", looping_pod("db", m["db"]))
    uids = {n: d.wait_for_pod(n, running)["metadata"]["uid"] for n in ("web", "db")}
    pids = {n: one_pid(m[n]) for n in ("web", "db")}

    shutil.rmtree(mdir)
    expected = (
        f"manifest directory {mdir} does not exist; "
        "the pods read from it keep running until it is back"
    )
    event = d.wait_for(
        lambda: [e for e in d.events() if e["reason"] == "ManifestsUnavailable"], timeout=SOON
    )[0]
    assert (event["type"], event["message"]) == ("Warning", expected)
    assert (event["involvedObject"]["kind"], event["involvedObject"]["name"]) == (
        "Node",
        d.node_name,
    )
    assert manifests_health(d) == f"[+]manifests warning: {expected}"
    assert d.get("/healthz").strip() == "ok"
    assert expected in d.log_text()
    time.sleep(2.0)  # the pods are not "absent": nothing settles, nothing stops
    for name in ("web", "db"):
        pod = d.pod(name)
        assert pod["metadata"]["uid"] == uids[name] and running(pod)
        assert one_pid(m[name]) == pids[name]

    # Back, by hand: the same web, a new pod, and no db (removed on purpose this time).
    started = time.monotonic()
    mdir.mkdir()
    (mdir / "web.yaml").write_text(looping_pod("web", m["web"]))
    (mdir / "new.yaml").write_text(looping_pod("new", m["new"]))
    d.wait_for_pod("new", running, timeout=SOON)
    d.wait_for_gone("db", timeout=SOON)
    assert time.monotonic() - started < SOON
    assert one_pid(m["web"]) == pids["web"]
    d.wait_for(lambda: manifests_health(d) == "[+]manifests ok")
    assert manifest_warnings(d) == ["ManifestsUnavailable"]


def test_with_missing_is_empty_rm_rf_stops_the_pods_as_kubelet_does(
    daemon_factory: DaemonFactory,
) -> None:
    marker = unique_marker()
    d = daemon_factory(config={**QUIET, "manifests": {"missingIsEmpty": True}})
    d.write_manifest("web", looping_pod("web", marker))
    d.wait_for_pod("web", running)
    shutil.rmtree(d.manifests_dir)
    d.wait_for_gone("web", timeout=SOON)
    d.wait_for(lambda: not processes_with(marker))
    assert "it counts as empty (manifests.missingIsEmpty)" in manifests_health(d)


def test_a_swap_while_pods_crash_loop_keeps_the_unchanged_one_and_replaces_the_fixed_one(
    daemon_factory: DaemonFactory,
) -> None:
    m = {n: unique_marker() for n in ("flappy", "broken", "fixed")}
    flappy = crashing_pod("flappy", m["flappy"])
    d, git = git_sync_daemon(
        daemon_factory,
        {"flappy.yaml": flappy, "broken.yaml": crashing_pod("broken", m["broken"])},
    )

    def crash_looping(pod: dict[str, Any]) -> bool:
        return bool(status_of(pod, "c")["restartCount"] >= 2)

    flappy_pod = d.wait_for_pod("flappy", crash_looping)
    broken_uid = d.wait_for_pod("broken", crash_looping)["metadata"]["uid"]
    restarts = status_of(flappy_pod, "c")["restartCount"]

    # Mid-restart: both wait in CrashLoopBackOff (or are between a crash and the next start).
    revision(
        git,
        "rev2",
        {"flappy.yaml": flappy, "broken.yaml": looping_pod("broken", m["fixed"])},
    )
    swap_link(git / "current", "rev2")

    # The fix does not wait for the old pod's back-off: it replaces it, from a clean count.
    fixed = d.wait_for_pod(
        "broken", lambda p: p["metadata"]["uid"] != broken_uid and running(p), timeout=SOON
    )
    assert status_of(fixed, "c")["restartCount"] == 0
    assert processes_with(m["fixed"])
    # The unchanged pod is the same pod: its restarts and back-off carry on, not from zero.
    d.wait_for_pod("flappy", lambda p: status_of(p, "c")["restartCount"] > restarts)
    assert d.pod("flappy")["metadata"]["uid"] == flappy_pod["metadata"]["uid"]
