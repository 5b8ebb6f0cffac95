"""The cgroup v2 VM tier, driven from the host.

Boots the project's harness (tests/vm/run-in-vm.sh: a cgroup v2 only guest, user-mode Linux or
QEMU/TCG, whichever boots on this host) twice: without systemd, where it runs
tests/vm/test_in_vm_cgroups.py (the driver with plain processes) and
tests/vm/test_in_vm_daemon.py (the real daemon and real pods), then the overhead bench in the
same boot; and with systemd as PID 1, where test_in_vm_daemon.py runs the daemon through the unit
in systemd/. A VM that fails (exit 125 from the harness, which says why) fails the test; in-VM
test failures fail it too. The figures the in-VM tests measure, the backend and the time of each
boot are printed here.

A third test proves the harness's fallback on a UML kernel that really cannot boot: a wrapper
around linux.uml whose init dies of SIGSEGV at once, as UML's does on some CPUs.

Needs root (the harness installs Debian packages when missing, and the guest mounts). Set
MINIKUBELET_SKIP_VM=1 to skip on a developer machine; CI must not set it. MKVM_BACKEND=qemu (or
uml) forces a backend (docs/testing.md).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "tests" / "vm" / "run-in-vm.sh"
VM_TIMEOUT = 900  # seconds per boot: about 60-70 s under UML, 350-420 s under QEMU here
UML_PANIC = "Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("MKVM_GUEST") == "1", reason="already inside the VM"),
    pytest.mark.skipif(
        os.environ.get("MINIKUBELET_SKIP_VM") == "1", reason="MINIKUBELET_SKIP_VM=1"
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="the VM harness needs root"),
]


@dataclass(frozen=True, slots=True)
class VMRun:
    rc: int  # COMMAND's exit status; 125 when the VM itself failed
    output: str  # the guest's console and the harness's "[vm]" lines
    elapsed: float  # seconds, end to end (package installs and boot included)
    figures: list[dict[str, object]]  # what the in-VM tests recorded
    rw_dir: Path  # shared read-write with the guest

    @property
    def backend(self) -> str | None:
        """The backend that ran COMMAND, from the harness's last line."""
        found = re.findall(r"^\[vm\] backend=(\w+):", self.output, re.MULTILINE)
        return found[-1] if found else None


