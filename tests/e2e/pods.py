"""Small builders for the e2e tests' pod manifests, and what a user can check on the host.

Containers are ``sh -c SCRIPT`` host processes (the process runtime): ``image`` is informational.
Every pod gets a short grace period, so that stopping the daemon at teardown is quick.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import psutil
import yaml

IMAGE = "busybox:1.36"


def container(name: str, script: str, **fields: Any) -> dict[str, Any]:
    """A container running ``sh -c script``; extra fields (env, volumeMounts, ...) as given."""
    return {"name": name, "image": IMAGE, "command": ["sh", "-c", script], **fields}


def pod_yaml(
    name: str,
    containers: Sequence[Mapping[str, Any]],
    *,
    init_containers: Sequence[Mapping[str, Any]] = (),
    restart_policy: str | None = None,
    grace: int = 1,
    volumes: Sequence[Mapping[str, Any]] = (),
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> str:
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    spec: dict[str, Any] = {"terminationGracePeriodSeconds": grace}
    if restart_policy:
        spec["restartPolicy"] = restart_policy
    if volumes:
        spec["volumes"] = [dict(v) for v in volumes]
    if init_containers:
        spec["initContainers"] = [dict(c) for c in init_containers]
    spec["containers"] = [dict(c) for c in containers]
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}
    return yaml.safe_dump(manifest, sort_keys=False)


def unique_marker(prefix: str = "mkl-e2e") -> str:
    """A string no other process on the machine has in its command line."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def processes_with(marker: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose command line mentions ``marker``."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.pid == os.getpid():
                continue
            if marker in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def process_group_members(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes in process group ``pgid``."""
    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == pgid:
                found.append(proc)
        except (psutil.Error, ProcessLookupError):
            continue
    return found


def status_of(pod: Mapping[str, Any], container_name: str) -> dict[str, Any]:
    """The (init)ContainerStatus named ``container_name`` in a v1 Pod."""
    status = pod.get("status", {})
    for key in ("containerStatuses", "initContainerStatuses"):
        for cs in status.get(key) or []:
            if cs.get("name") == container_name:
                found: dict[str, Any] = cs
                return found
    raise KeyError(f"no status for container {container_name!r}")


def terminated(cs: Mapping[str, Any], *, last: bool = False) -> dict[str, Any] | None:
    """``state.terminated`` (or ``lastState.terminated`` with last=True), None if absent."""
    state = cs.get("lastState" if last else "state") or {}
    value: dict[str, Any] | None = state.get("terminated")
    return value
