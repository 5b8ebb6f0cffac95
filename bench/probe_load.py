"""100 pods probed every second: how late do the probes fire, and what does it cost the daemon?

Each pod has two containers (``sleep``): ``app`` with an exec liveness probe and an httpGet
readiness probe, ``side`` with a tcpSocket readiness probe, all at periodSeconds 1 and all
succeeding. The probes' targets are run by this script:

- one asyncio HTTP server: ``GET /probe/<pod>`` records the arrival time and answers 200;
- one asyncio TCP listener per pod (the dial is the whole probe): records the arrival time;
- the exec probe is ``sh -c 'date +%s.%N >> <dir>/exec/<pod>'``, i.e. the time its command
  ran inside the container (spawning through the runtime included).

Lateness: a probe worker ticks on a fixed 1 s grid from its own start. For each (pod, probe)
series the arrivals are folded onto that grid (residual = offset from the nearest whole period
after the first arrival); the smallest residual is the grid's phase, and each arrival's
lateness is its residual minus that phase. Missed ticks are counted separately.

After every pod is Ready and a few seconds of settling, a 30 s window measures: lateness p50 /
p99 / max per handler and overall, the daemon's CPU share of one core (psutil: the daemon
process, and with the probe commands it spawned and reaped), and its RSS (max over the window).

Targets (issue 3): lateness p99 <= 20 ms, CPU <= 10% of one core, RSS <= 80 MB. Prints
figures; never asserts. Needs root (the process runtime's private /tmp) like the daemon itself.

Usage: python bench/probe_load.py [--pods 100] [--window 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil
from _daemon import api_json, percentile, running_daemon

PERIOD = 1.0

HEAD = """\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
"""
EXEC = """\
    livenessProbe:
      exec:
        command: ["sh", "-c", "date +%s.%N >> {exec_dir}/{name}"]
      periodSeconds: 1
"""
HTTP = """\
    readinessProbe:
      httpGet:
        path: /probe/{name}
        port: {http_port}
      periodSeconds: 1
"""
TCP = """\
  - name: side
    image: busybox
    command: ["sleep", "3600"]
    readinessProbe:
      tcpSocket:
        port: {tcp_port}
      periodSeconds: 1
"""


def manifest(handlers: set[str]) -> str:
    parts = [HEAD]
    parts += [
        text for kind, text in (("exec", EXEC), ("http", HTTP), ("tcp", TCP)) if kind in handlers
    ]
    return "".join(parts)


def get_json(url: str, path: str) -> dict[str, object]:
    data: dict[str, object] = api_json(url, path)
    return data


class Targets:
    """The HTTP server and the TCP listeners, on an event loop of their own (a thread)."""

    def __init__(self, pods: list[str]) -> None:
        self.pods = pods
        self.arrivals: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.http_port = 0
        self.tcp_ports: dict[str, int] = {}
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="targets", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(30):
            raise SystemExit("the probe targets did not start")

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        now = time.time()
        try:
            line = await reader.readline()
            parts = line.decode(errors="replace").split()
            if len(parts) >= 2 and parts[1].startswith("/probe/"):
                self.arrivals[parts[1][len("/probe/") :], "http"].append(now)
            while await reader.readline() not in (b"\r\n", b"\n", b""):
                pass
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _tcp(
        self, pod: str
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.arrivals[pod, "tcp"].append(time.time())
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

        return handle

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        servers = [await asyncio.start_server(self._http, "127.0.0.1", 0, backlog=512)]
        self.http_port = servers[0].sockets[0].getsockname()[1]
        for pod in self.pods:
            server = await asyncio.start_server(self._tcp(pod), "127.0.0.1", 0)
            self.tcp_ports[pod] = server.sockets[0].getsockname()[1]
            servers.append(server)
        self._ready.set()
        await self._stop.wait()
        for server in servers:
            server.close()


def lateness(times: list[float]) -> tuple[list[float], int]:
    """(lateness in ms of each arrival against the series' own 1 s grid, ticks missed)."""
    if len(times) < 2:
        return [], 0
    times = sorted(times)
    t0 = times[0]
    ticks = [round((t - t0) / PERIOD) for t in times]
    residuals = [t - t0 - k * PERIOD for t, k in zip(times, ticks, strict=True)]
    phase = min(residuals)
    missed = (ticks[-1] - ticks[0] + 1) - len(set(ticks))
    return [(r - phase) * 1000 for r in residuals], missed


def summarize(label: str, values: list[float]) -> str:
    if not values:
        return f"{label}: no arrivals"
    return (
        f"{label}: n={len(values)} p50 {percentile(values, 50):.1f} ms, "
        f"p99 {percentile(values, 99):.1f} ms, max {max(values):.1f} ms, "
        f"mean {statistics.mean(values):.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--window", type=float, default=30.0, help="seconds measured")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after all are Ready")
    parser.add_argument(
        "--handlers",
        default="exec,http,tcp",
        help="comma-separated subset of exec,http,tcp (to see what costs what)",
    )
    args = parser.parse_args()
    handlers = set(args.handlers.split(","))
    template = manifest(handlers)

    names = [f"probe-{i:03d}" for i in range(args.pods)]
    targets = Targets(names)
    targets.start()
    with tempfile.TemporaryDirectory(prefix="mkl-probe-bench-", dir="/var/tmp") as tmp:
        root = Path(tmp)
        manifests, exec_dir = root / "manifests", root / "exec"
        exec_dir.mkdir()
        try:
            with running_daemon(root) as (daemon, url):
                proc = psutil.Process(daemon.pid)
                idle_rss = proc.memory_info().rss / 2**20

                for name in names:
                    text = template.format(
                        name=name,
                        exec_dir=exec_dir,
                        http_port=targets.http_port,
                        tcp_port=targets.tcp_ports[name],
                    )
                    tmp_file = manifests / f".{name}.tmp"
                    tmp_file.write_text(text)
                    tmp_file.replace(manifests / f"{name}.yaml")

                began = time.monotonic()
                ready = 0
                while time.monotonic() - began < 180:
                    items = get_json(url, "/pods").get("items") or []
                    assert isinstance(items, list)
                    ready = sum(
                        1
                        for pod in items
                        if any(
                            c.get("type") == "Ready" and c.get("status") == "True"
                            for c in pod.get("status", {}).get("conditions") or []
                        )
                    )
                    if ready >= args.pods:
                        break
                    time.sleep(0.5)
                print(f"pods Ready: {ready}/{args.pods} after {time.monotonic() - began:.1f} s")
                time.sleep(args.settle)

                start_wall = time.time()
                cpu0 = proc.cpu_times()
                t0 = time.monotonic()
                max_rss = 0.0
                while time.monotonic() - t0 < args.window:
                    max_rss = max(max_rss, proc.memory_info().rss / 2**20)
                    time.sleep(1.0)
                cpu1 = proc.cpu_times()
                elapsed = time.monotonic() - t0
                end_wall = time.time()
                own = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
                children = (cpu1.children_user - cpu0.children_user) + (
                    cpu1.children_system - cpu0.children_system
                )

                for name in names:
                    with contextlib.suppress(FileNotFoundError):
                        for line in (exec_dir / name).read_text().split():
                            targets.arrivals[name, "exec"].append(float(line))

                by_kind: dict[str, list[float]] = defaultdict(list)
                missed: dict[str, int] = defaultdict(int)
                series: dict[str, int] = defaultdict(int)
                for (_pod, kind), times in list(targets.arrivals.items()):
                    window = [t for t in times if start_wall <= t <= end_wall]
                    late, miss = lateness(window)
                    by_kind[kind].extend(late)
                    missed[kind] += miss
                    series[kind] += 1 if window else 0

                print(
                    f"window: {elapsed:.1f} s, {args.pods} pods x {len(handlers)} probes"
                    f" at a {PERIOD:g} s period"
                )
                for kind in sorted(handlers):
                    print(
                        summarize(f"lateness {kind:4s}", by_kind[kind])
                        + f"  ({series[kind]} series, {missed[kind]} ticks missed)"
                    )
                every = [v for values in by_kind.values() for v in values]
                print(summarize("lateness all ", every) + "  (target p99 <= 20 ms)")
                print(
                    f"daemon CPU: {100 * own / elapsed:.1f}% of one core (target <= 10%); "
                    f"with the probe commands it spawned: {100 * (own + children) / elapsed:.1f}%"
                )
                print(
                    f"daemon RSS: idle {idle_rss:.1f} MiB, max under load {max_rss:.1f} MiB"
                    " (target <= 80 MB)"
                )
        finally:
            targets.stop()


if __name__ == "__main__":
    main()
