"""Drop N pods into the manifests directory at once; report how long each took to run.

Latency is from the moment a manifest is renamed into place to the moment its container's
process is running: the container's first act is to write ``date +%s.%N`` to a file (the
host's /var/tmp is visible inside the container's mount namespace). Also reports the daemon's
RSS idle (no pods) and with N pods running.

Targets (issue 2): p50 <= 20 ms, p99 <= 100 ms, RSS <= 40 MB idle. This script prints figures;
it never asserts. Usage: python bench/pod_start_latency.py [--pods 100] [--config FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import psutil
import yaml
from _daemon import percentile, running_daemon

MANIFEST = """\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    env:
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    command: ["sh", "-c", "date +%s.%N > {out}/$(POD_NAME); exec sleep 3600"]
"""


def rss_mib(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument(
        "--config", type=Path, help="a YAML daemon config (what minikubelet --config reads)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mkl-bench-", dir="/var/tmp") as tmp:
        root = Path(tmp)
        manifests, out = root / "manifests", root / "out"
        out.mkdir()
        config = yaml.safe_load(args.config.read_text()) if args.config else None
        with running_daemon(root, stop_timeout=60, config=config) as (daemon, _url):
            time.sleep(2.0)
            idle = rss_mib(daemon.pid)

            proc = psutil.Process(daemon.pid)
            cpu_before = sum(proc.cpu_times()[:2])
            written: dict[str, float] = {}
            staged = []
            for i in range(args.pods):
                name = f"bench-{i:04d}"
                tmp_file = manifests / f".{name}.yaml.tmp"
                tmp_file.write_text(MANIFEST.format(name=name, out=out))
                staged.append((name, tmp_file))
            for name, tmp_file in staged:
                written[f"{name}-bench"] = time.time()
                os.replace(tmp_file, manifests / f"{name}.yaml")

            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and len(list(out.iterdir())) < args.pods:
                time.sleep(0.05)
            time.sleep(0.5)
            burst_cpu = sum(proc.cpu_times()[:2]) - cpu_before
            latencies = []
            for f in out.iterdir():
                text = f.read_text().strip()
                if text:
                    latencies.append((float(text) - written[f.name]) * 1000)
            time.sleep(2.0)
            loaded = rss_mib(daemon.pid)
            cpu = psutil.Process(daemon.pid).cpu_percent(interval=5.0)

            print(f"pods started: {len(latencies)}/{args.pods}")
            if latencies:
                print(
                    f"manifest written -> process running: p50 {percentile(latencies, 50):.1f} ms,"
                    f" p99 {percentile(latencies, 99):.1f} ms, max {max(latencies):.1f} ms,"
                    f" mean {statistics.mean(latencies):.1f} ms  (targets: p50 <= 20, p99 <= 100)"
                )
            print(f"daemon CPU time spent starting them: {burst_cpu * 1000:.0f} ms")
            print(f"daemon RSS idle: {idle:.1f} MiB (target <= 40)")
            print(f"daemon RSS with {args.pods} pods: {loaded:.1f} MiB")
            print(f"daemon CPU with {args.pods} idle pods: {cpu:.1f}% of one core")


if __name__ == "__main__":
    main()
