"""What one manifest costs to decode: a normal pod, an alias bomb, and the largest document.

Decodes (``api.validation.decode_pod``: parse, schema, validation, defaulting) in this process:

- a normal pod (the README's example manifests, each in turn): median and p99 time per decode;
- a "billion laughs" alias bomb of ``--levels`` levels of ten (10^9 values by default, in
  about 600 bytes): time to be refused, and the peak memory allocated meanwhile;
- a 1 MiB flow list of small integers (the most values a manifest of the size limit can hold,
  and so the most work an abusive file can ask for without aliases): the same figures.

Peak memory is tracemalloc's peak (allocations by Python during the decode) in a second run,
so that its overhead does not count in the times. Times are the best of ``--repeat`` runs for
the abusive documents.

Targets (issue 9): an abusive file costs a bounded amount of memory and CPU and delays other
manifests by no more than a few ms; a normal pod stays fast (LibYAML's parse alone is about
0.4 ms). Before the limits, a 551-byte bomb of 10^7 values took 58 s and 4.6 GB. Run with
``PYTHONPATH=<other checkout>`` to measure another version; keep ``--levels`` at 6 or less
there. Prints figures; never asserts.

Usage: python bench/manifest_parse.py [--levels 9] [--repeat 5] [--pods 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from minikubelet.api.errors import ManifestError
from minikubelet.api.validation import decode_pod

EXAMPLES = Path(__file__).resolve().parents[1] / "manifests"
MIB = 1024 * 1024


def bomb(levels: int) -> bytes:
    lines = [
        "apiVersion: v1\nkind: Pod\nmetadata: {name: bomb}",
        "x0: &a0 [" + ", ".join(["lol"] * 10) + "]",
    ]
    lines += [f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    lines.append(f"spec: {{containers: [{{name: c}}], affinity: *a{levels - 1}}}")
    return ("\n".join(lines) + "\n").encode()


def wide(size: int) -> bytes:
    head = "apiVersion: v1\nkind: Pod\nmetadata: {name: wide}\nspec: {containers: [{name: c}], "
    count = (size - len(head) - 20) // 3
    return (head + "affinity: [" + ", ".join(["1"] * count) + "]}\n").encode()


def decode(data: bytes) -> str:
    try:
        decode_pod(data, source="bench.yaml")
    except ManifestError as exc:
        return f"refused: {exc.lines()[0].removeprefix('bench.yaml: ')[:90]}"
    return "accepted"


def measure(label: str, data: bytes, repeat: int) -> None:
    best = float("inf")
    outcome = ""
    for _ in range(repeat):
        started = time.perf_counter()
        outcome = decode(data)
        best = min(best, time.perf_counter() - started)
    tracemalloc.start()
    decode(data)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"{label}: {len(data)} bytes, {best * 1000:.1f} ms, peak {peak / MIB:.1f} MiB allocated")
    print(f"  {outcome}")


def normal_pods(count: int) -> None:
    files = sorted(EXAMPLES.glob("*.yaml"))
    manifests = [f.read_bytes() for f in files]
    times: list[float] = []
    timer: Callable[[], float] = time.perf_counter
    for i in range(count):
        data = manifests[i % len(manifests)]
        started = timer()
        decode(data)
        times.append(timer() - started)
    times.sort()
    p99 = times[int(len(times) * 0.99)]
    print(
        f"normal pods ({len(files)} examples, {count} decodes): median "
        f"{statistics.median(times) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms per pod"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, default=9, help="alias bomb: 10^levels values")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pods", type=int, default=2000, help="normal pod decodes")
    args = parser.parse_args()
    normal_pods(args.pods)
    measure(f"alias bomb (10^{args.levels} values)", bomb(args.levels), args.repeat)
    measure("1 MiB flow list", wide(MIB), args.repeat)


if __name__ == "__main__":
    main()
