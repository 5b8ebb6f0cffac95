"""Can this podman service run minikubelet's pods? The podman runtime's engine check.

Asked over the API each time the runtime connects to the service (the daemon's start, and every
reconnect after an outage), and reported through ``runtime/engine.py``:

1. ``GET /libpod/info``: podman's version (minikubelet speaks podman 4's API) and its default OCI
   runtime, which every pod's infra container gets. On a cgroup v1 host that must be runc:
   crun refuses such hosts.
2. The pod infra (pause) image. Unless containers.conf's ``infra_image`` names an image to pull,
   podman 4.3 builds ``localhost/podman-pause:<version>-<build time>`` from the catatonit binary
   the first time a pod is created. Neither infra_image nor where catatonit is appears in the
   API (and a pause image built earlier says nothing about an infra_image set since), so the
   check asks podman to do it: it creates an empty pod (``minikubelet-engine-check-<random>``,
   labelled ``io.minikubelet.engine-check``, never started) and removes it at once. On success
   the pause image stays, as after any first pod; on failure podman's error says what is
   missing. It costs podman a few hundred milliseconds, at start and after each reconnect.

``explain()`` turns podman's errors that mean a missing package or a misconfiguration into what
to do about it; the runtime adds that to the FailedCreatePodSandBox message of a pod podman
could not create, and reports it like a failed check.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid

from minikubelet.runtime.podman_api import PodmanClient, PodmanError, path_arg

CHECK_LABEL = "io.minikubelet.engine-check"
CHECK_TIMEOUT = 120.0  # seconds for the check pod: podman may build or pull its pause image

INFRA = "podman cannot make pods' infra containers"
CATATONIT = (
    "podman builds the infra (pause) image of every pod from catatonit, which it cannot find: "
    "apt-get install catatonit"
)
INFRA_IMAGE = (
    "the infra image that containers.conf's infra_image names cannot be pulled: make it "
    "present (podman pull, podman load), or remove infra_image so that podman builds its own "
    "pause image from catatonit (apt-get install catatonit)"
)
_PULL_FAILURES = (
    "initializing source",
    "pinging container registry",
    "reading manifest",
    "manifest unknown",
    "short-name",
    "unable to pull",
    "requested access to the resource is denied",
)
_OCI_RUNTIME_MISSING = re.compile(
    r"\b(runc|crun)\b[^;]*?(?:not found|no such file|unable to find)"
    r"|(?:not find|unable to find|not found)[^;]*?\b(runc|crun)\b"
)


def explain(message: str) -> str | None:
    """What to do about podman's error ``message`` when it means something is missing from the
    host or podman's configuration; None for any other error."""
    if "catatonit" in message or "finding pause binary" in message:
        return CATATONIT
    if "failed to make pod" in message and any(s in message for s in _PULL_FAILURES):
        return INFRA_IMAGE  # the only image a pod creation pulls is the infra image
    if match := _OCI_RUNTIME_MISSING.search(message):
        name = match.group(1) or match.group(2)
        return f"podman cannot find the OCI runtime {name}: apt-get install {name}"
    return None


def infra_problem(detail: str) -> str:
    """The report for a pod podman could not create: its message, and what to do when known."""
    hint = explain(detail)
    return f"{INFRA}: {detail}" + (f"; {hint}" if hint else "")


async def check(api: PodmanClient) -> str | None:
    """None when podman can run minikubelet's pods, else what is missing, naming what to install
    or configure. Raises PodmanError (PodmanUnreachable) when podman does not answer."""
    info = await api.call("GET", "/info", what="podman info")
    version = (info or {}).get("version") or {}
    host = (info or {}).get("host") or {}
    problems: list[str] = []

    release = str(version.get("Version") or "")
    major = release.split(".")[0]
    if major.isdigit() and int(major) < 4:
        problems.append(
            f"podman {release} is too old: minikubelet speaks podman 4's API "
            "(Debian 12: apt-get install podman)"
        )
    oci = host.get("ociRuntime") or {}
    oci_name = str(oci.get("name") or "")
    if host.get("cgroupVersion") == "v1" and oci_name and oci_name != "runc":
        problems.append(
            f"podman's default OCI runtime is {oci_name}, which cannot run containers on this "
            'cgroup v1 host: set runtime = "runc" in the [engine] table of podman\'s '
            "containers.conf (apt-get install runc)"
        )
    if (problem := await _try_infra(api)) is not None:
        problems.append(problem)
    return "; ".join(problems) or None


async def _try_infra(api: PodmanClient) -> str | None:
    """Create and remove an empty pod: podman makes (or pulls) its infra image on the way.
    Check pods left by an earlier check (a daemon stopped while podman was creating one) go
    first."""
    stale = await api.call(
        "GET",
        "/pods/json",
        params={"filters": json.dumps({"label": [CHECK_LABEL]})},
        what="list engine check pods",
    )
    for pod in stale or []:
        await _remove(api, str(pod.get("Name") or pod.get("Id")))
    name = f"minikubelet-engine-check-{uuid.uuid4().hex[:8]}"
    try:
        await api.call(
            "POST",
            "/pods/create",
            body={"name": name, "labels": {CHECK_LABEL: "true"}},
            timeout=CHECK_TIMEOUT,
            what="podman pod create",
        )
    except PodmanError as exc:
        if exc.status == 0:
            raise
        return infra_problem(exc.detail)
    finally:
        await _remove(api, name)
    return None


async def _remove(api: PodmanClient, name: str) -> None:
    with contextlib.suppress(PodmanError):
        await api.call(
            "DELETE",
            f"/pods/{path_arg(name)}",
            params={"force": "true", "t": 0},
            ok=(200, 404),
            what=f"remove pod {name}",
        )