def run_in_vm(
    rw_dir: Path, *args: str, systemd: bool = False, env: dict[str, str] | None = None
) -> VMRun:
    results = rw_dir / "figures.jsonl"
    full_env = {
        **os.environ,
        "MKVM_RW_DIRS": str(rw_dir),
        "MKVM_TIMEOUT": str(VM_TIMEOUT),
        "MINIKUBELET_VM_RESULTS": str(results),
        "PYTHONDONTWRITEBYTECODE": "1",
        **(env or {}),
    }
    argv = [str(HARNESS), *(["--systemd"] if systemd else []), *args]
    t0 = time.monotonic()
    proc = subprocess.run(
        argv,
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=2 * VM_TIMEOUT + 120,  # the harness may boot twice (fallback)
    )
    elapsed = time.monotonic() - t0
    figures = (
        [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    )
    return VMRun(proc.returncode, proc.stdout, elapsed, figures, rw_dir)


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


def report(kind: str, run: VMRun) -> None:
    print(
        f"\n--- VM tier ({kind}): exit {run.rc} after {run.elapsed:.1f} s end to end "
        f"on {run.backend or 'no backend'} ---"
    )
    for line in run.output.splitlines():
        if line.startswith("[vm] "):
            print(f"    {line}")
    for fig in run.figures:
        print(f"    {fig}")
    if run.rc != 0:
        print(run.output[-8000:])


@pytest.fixture(scope="module")
def boot_without_systemd(tmp_path_factory: pytest.TempPathFactory) -> VMRun:
    """One boot without systemd: the in-VM tests, then the overhead bench (its output in
    bench.txt, its status in bench.rc); the harness returns pytest's status."""
    rw_dir = tmp_path_factory.mktemp("vm-no-systemd")
    script = (
        '"$@"; rc=$?; '
        f'{sys.executable} bench/cgroup_overhead.py > "{rw_dir}/bench.txt" 2>&1; '
        f'echo $? > "{rw_dir}/bench.rc"; exit $rc'
    )
    run = run_in_vm(rw_dir, "bash", "-c", script, "in-vm", *in_vm_pytest())
    report("cgroupfs, no systemd; then the bench", run)
    return run


@pytest.mark.timeout(2 * VM_TIMEOUT + 180)
def test_cgroup_enforcement_in_vm_without_systemd(boot_without_systemd: VMRun) -> None:
    run = boot_without_systemd
    assert run.rc != 125, f"the VM itself failed:\n{run.output[-4000:]}"
    assert run.rc == 0, f"in-VM tests failed:\n{run.output[-8000:]}"
    assert " passed" in run.output and "skipped" in run.output  # the systemd-only tests skip
    assert {f["test"] for f in run.figures} >= FIGURES


@pytest.mark.timeout(2 * VM_TIMEOUT + 180)
def test_cgroup_setup_overhead_bench_runs_in_vm(boot_without_systemd: VMRun) -> None:
    run = boot_without_systemd
    assert run.rc != 125, f"the VM itself failed:\n{run.output[-4000:]}"
    bench = (run.rw_dir / "bench.txt").read_text()
    print(f"\n--- bench/cgroup_overhead.py in the VM ({run.backend}) ---\n{bench}")
    assert (run.rw_dir / "bench.rc").read_text().strip() == "0", bench[-4000:]
    assert "EXTRA START LATENCY PER CONTAINER" in bench


@pytest.mark.timeout(2 * VM_TIMEOUT + 180)
def test_cgroup_enforcement_in_vm_under_systemd_delegation(tmp_path: Path) -> None:
    run = run_in_vm(tmp_path, *in_vm_pytest(), systemd=True)
    report("systemd PID 1, Delegate=yes", run)
    assert run.rc != 125, f"the VM itself failed:\n{run.output[-4000:]}"
    assert run.rc == 0, f"in-VM tests failed:\n{run.output[-8000:]}"
    assert "skipped" not in run.output  # the delegation tests ran
    assert {f["test"] for f in run.figures} >= FIGURES


# --- a UML that cannot boot ----------------------------------------------------------------------


@pytest.mark.timeout(2 * VM_TIMEOUT + 180)
def test_a_uml_guest_that_cannot_boot_is_reported_and_the_command_runs_on_qemu(
    tmp_path: Path,
) -> None:
    """The real linux.uml, with an init that dies of SIGSEGV (a real fault, in Python): the
    guest kernel panics as on the CPUs where UML cannot run. The harness (backend auto) must
    say so, with the panic line, run COMMAND on QEMU instead, and remember the verdict; with
    MKVM_BACKEND=uml it must fail with the same reason instead of falling back."""
    linux_uml = shutil.which("linux.uml")
    if linux_uml is None:  # the harness installs it on its first UML boot
        subprocess.run([str(HARNESS), "true"], env={**os.environ}, check=False, timeout=300)
        linux_uml = shutil.which("linux.uml")
    assert linux_uml is not None, "user-mode-linux is not installed"
    segv_init = tmp_path / "segv-init"
    segv_init.write_text(f"#!{sys.executable} -I\nimport ctypes\nctypes.string_at(0)\n")
    segv_init.chmod(0o755)
    uml = tmp_path / "linux.uml"
    uml.write_text(
        "#!/bin/bash\n"
        "# linux.uml, but its init segfaults at once\n"
        "args=()\n"
        f'for a in "$@"; do case $a in init=*) a=init={segv_init};; esac; args+=("$a"); done\n'
        f'exec {linux_uml} "${{args[@]}}"\n'
    )
    uml.chmod(0o755)
    verdicts = tmp_path / "verdicts"
    env = {"MKVM_BACKEND": "auto", "MKVM_UML": str(uml), "MKVM_VERDICTS": str(verdicts)}
    command = ["sh", "-c", "uname -r; cat /sys/fs/cgroup/cgroup.controllers"]

    run = run_in_vm(tmp_path, *command, env=env)
    report("UML that cannot boot, backend auto", run)
    vm_lines = [line for line in run.output.splitlines() if line.startswith("[vm] ")]
    assert f"[vm] the user-mode Linux guest did not boot: {UML_PANIC}" in vm_lines, run.output
    assert "[vm] retrying on QEMU/TCG" in vm_lines, run.output
    assert run.rc == 0, run.output
    assert run.backend == "qemu"
    assert "-amd64\n" in run.output  # Debian's kernel ran COMMAND, not UML's
    assert "cpu io memory" in run.output.replace("cpuset ", "")
    (verdict,) = verdicts.iterdir()
    assert verdict.read_text() == f"qemu\n{UML_PANIC}\n"

    # Forced onto UML: the same report, and no fallback.
    forced = run_in_vm(tmp_path, *command, env={**env, "MKVM_BACKEND": "uml"})
    assert forced.rc == 125, forced.output
    assert f"[vm] the user-mode Linux guest did not boot: {UML_PANIC}" in forced.output
    assert "MKVM_BACKEND=uml: no fallback" in forced.output
    assert "retrying" not in forced.output
