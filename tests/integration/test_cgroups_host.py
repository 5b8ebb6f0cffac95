"""cgroups on this kind of host: cgroup v1 hybrid, no v2 cpu/memory controllers.

Shows that detection says so in one clear sentence without writing anything (on such a host
/sys/fs/cgroup is a writable tmpfs, where a careless write creates a plain file), and that the
launcher and the file primitives behave on plain files too. Enforcement itself is tested in the
cgroup v2 VM (tests/vm).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from minikubelet.cgroups import START_ERROR_EXIT, CgroupDriver, CgroupError, detect, enter_argv
from minikubelet.cgroups.fs import Cgroup

CGROUP = Path("/sys/fs/cgroup")
HOST = detect()


def _snapshot(root: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if directory != str(root) or d == "unified"]
        for name in [*dirs, *files]:
            path = os.path.join(directory, name)
            try:
                out[path] = os.lstat(path).st_mtime
            except OSError:
                continue
    return out


@pytest.mark.skipif(HOST.available, reason="this host has usable cgroup v2 controllers")
def test_detect_on_host_without_v2_controllers_says_limits_are_not_enforced() -> None:
    before = _snapshot(CGROUP)
    support = detect()
    assert not support.available
    assert support.root is None and support.controllers == frozenset()
    assert support.reason.endswith(": CPU and memory limits are not enforced")
    assert str(CGROUP) in support.reason
    assert "\n" not in support.reason
    assert _snapshot(CGROUP) == before
    assert not (CGROUP / "kubepods").exists()


@pytest.mark.skipif(HOST.available, reason="this host has usable cgroup v2 controllers")
def test_detect_names_the_hybrid_layout_of_this_host() -> None:
    if not (CGROUP / "unified").is_dir():
        pytest.skip("not a cgroup v1 hybrid host")
    assert "cgroup v1 hybrid" in HOST.reason
    assert "/sys/fs/cgroup/unified" in HOST.reason


def test_driver_refuses_unavailable_support_with_its_reason() -> None:
    support = detect(mount=Path("/nonexistent-cgroup-mount"))
    assert not support.available
    assert "no cgroup filesystem at /nonexistent-cgroup-mount" in support.reason
    with pytest.raises(CgroupError, match="not enforced"):
        CgroupDriver(support)


def test_directory_that_looks_like_a_cgroup_is_rejected_by_filesystem_type(tmp_path: Path) -> None:
    # what a tmpfs /sys/fs/cgroup may hold after someone "wrote cgroup files" into it
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    support = detect(mount=tmp_path)
    assert not support.available
    assert support.reason.startswith(f"cgroup v2 is not mounted at {tmp_path}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cgroup.controllers",
        "cgroup.subtree_control",
    ]


def test_write_never_creates_a_missing_interface_file(tmp_path: Path) -> None:
    cg = Cgroup(tmp_path)
    with pytest.raises(CgroupError, match=r"cannot open .*cpu\.max"):
        cg.write("cpu.max", "20000 100000")
    assert not (tmp_path / "cpu.max").exists()


def test_keyed_files_parse_into_counters(tmp_path: Path) -> None:
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n")
    assert Cgroup(tmp_path).oom_kills() == 1
    assert Cgroup(tmp_path).memory_events()["max"] == 12


def test_launcher_writes_the_pid_that_then_execs_the_command(tmp_path: Path) -> None:
    procs = tmp_path / "cgroup.procs"
    procs.write_text("")
    proc = subprocess.run(
        enter_argv(procs, ["sh", "-c", "echo $$"]), capture_output=True, text=True, check=True
    )
    # the pid written before exec is the pid of the command itself: nothing ran outside
    assert procs.read_text().strip() == proc.stdout.strip()


def test_launcher_keeps_arguments_intact(tmp_path: Path) -> None:
    procs = tmp_path / "cgroup.procs"
    argv = ["printf", "%s|", "a b", "$HOME", "'q'", "-x", ""]
    out = subprocess.run(enter_argv(procs, argv), capture_output=True, text=True, check=True)
    assert out.stdout == "a b|$HOME|'q'|-x||"


def test_launcher_runs_nothing_and_exits_128_when_it_cannot_enter(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    proc = subprocess.run(
        enter_argv(tmp_path / "gone" / "cgroup.procs", ["touch", str(marker)]),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == START_ERROR_EXIT == 128
    assert "cgroup.procs" in proc.stderr
    assert not marker.exists()


def test_launcher_raises_oom_score_adj_before_exec(tmp_path: Path) -> None:
    procs = tmp_path / "cgroup.procs"
    out = subprocess.run(
        enter_argv(procs, ["cat", "/proc/self/oom_score_adj"], oom_score_adj=1000),
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "1000"
