"""Soak: many create/crash/delete cycles against the real daemon; does anything accumulate?

One cycle: a pod manifest appears, its container crashes (exits 1) and is seen to have crashed
(restartCount >= 1 or a terminated last state in /pods), then the manifest is removed and the
pod is seen to be gone. ``--parallel`` pods cycle at once, in rounds, until ``--cycles`` cycles
are done. After a warm-up (the first rounds, which load code and fill caches), the script
samples the daemon's open file descriptors and RSS, and at the end reports:

- descriptors: after warm-up, min/max during the soak, and at the end (target: flat);
- RSS: after warm-up and at the end, and the growth (target: at most 5%), with its trend; the
  event log (``eventLimit`` events, 5000 by default) fills during the first thousand or so
  cycles, which is bounded growth by design: ``--event-limit`` shrinks it to see the rest;
- zombies among the daemon's children (target: 0);
- leftover pod directories under state/process/pods, and leftover container processes
  (target: none).

Targets (issue 9). This script prints figures; it never asserts.
Usage: python bench/soak.py [--cycles 1000] [--parallel 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
from _daemon import api_json, running_daemon

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
    command: ["sh", "-c", "sleep 0.05; exit 1", "{marker}"]
"""

CONFIG: dict[str, Any] = {
    "fileCheckFrequency": "2s",
    "statusFlushInterval": "100ms",
    "crashLoopBackOff": {"initialDelay": "100ms", "maxContainerRestartPeriod": "400ms"},
}


def get_pods(url: str) -> dict[str, dict[str, Any]]:
    items = api_json(url, "/pods")["items"]
    return {p["metadata"]["name"]: p for p in items}


def crashed(pod: dict[str, Any]) -> bool:
    for cs in pod.get("status", {}).get("containerStatuses") or []:
        if cs.get("restartCount", 0) >= 1:
            return True
        for key in ("state", "lastState"):
            if ((cs.get(key) or {}).get("terminated") or {}).get("exitCode") == 1:
                return True
    return False


def wait(what: str, predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"soak: timed out waiting for {what}")
        time.sleep(0.02)


def round_trip(url: str, manifests: Path, names: list[str], marker: str) -> None:
    """Create, see crash, delete, see gone: one cycle for each of ``names`` at once."""
    for name in names:
        tmp = manifests / f".{name}.tmp"
        tmp.write_text(MANIFEST.format(name=name, marker=marker))
        tmp.rename(manifests / f"{name}.yaml")
    full = {f"{n}-bench" for n in names}

    def all_crashed() -> bool:
        pods = get_pods(url)
        return all(n in pods and crashed(pods[n]) for n in full)

    wait("the pods to crash", all_crashed)
    for name in names:
        (manifests / f"{name}.yaml").unlink()
    wait("the pods to go", lambda: not full & set(get_pods(url)))


def sample(proc: psutil.Process) -> tuple[int, float]:
    return proc.num_fds(), proc.memory_info().rss / 2**20


def leftover_processes(marker: str) -> list[str]:
    found = []
    for p in psutil.process_iter(["pid", "cmdline", "status"]):
        if marker in " ".join(p.info["cmdline"] or []) and p.info["status"] != "zombie":
            found.append(f"{p.pid}: {' '.join(p.info['cmdline'])}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=50, help="cycles before the baseline")
    parser.add_argument(
        "--event-limit",
        type=int,
        default=None,
        help="the daemon's eventLimit (default: its own, 5000); the event log is bounded memory "
        "that fills during the soak, so a small limit shows growth that is not the events'",
    )
    args = parser.parse_args()
    config = dict(CONFIG)
    if args.event_limit is not None:
        config["eventLimit"] = args.event_limit
    marker = f"mkl-soak-{uuid.uuid4().hex[:8]}"

    with tempfile.TemporaryDirectory(prefix="mkl-soak-", dir="/var/tmp") as tmp:
        root = Path(tmp)
        manifests = root / "manifests"
        with running_daemon(root, config=config, stop_timeout=60) as (daemon, url):
            proc = psutil.Process(daemon.pid)
            done = 0
            baseline: tuple[int, float] | None = None
            fds_seen: list[int] = []
            rss_trend: list[tuple[int, float]] = []  # (cycles done, RSS MiB) every tenth
            began = time.monotonic()
            while done < args.cycles:
                batch = min(args.parallel, args.cycles - done)
                names = [f"soak-{done + i}" for i in range(batch)]
                round_trip(url, manifests, names, marker)
                done += batch
                if baseline is None and done >= args.warmup:
                    time.sleep(1.0)  # let the last stops settle before the baseline
                    baseline = sample(proc)
                    soak_began = time.monotonic()
                    soak_done = done
                elif baseline is not None:
                    fds_seen.append(proc.num_fds())
                    if (
                        done
                        % max(args.parallel, args.cycles // 10 // args.parallel * args.parallel)
                        == 0
                    ):
                        rss_trend.append((done, sample(proc)[1]))
            took = time.monotonic() - began
            time.sleep(2.0)  # the last pods' directories and reaping
            final = sample(proc)
            zombies = [c for c in proc.children(recursive=True) if c.status() == "zombie"]
            pods_dir = root / "state" / "process" / "pods"
            leftover_dirs = sorted(p.name for p in pods_dir.iterdir()) if pods_dir.exists() else []
            leftovers = leftover_processes(marker)
            children = len(proc.children(recursive=True))
            events_held = len(api_json(url, "/events")["items"])

        assert baseline is not None
        cycles_timed = done - soak_done
        rate = cycles_timed / (time.monotonic() - soak_began) if cycles_timed else 0.0
        print(f"soak: {done} create/crash/delete cycles, {args.parallel} at a time, {took:.0f} s")
        print(f"  cycles per second after warm-up:  {rate:.1f}")
        print(
            f"  open fds: {baseline[0]} after {args.warmup} warm-up cycles, "
            f"{min(fds_seen, default=baseline[0])}..{max(fds_seen, default=baseline[0])} during,"
            f" {final[0]} at the end (change {final[0] - baseline[0]:+d})"
        )
        growth = (final[1] - baseline[1]) / baseline[1] * 100
        print(
            f"  RSS: {baseline[1]:.1f} MiB after warm-up, {final[1]:.1f} MiB at the end "
            f"(growth {growth:+.1f}%, target <= 5%)"
        )
        if len(rss_trend) >= 2:
            half_n, half_rss = rss_trend[len(rss_trend) // 2 - 1]
            late = (final[1] - half_rss) / half_rss * 100
            print(f"  RSS growth over the second half (from {half_n} cycles): {late:+.1f}%")
        trend = ", ".join(f"{n}: {rss:.1f}" for n, rss in rss_trend)
        print(f"  RSS (MiB) by cycles done: {trend}")
        print(f"  events held by the daemon at the end: {events_held}")
        print(f"  zombies among the daemon's children: {len(zombies)}")
        print(f"  daemon children left at the end: {children}")
        print(f"  leftover pod directories: {len(leftover_dirs)} {leftover_dirs[:5]}")
        print(f"  leftover container processes: {len(leftovers)} {leftovers[:5]}")


if __name__ == "__main__":
    main()
