"""Extra start latency per container that cgroup set-up adds (issue 4 target: <= 5 ms).

Per container instance, the process runtime does, on top of spawning the command:
  1. create_container: mkdir the instance cgroup (pod cgroup writes are idempotent), write
     cpu.weight, cpu.max, memory.max, memory.oom.group (and pids.max when configured);
  2. the launcher: /bin/sh writes its pid into cgroup.procs, then execs the command.
We time spawn+exit+wait of /bin/true plain and through the launcher into a fresh cgroup, and
report the medians and the difference. Removal (after exit) is reported separately, since it is
off the start path.

Meaningful only on cgroup v2 with cpu and memory: run it in the VM,
    tests/vm/run-in-vm.sh .venv/bin/python bench/cgroup_overhead.py
Elsewhere it prints "n/a" with the reason (and the launcher's own cost against a plain file).
Prints figures; never asserts.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

from minikubelet.api.model import PodSpec
from minikubelet.cgroups import CgroupDriver, detect, enter_argv

ROUNDS = 100
TRUE = ["/bin/true"]


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def run(argv: list[str]) -> None:
    subprocess.run(argv, check=True)


def med(samples: list[float]) -> str:
    return (
        f"{statistics.median(samples):6.2f} ms (p90 {statistics.quantiles(samples, n=10)[-1]:.2f})"
    )


def launcher_only() -> tuple[list[float], list[float]]:
    plain, launched = [], []
    with tempfile.TemporaryDirectory() as tmp:
        procs = Path(tmp) / "cgroup.procs"
        for _ in range(ROUNDS):
            plain.append(timed(lambda: run(TRUE)))
            launched.append(timed(lambda: run(enter_argv(procs, TRUE))))
    return plain, launched


async def in_cgroups() -> None:
    support = detect()
    driver = CgroupDriver(support, name=f"kubepods-bench-{uuid.uuid4().hex[:6]}")
    driver.setup()
    spec = PodSpec.model_validate(
        {
            "containers": [
                {
                    "name": "c",
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "32Mi"},
                        "limits": {"cpu": "500m", "memory": "64Mi"},
                    },
                }
            ]
        }
    )
    box = spec.containers[0]
    driver.create_pod(uid="bench", spec=spec)
    plain, setup, launched, total, removal = [], [], [], [], []
    try:
        for _ in range(ROUNDS):
            plain.append(timed(lambda: run(TRUE)))
            t0 = time.perf_counter()
            cg = driver.create_container(uid="bench", spec=spec, container=box)
            t1 = time.perf_counter()
            run(enter_argv(cg.procs_path, TRUE))
            t2 = time.perf_counter()
            setup.append((t1 - t0) * 1000)
            launched.append((t2 - t1) * 1000)
            total.append((t2 - t0) * 1000)
            t3 = time.perf_counter()
            await cg.kill_and_wait(timeout=5)
            cg.remove()
            removal.append((time.perf_counter() - t3) * 1000)
    finally:
        await driver.remove_pod("bench")
        driver.top.remove()
    extra = statistics.median(total) - statistics.median(plain)
    exec_cost = statistics.median(launched) - statistics.median(plain)
    print(f"cgroup v2 at {support.root} ({ROUNDS} container instances, medians)")
    print(f"  spawn+wait /bin/true, no cgroup        {med(plain)}")
    print(f"  create_container (mkdir + 4 writes)    {med(setup)}")
    print(f"  spawn+wait through the launcher        {med(launched)}")
    print(f"  cgroup path total                      {med(total)}")
    print(f"  EXTRA START LATENCY PER CONTAINER      {extra:6.2f} ms   (target <= 5 ms)")
    print(f"    of which cgroup files (mkdir+writes)  {statistics.median(setup):6.2f} ms")
    print(f"    of which the launcher's /bin/sh exec  {exec_cost:6.2f} ms (+ entering the cgroup)")
    print(f"  removal after exit (off the start path){med(removal)}")


def main() -> None:
    support = detect()
    if not support.available:
        print(f"cgroup set-up overhead: n/a ({support.reason})")
        plain, launched = launcher_only()
        extra = statistics.median(launched) - statistics.median(plain)
        print(
            f"  launcher alone, against a plain file: {extra:.2f} ms extra per start "
            f"(spawn+wait /bin/true {statistics.median(plain):.2f} ms)"
        )
        return
    asyncio.run(in_cgroups())


if __name__ == "__main__":
    main()
