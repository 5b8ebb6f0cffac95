"""Fault: abusive manifests (an alias bomb and its kin) land next to a valid pod.

The daemon must refuse each of them with an error naming the file and where the limit was hit,
its memory must stay about where it was, and the valid pod written at the same moment must
start as if it were alone. The start delay and the daemon's RSS are printed for the report;
the only timed assertion is wait_for's generous bound.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psutil

from minikubelet.api.document import MAX_MANIFEST_BYTES
from tests.e2e.harness import Daemon, write_atomically
from tests.e2e.pods import container, pod_yaml
from tests.manifest_strategies import abusive_manifests

RSS_ALLOWANCE = 64 * 1024 * 1024  # generous: refusing all of them costs a few MB at most

EXPECTED = {
    "alias-bomb": "x3[7]: Too many: must have at most 10000 values",
    "merge-bomb": "m10.<<[0]: Too many: must have at most 10000 values",
    "text-bomb": "spec.containers[0].args[1]: Too long: aliases may not repeat",
    "wide": "spec.affinity[9982]: Too many: must have at most 10000 values",
    "deep": "Invalid value: must not nest more than 64 levels deep",
    "cycle": "spec.affinity: Invalid value: an alias may not refer to a value that contains it",
}


class PeakRSS(threading.Thread):
    """The highest RSS of a process, sampled every few milliseconds until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.005):
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


def _time_to_running(d: Daemon, name: str, started: float) -> float:
    def running() -> dict[str, Any] | None:
        pod = d.pod_or_none(name)
        statuses = (pod or {}).get("status", {}).get("containerStatuses") or []
        return pod if statuses and all("running" in s["state"] for s in statuses) else None

    d.wait_for(running, timeout=20.0, interval=0.01)
    return time.monotonic() - started


def test_abusive_manifests_are_refused_at_once_and_a_valid_pod_beside_them_starts_without_delay(
    minikubelet_daemon: Daemon,
) -> None:
    d = minikubelet_daemon
    assert d.process is not None
    web = pod_yaml("web", [container("web", "sleep 3600")])

    # The same pod alone first: the delay to compare with.
    started = time.monotonic()
    d.write_manifest("alone", web.replace("name: web\n", "name: alone\n", 1))
    alone = _time_to_running(d, "alone", started)

    baseline = psutil.Process(d.process.pid).memory_info().rss
    sampler = PeakRSS(d.process.pid)
    sampler.start()
    started = time.monotonic()
    paths = {
        name: write_atomically(d.manifests_dir / f"{name}.yaml", text)
        for name, text in abusive_manifests(MAX_MANIFEST_BYTES).items()
    }
    d.write_manifest("web", web)
    beside = _time_to_running(d, "web", started)

    def refused() -> dict[str, str] | None:
        messages = {}
        for event in d.events():
            for name, path in paths.items():
                if event["reason"] == "FailedValidation" and f"from {path}: " in event["message"]:
                    messages[name] = event["message"]
        return messages if len(messages) == len(paths) else None

    messages = d.wait_for(refused, timeout=20.0)
    peak = sampler.stop()
    for name, expected in EXPECTED.items():
        assert expected in messages[name], messages[name]
    assert d.running
    assert d.get("/healthz") == "ok"
    assert "Traceback" not in d.log_text()
    assert peak - baseline < RSS_ALLOWANCE, (baseline, peak)
    print(
        f"valid pod to Running: {alone * 1000:.0f} ms alone, {beside * 1000:.0f} ms beside "
        f"{len(paths)} abusive manifests; daemon RSS {baseline / 2**20:.1f} MiB before, "
        f"peak {peak / 2**20:.1f} MiB"
    )
