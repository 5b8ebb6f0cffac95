"""Helpers shared by the probe e2e tests: manifests as dicts, event lookups, ports.

Manifests are built as dicts and dumped with PyYAML, so the venv's python and the server
script's path (tests/e2e/probe_servers.py) can be put into commands without quoting trouble.
"""

from __future__ import annotations

import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.harness import Daemon, free_port

SERVERS = str(Path(__file__).with_name("probe_servers.py"))
PYTHON = sys.executable

# A shell loop that ends promptly on SIGTERM (sh runs a trap only between commands, so the
# sleep runs in the background and ``wait`` is interrupted by the signal).
IDLE = "while :; do sleep 1 & wait $!; done"


def server(*args: object) -> list[str]:
    """The command of a container that runs probe_servers.py with args."""
    return [PYTHON, SERVERS, *(str(a) for a in args)]


CHECKOUT = Path(__file__).resolve().parents[2]


def _checkout_visible(spec: dict[str, Any]) -> dict[str, Any]:
    """Pods see /tmp privately. A checkout (and its venv) under /tmp, as CI's may be, is then
    mounted into every container at its own path, so that PYTHON and SERVERS are there."""
    roots = sorted(
        {p for p in (CHECKOUT, Path(sys.prefix).resolve()) if p.is_relative_to("/tmp")},
        key=lambda p: len(p.parts),
    )
    roots = [r for r in roots if not any(r != o and r.is_relative_to(o) for o in roots)]
    if not roots:
        return spec
    volumes = [host_dir_volume(f"mkl-checkout-{i}", root) for i, root in enumerate(roots)]
    mounts = [mount_same_path(v["name"], root) for v, root in zip(volumes, roots, strict=True)]
    out = dict(spec, volumes=[*spec.get("volumes", []), *volumes])
    for group in ("initContainers", "containers"):
        if group in out:
            out[group] = [
                dict(c, volumeMounts=[*c.get("volumeMounts", []), *mounts]) for c in out[group]
            ]
    return out


def pod_yaml(name: str, containers: list[dict[str, Any]], **spec: Any) -> str:
    """A Pod manifest; ``spec`` adds fields (initContainers, volumes, restartPolicy...)."""
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": _checkout_visible(
            {"terminationGracePeriodSeconds": 5, **spec, "containers": containers}
        ),
    }
    return yaml.safe_dump(body, sort_keys=False)


def host_dir_volume(name: str, path: Path) -> dict[str, Any]:
    return {"name": name, "hostPath": {"path": str(path), "type": "Directory"}}


def mount_same_path(name: str, path: Path) -> dict[str, Any]:
    """Mount a hostPath at the path it has on the host (under /tmp, which pods see privately)."""
    return {"name": name, "mountPath": str(path)}


def two_free_ports() -> tuple[int, int]:
    """A free port P with P+1 free too (a listening port and a closed neighbour)."""
    for _ in range(50):
        port = free_port()
        if port >= 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port, port + 1
    raise RuntimeError("no two consecutive free ports")


def parse_time(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def find_events(
    d: Daemon,
    pod: str,
    reason: str,
    message: str | None = None,
    *,
    prefix: str | None = None,
    container: str | None = None,
) -> list[dict[str, Any]]:
    """The pod's events with this reason (and message, or message prefix).

    Messages are compared without trailing whitespace: kubelet puts an exec probe's output into
    the event as it came (``...No such file or directory\\n``); kubectl describe trims it.
    """
    return [
        e
        for e in d.events(pod)
        if e.get("reason") == reason
        and (message is None or str(e.get("message", "")).rstrip() == message)
        and (prefix is None or str(e.get("message", "")).startswith(prefix))
        and (
            container is None
            or e.get("involvedObject", {}).get("fieldPath", "").endswith(f"{{{container}}}")
        )
    ]


def event_count(
    d: Daemon, pod: str, reason: str, message: str | None = None, *, prefix: str | None = None
) -> int:
    return sum(int(e.get("count", 1)) for e in find_events(d, pod, reason, message, prefix=prefix))


def describe_events(d: Daemon, pod: str) -> str:
    lines = [f"events of {pod}:"]
    for e in d.events(pod):
        lines.append(
            f"  {e.get('firstTimestamp')} {e.get('type')} {e.get('reason')} x{e.get('count')}"
            f" [{e.get('involvedObject', {}).get('fieldPath')}] {e.get('message')}"
        )
    return "\n".join(lines)


def read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []
