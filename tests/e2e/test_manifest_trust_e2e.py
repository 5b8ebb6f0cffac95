"""The manifests directory is not a door to root: the real daemon refuses manifests that someone
other than root could have written, says why, and accepts them once fixed, without a restart.

A file is written by user ``nobody`` through ``setpriv`` into a directory it can write. pytest's
tmp_path sits in directories of root's with mode 0700 that nobody cannot enter, so the tests
that write as nobody use a directory under /tmp with mode 0711 (``open_daemon``). Root only:
without it no other user can be made to write; CI runs as root.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import DaemonFactory
from tests.e2e.harness import Daemon
from tests.e2e.pods import container, pod_yaml, processes_with, unique_marker

NOBODY = 65534
RESYNCS = 2.5  # fileCheckFrequency is 1 s under FAST_CONFIG


def write_as_nobody(path: Path, text: str) -> None:
    """``cat > path`` run as nobody:nogroup with no supplementary groups."""
    as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    subprocess.run(
        [*as_nobody, "sh", "-c", 'cat > "$1"', "sh", str(path)],
        input=text.encode(),
        check=True,
        timeout=10,
    )


def looping_pod(name: str, marker: str) -> str:
    return pod_yaml(name, [container("c", f": {marker}; while true; do sleep 1; done")])


def event_with(d: Daemon, reason: str, text: str) -> list[dict[str, Any]]:
    return [e for e in d.events() if e["reason"] == reason and text in e.get("message", "")]


def manifests_health(d: Daemon) -> str:
    (line,) = [x for x in d.get("/healthz?verbose").splitlines() if x.startswith("[+]manifests")]
    return line


def create_pod(d: Daemon) -> subprocess.CompletedProcess[str]:
    """``minikubelet create pod made ... -- sleep 1000`` into the daemon's manifests directory."""
    argv = ["create", "pod", "made", "--image", "busybox", "--manifests", str(d.manifests_dir)]
    return d.cli(*argv, "--", "sleep", "1000")


@pytest.fixture
def open_daemon(
    require_root: None, daemon_factory: DaemonFactory
) -> Iterator[Callable[..., Daemon]]:
    """``open_daemon(**daemon_factory kwargs)``: a daemon whose working directory is under /tmp
    with mode 0711, so that nobody can reach (not list) its manifests directory. The daemon is
    stopped, with the factory's checks, before the directory is removed."""
    root = Path(tempfile.mkdtemp(prefix="minikubelet-trust-", dir="/tmp"))
    os.chmod(root, 0o711)
    made: list[Daemon] = []

    def make(**kwargs: Any) -> Daemon:
        d = daemon_factory(workdir=root / f"daemon{len(made)}", **kwargs)
        made.append(d)
        return d

    try:
        yield make
        for d in made:
            d.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_file_written_by_nobody_into_a_0777_directory_is_refused_then_accepted_once_fixed(
    open_daemon: Callable[..., Daemon],
) -> None:
    d = open_daemon(start=False)
    mdir = d.manifests_dir
    os.chmod(mdir, 0o777)
    d.start()
    pid = d.process.pid if d.process else None
    marker = unique_marker()
    path = mdir / "evil.yaml"
    write_as_nobody(path, looping_pod("evil", marker))
    assert path.stat().st_uid == NOBODY

    # The refusal: a Warning event on the pod the file would have made, naming the directory
    # and the file, each with its owner, its mode and the fix.
    (event,) = d.wait_for(lambda: event_with(d, "FailedValidation", str(path)), timeout=20)
    assert event["type"] == "Warning"
    assert event["involvedObject"]["name"] == d.full_name("evil")
    message = event["message"]
    assert f"directory {mdir} is not trusted (owner root, uid 0, mode 0777)" in message
    assert f"fix: chown root:root {mdir} && chmod go-w {mdir}" in message
    assert f"file {path} is not trusted (owner nobody, uid 65534, mode 0644)" in message
    assert f"fix: chown root:root {path} && chmod 0644 {path}" in message

    # The directory: a Node event, /healthz?verbose (still ok), and the log, from the start.
    (node_event,) = event_with(d, "UntrustedManifests", f"every manifest in {mdir} is refused")
    assert node_event["type"] == "Warning"
    assert (node_event["involvedObject"]["kind"], node_event["involvedObject"]["name"]) == (
        "Node",
        d.node_name,
    )
    assert f"directory {mdir} is not trusted" in node_event["message"]
    assert manifests_health(d).startswith(f"[+]manifests warning: every manifest in {mdir}")
    assert d.get("/healthz").strip() == "ok"
    log = d.log_text()
    assert f"manifest directory {mdir} is not trusted; every manifest in it is refused" in log
    assert f"Could not process manifest file: {path}: Forbidden: file {path}" in log

    # `minikubelet validate` says the same, line for line.
    checked = d.cli("validate", str(path))
    assert checked.returncode == 1
    lines = checked.stderr.splitlines()
    assert len(lines) == 2 and all(line.startswith(f"{path}: Forbidden: ") for line in lines)
    assert message.endswith("; ".join(line.removeprefix(f"{path}: ") for line in lines))

    # Nothing runs, across resyncs.
    time.sleep(RESYNCS)
    assert d.pod_or_none("evil") is None
    assert processes_with(marker) == []

    # The fix, as the messages give it: the same file is accepted, by the same daemon.
    os.chown(path, 0, 0)
    os.chmod(path, 0o644)
    os.chmod(mdir, 0o755)
    d.wait_for_phase("evil", "Running", timeout=20)
    assert processes_with(marker)
    assert d.process is not None and d.process.pid == pid and d.starts == 1
    assert manifests_health(d) == "[+]manifests ok"
    assert d.cli("validate", str(path)).returncode == 0


def test_a_world_writable_parent_directory_is_reported_and_a_later_chmod_is_picked_up(
    daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    parent = tmp_path / "open"
    d = daemon_factory(workdir=parent / "d", start=False)
    d.write_manifest("web", looping_pod("web", unique_marker()))
    os.chmod(parent, 0o777)
    d.start()

    expected = f"directory {parent} is not trusted (owner root, uid 0, mode 0777)"
    (node_event,) = d.wait_for(lambda: event_with(d, "UntrustedManifests", expected))
    assert node_event["type"] == "Warning"
    assert f"fix: chown root:root {parent} && chmod go-w {parent}" in node_event["message"]
    assert expected in manifests_health(d)
    assert expected in d.log_text()
    d.wait_for(lambda: event_with(d, "FailedValidation", expected))
    assert d.pod_or_none("web") is None

    os.chmod(parent, 0o755)  # seen by the next resync
    d.wait_for_phase("web", "Running", timeout=20)
    assert manifests_health(d) == "[+]manifests ok"
    assert d.starts == 1

    # And the other way: a running pod whose directory turns writable keeps running, like a
    # running pod whose file turns invalid (nothing new from that directory starts).
    uid = d.pod("web")["metadata"]["uid"]
    os.chmod(parent, 0o777)
    refusal = d.wait_for(
        lambda: [
            e
            for e in event_with(d, "FailedValidation", expected)
            if e["involvedObject"].get("uid") == uid
        ]
    )
    assert refusal[0]["message"].endswith("the pod keeps running its last valid spec")
    time.sleep(RESYNCS)
    pod = d.pod("web")
    assert pod["metadata"]["uid"] == uid and pod["status"]["phase"] == "Running"
    os.chmod(parent, 0o755)


@pytest.mark.parametrize("umask", [0o077, 0o002])
def test_create_pod_writes_a_root_owned_0644_file_that_passes_whatever_the_umask(
    require_root: None, minikubelet_daemon: Daemon, umask: int
) -> None:
    d = minikubelet_daemon
    old = os.umask(umask)
    try:
        created = create_pod(d)
    finally:
        os.umask(old)
    assert (created.returncode, created.stderr) == (0, ""), created.stderr
    st = (d.manifests_dir / "made.yaml").stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o644)
    d.wait_for_phase("made", "Running")


def test_create_pod_warns_when_the_daemon_would_refuse_the_file(
    require_root: None, minikubelet_daemon: Daemon
) -> None:
    d = minikubelet_daemon
    os.chmod(d.manifests_dir, 0o777)
    created = create_pod(d)
    assert created.returncode == 0 and created.stdout == "pod/made created\n"
    path = d.manifests_dir / "made.yaml"
    assert created.stderr.startswith(
        f"warning: {path}: Forbidden: directory {d.manifests_dir} is not trusted"
    )


def test_the_opt_out_runs_what_would_be_refused_and_says_so_at_start(
    open_daemon: Callable[..., Daemon],
) -> None:
    d = open_daemon(start=False, config={"manifests": {"trustNonRootFiles": True}})
    os.chmod(d.manifests_dir, 0o777)
    d.start()
    warning = "manifests.trustNonRootFiles is true: manifests are read whoever owns them"
    (line,) = [x for x in d.log_text().splitlines() if warning in x]
    assert "WARNING" in line
    assert f"anyone who can write into {d.manifests_dir} or a directory above it" in line
    assert manifests_health(d) == f"[+]manifests warning: {warning}"

    write_as_nobody(d.manifest_path("anyone"), looping_pod("anyone", unique_marker()))
    d.wait_for_phase("anyone", "Running")
    assert not [e for e in d.events() if e["reason"] in ("FailedValidation", "UntrustedManifests")]


def test_a_bad_opt_out_value_is_a_config_error(daemon_factory: DaemonFactory) -> None:
    d = daemon_factory(start=False, config={"manifests": {"trustNonRootFiles": "yes"}})
    with pytest.raises(AssertionError):
        d.start()
    assert "manifests.trustNonRootFiles: Invalid value: 'yes': must be true or false" in (
        d.log_text()
    )
