"""How long a git-sync-style swap takes to be seen: the manifest source alone, then the daemon.

The layout is git-sync's: ``--manifests ROOT/current``, ``current -> rev-K``; each swap writes a
complete ``rev-K+1`` (all N manifests, one of them changed), swaps the link atomically
(``ln -s rev-K+1 tmp && mv -T tmp current``), then removes the old revision, as git-sync does.

1. Source: a ManifestSource in this process, resync far away; latency is from the rename to the
   publish callback receiving the snapshot with the changed pod's new UID. For comparison, the
   same change made as one file renamed into place inside the directory.
2. Daemon: ``python -m minikubelet run``; latency is from the rename to the changed pod's new
   container writing ``date +%s.%N`` as its first act. Also checks that the N-1 unchanged pods
   kept their processes (restarts must be 0).

Target (issue 17): a swap is seen within 100 ms, the same as a file change, instead of at the
next resync (20 s by default). This script prints figures; it never asserts.
Usage: python bench/source_swap.py [--pods 50] [--swaps 30] [--daemon-swaps 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from _daemon import api_json, percentile, running_daemon

from minikubelet.api.identity import DesiredSet
from minikubelet.api.model import PodKey
from minikubelet.source.manifests import ManifestSource

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
    command: ["sh", "-c", "date +%s.%N > {out}/{name}-{rev}; exec sleep 3600"]
"""


def write_revision(root: Path, k: int, pods: int, out: Path) -> Path:
    """rev-K: pods ``p-0000`` .. unchanged across revisions, ``web`` changed in each."""
    rev = root / f"rev-{k}"
    rev.mkdir()
    for i in range(pods - 1):
        name = f"p-{i:04d}"
        (rev / f"{name}.yaml").write_text(MANIFEST.format(name=name, out=out, rev=0))
    (rev / "web.yaml").write_text(MANIFEST.format(name="web", out=out, rev=k))
    return rev


def swap(root: Path, k: int) -> float:
    """Point ``current`` at rev-K atomically; the wall-clock time of the rename."""
    tmp = root / ".current.tmp"
    os.symlink(f"rev-{k}", tmp)
    at = time.time()
    os.rename(tmp, root / "current")
    return at


def report(what: str, latencies: list[float]) -> None:
    ms = [x * 1000 for x in latencies]
    print(
        f"{what}: n={len(ms)} p50={statistics.median(ms):.1f} ms "
        f"p99={percentile(ms, 99):.1f} ms max={max(ms):.1f} ms"
    )


async def source_latencies(
    root: Path, pods: int, swaps: int, out: Path
) -> tuple[list[float], list[float]]:
    write_revision(root, 0, pods, out)
    os.symlink("rev-0", root / "current")
    source = ManifestSource(root / "current", node_name="bench", resync_period=3600)
    changed = asyncio.Event()
    seen: dict[str, float] = {}

    def publish(desired: DesiredSet) -> None:
        web = desired.pods.get(PodKey("default/web-bench"))
        if web is not None and web.uid not in seen:
            seen[web.uid] = time.time()
            changed.set()

    task = asyncio.create_task(source.run(publish))
    try:
        await asyncio.wait_for(changed.wait(), 30)
        latencies = []
        for k in range(1, swaps + 1):
            write_revision(root, k, pods, out)
            await asyncio.sleep(0.05)
            changed.clear()
            at = swap(root, k)
            await asyncio.wait_for(changed.wait(), 30)
            latencies.append(max(seen.values()) - at)
            shutil.rmtree(root / f"rev-{k - 1}")
        # For comparison: the same change as one file renamed into place in the directory.
        edits = []
        for k in range(swaps + 1, 2 * swaps + 1):
            tmp = root / "current" / ".web.yaml.tmp"
            tmp.write_text(MANIFEST.format(name="web", out=out, rev=k))
            await asyncio.sleep(0.05)
            changed.clear()
            at = time.time()
            os.rename(tmp, root / "current" / "web.yaml")
            await asyncio.wait_for(changed.wait(), 30)
            edits.append(max(seen.values()) - at)
        return latencies, edits
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _stamp(path: Path) -> str:
    """What the container wrote (``date +%s.%N``), once it is complete; "" until then."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return ""
    return text.strip() if text.endswith("\n") else ""


def api_pods(url: str, state: Path) -> list[dict[str, object]]:
    items: list[dict[str, object]] = api_json(url, "/pods")["items"]
    return items


def daemon_latencies(root: Path, pods: int, swaps: int, out: Path) -> tuple[list[float], int]:
    write_revision(root, 0, pods, out)
    os.symlink("rev-0", root / "current")
    with running_daemon(root, manifests=root / "current", stop_timeout=60) as (_daemon, url):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(out.iterdir())) < pods:
            time.sleep(0.05)
        time.sleep(1.0)
        first_swap = time.time()
        latencies = []
        for k in range(1, swaps + 1):
            write_revision(root, k, pods, out)
            time.sleep(0.2)
            at = swap(root, k)
            started = out / f"web-{k}"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not _stamp(started):
                time.sleep(0.002)
            latencies.append(float(_stamp(started)) - at)
            shutil.rmtree(root / f"rev-{k - 1}")
            time.sleep(1.5)  # let the old web pod stop before the next swap
        restarts = 0
        for pod in api_pods(url, root / "state"):
            status = pod["status"]
            assert isinstance(status, dict)
            restarts += sum(cs["restartCount"] for cs in status.get("containerStatuses") or [])
        # An unchanged pod started again would have written its file again.
        restarted = sum(
            1 for f in out.iterdir() if f.name.startswith("p-") and f.stat().st_mtime > first_swap
        )
        return latencies, restarts + restarted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=50, help="manifests in each revision")
    parser.add_argument("--swaps", type=int, default=30, help="swaps seen by the source alone")
    parser.add_argument("--daemon-swaps", type=int, default=10, help="swaps through the daemon")
    args = parser.parse_args()
    os.umask(0o022)  # manifests must not be group- or world-writable (the trust rules)

    with tempfile.TemporaryDirectory(prefix="mkl-bench-swap-", dir="/var/tmp") as tmp:
        root, out = Path(tmp) / "source", Path(tmp) / "source-out"
        root.mkdir()
        out.mkdir()
        latencies, edits = asyncio.run(source_latencies(root, args.pods, args.swaps, out))
        report(f"swap -> snapshot published ({args.pods} manifests)", latencies)
        report("one file renamed into place -> snapshot published (for comparison)", edits)

    with tempfile.TemporaryDirectory(prefix="mkl-bench-swap-", dir="/var/tmp") as tmp:
        root, out = Path(tmp) / "daemon", Path(tmp) / "daemon-out"
        root.mkdir()
        out.mkdir()
        latencies, restarts = daemon_latencies(root, args.pods, args.daemon_swaps, out)
        report(f"swap -> changed pod's container running ({args.pods} pods)", latencies)
        print(f"unchanged pods restarted across {args.daemon_swaps} swaps: {restarts}")
    print("target: <= 100 ms after the swap (a file change's latency); before: the 20 s resync")


if __name__ == "__main__":
    main()
