"""The cgroup v2 VM tier, driven from the host.

Boots the project's harness (tests/vm/run-in-vm.sh: user-mode Linux, cgroup v2 only) twice —
without and with systemd as PID 1 — and runs inside: tests/vm/test_in_vm_cgroups.py (the driver
with plain processes) and tests/vm/test_in_vm_daemon.py (the real daemon and real pods, under
systemd through the unit in systemd/); then the overhead bench once. A VM that fails to boot
fails the test (exit 125 from the harness); in-VM test failures fail it too. The figures the
in-VM tests measure are printed here.

Needs root (the harness installs Debian packages when missing, and the guest mounts). Set
MINIKUBELET_SKIP_VM=1 to skip on a developer machine; CI must not set it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "tests" / "vm" / "run-in-vm.sh"
VM_TIMEOUT = 420  # seconds per boot; a normal run takes ~25-40 s

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("MKVM_GUEST") == "1", reason="already inside the VM"),
    pytest.mark.skipif(
        os.environ.get("MINIKUBELET_SKIP_VM") == "1", reason="MINIKUBELET_SKIP_VM=1"
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="the VM harness needs root"),
]


def run_in_vm(
    tmp_path: Path, *args: str, systemd: bool = False
) -> tuple[int, str, float, list[dict[str, object]]]:
    results = tmp_path / "figures.jsonl"
    env = {
        **os.environ,
        "MKVM_RW_DIRS": str(tmp_path),
        "MKVM_TIMEOUT": str(VM_TIMEOUT),
        "MINIKUBELET_VM_RESULTS": str(results),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    argv = [str(HARNESS), *(["--systemd"] if systemd else []), *args]
    t0 = time.monotonic()
    proc = subprocess.run(
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=VM_TIMEOUT + 60,
    )
    elapsed = time.monotonic() - t0
    figures = (
        [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    )
    return proc.returncode, proc.stdout, elapsed, figures


def in_vm_pytest() -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rs",
        "-s",
        "tests/vm/test_in_vm_cgroups.py",
        "tests/vm/test_in_vm_daemon.py",
    ]


FIGURES = {"cpu", "memory", "weights", "cleanup", "daemon", "daemon-cpu", "daemon-memory"}
FIGURES |= {"daemon-weights", "daemon-cleanup"}


def report(
    kind: str, rc: int, output: str, elapsed: float, figures: list[dict[str, object]]
) -> None:
    print(f"\n--- VM tier ({kind}): exit {rc} after {elapsed:.1f} s end to end ---")
    for fig in figures:
        print(f"    {fig}")
    if rc != 0:
        print(output[-8000:])


@pytest.mark.timeout(VM_TIMEOUT + 120)
def test_cgroup_enforcement_in_vm_without_systemd(tmp_path: Path) -> None:
    rc, out, elapsed, figures = run_in_vm(tmp_path, *in_vm_pytest())
    report("cgroupfs, no systemd", rc, out, elapsed, figures)
    assert rc != 125, f"the VM itself failed:\n{out[-4000:]}"
    assert rc == 0, f"in-VM tests failed:\n{out[-8000:]}"
    assert " passed" in out and "skipped" in out  # the systemd-only test skips here
    assert {f["test"] for f in figures} >= FIGURES


@pytest.mark.timeout(VM_TIMEOUT + 120)
def test_cgroup_enforcement_in_vm_under_systemd_delegation(tmp_path: Path) -> None:
    rc, out, elapsed, figures = run_in_vm(tmp_path, *in_vm_pytest(), systemd=True)
    report("systemd PID 1, Delegate=yes", rc, out, elapsed, figures)
    assert rc != 125, f"the VM itself failed:\n{out[-4000:]}"
    assert rc == 0, f"in-VM tests failed:\n{out[-8000:]}"
    assert "skipped" not in out  # the delegation test ran
    assert {f["test"] for f in figures} >= FIGURES


@pytest.mark.timeout(VM_TIMEOUT + 120)
def test_cgroup_setup_overhead_bench_runs_in_vm(tmp_path: Path) -> None:
    rc, out, elapsed, _ = run_in_vm(tmp_path, sys.executable, "bench/cgroup_overhead.py")
    print(f"\n--- bench/cgroup_overhead.py in the VM ({elapsed:.1f} s) ---\n{out}")
    assert rc == 0, out[-4000:]
    assert "EXTRA START LATENCY PER CONTAINER" in out
